"""Self-contained HTML reports: one file, images inlined as PNG data URIs, no external assets."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path

from PIL import Image

from caption.report.charts import reliability_diagram, score_histogram
from gen.core.html import esc, png_data_uri, write_page
from gen.data.selection import describe as describe_selection

# Log-probs at or above GOOD are shaded fully green, at or below BAD fully red.
GOOD_LOGPROB = -0.1
BAD_LOGPROB = -5.0

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table.summary { border-collapse: collapse; margin-bottom: 1em; }
table.summary td, table.summary th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; }
table.summary td.num { text-align: right; font-variant-numeric: tabular-nums; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 12px; }
.card { border: 4px solid #aaa; border-radius: 6px; padding: 8px; font-size: 13px; }
.card.pass { border-color: #2a9d3a; }
.card.fail { border-color: #d33; }
.card.unknown { border-color: #aaa; }
.card img, .strip img { width: 128px; height: auto; image-rendering: pixelated; display: block; }
.prompt { margin: 6px 0; line-height: 1.7; }
.tok { border-radius: 2px; padding: 0 1px; }
.caption { font-style: italic; margin: 4px 0; }
.meta { color: #555; }
.intro { max-width: 70em; line-height: 1.45; }
.ok { color: #2a9d3a; } .bad { color: #d33; }
.strip { display: flex; flex-wrap: wrap; gap: 12px; }
.headline { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; margin-bottom: 1em; }
.numbers { display: grid; grid-template-columns: repeat(2, minmax(190px, 1fr)); gap: 10px; max-width: 440px; }
.stat { border: 1px solid #ddd; border-radius: 6px; padding: 8px 10px; }
.stat .value { font-size: 26px; font-variant-numeric: tabular-nums; }
.stat .ci { color: #555; font-size: 12px; font-variant-numeric: tabular-nums; }
.stat .label { font-weight: 600; margin-top: 2px; }
.stat .note { color: #666; font-size: 11px; }
.headline figure { margin: 0; border: 1px solid #ddd; border-radius: 6px; padding: 4px; }
.headline figcaption { font-size: 11px; color: #666; max-width: 360px; padding: 0 4px 4px; }
details.all { margin-bottom: 1em; }
.unsure { color: #888; }
.strip figure { margin: 0; font-size: 12px; }
"""


def _img(image: Image.Image, alt: str) -> str:
    return f'<img src="{png_data_uri(image)}" alt="{esc(alt)}">'


def _fmt(value: object) -> str:
    """Floats to 3 decimals, None as a dash, anything else as text."""
    if value is None:
        return "–"
    if isinstance(value, (bool, numbers.Integral)):
        return str(value)
    if isinstance(value, numbers.Real):  # also numpy float32, which is not a float
        return "nan" if math.isnan(value) else f"{float(value):.3f}"
    return str(value)


def logprob_color(logprob: float) -> str:
    """Background colour from green (confident) to red (surprising) for one token."""
    t = (logprob - BAD_LOGPROB) / (GOOD_LOGPROB - BAD_LOGPROB)
    t = min(max(t, 0.0), 1.0) if not math.isnan(t) else 0.0
    return f"hsl({120 * t:.0f}, 70%, 80%)"


def _prompt_html(prompt: str, token_logprobs: Sequence[Sequence] | None) -> str:
    """The prompt with every token shaded by its log-prob; plain text when none are given."""
    if not token_logprobs:
        return f'<div class="prompt">{esc(prompt)}</div>'
    parts = []
    for token, logprob in token_logprobs:
        token = str(token)
        word = token.lstrip()
        # Leading space goes outside the span so the shading starts at the word.
        lead = " " if len(word) < len(token) else ""
        tip = f"{token!r}: logprob {float(logprob):.2f}"  # repr shows the leading space
        parts.append(
            f'{lead}<span class="tok" style="background:{logprob_color(float(logprob))}" '
            f'title="{esc(tip)}">{esc(word)}</span>'
        )
    return f'<div class="prompt">{"".join(parts)}</div>'


# Oracle verdicts: True / False from the lenient oracle, "right" / "wrong" / "unsure" from the strict one.
_VERDICT_MARKS = {True: ("ok", "✓"), "right": ("ok", "✓"), False: ("bad", "✗"), "wrong": ("bad", "✗"),
                  "unsure": ("unsure", "?")}


def _oracle_html(oracle: Mapping[str, bool | str] | None) -> str:
    if not oracle:
        return '<div class="meta">oracle: n/a</div>'
    marks = {attr: _VERDICT_MARKS.get(verdict, ("unsure", "?")) for attr, verdict in oracle.items()}
    items = (f'<span class="{css}">{esc(attr)} {mark}</span>' for attr, (css, mark) in marks.items())
    return f'<div class="meta">oracle: {" · ".join(items)}</div>'


def _label_html(row: Mapping) -> str:
    """The image's class and the judge's reading of it (label-aware scoring, caption/judge/labels.py)."""
    label, read = row.get("label"), row.get("judge_label")
    css = "meta" if label is None else f"meta {'ok' if read == label else 'bad'}"
    return f'<div class="{css}">label {esc(_fmt(label))} · judge reads {esc(_fmt(read))}</div>'


def _card(row: Mapping) -> str:
    """One image with its prompt, caption, score, rank, and the oracle's verdicts and the class where the row
    has them (a plain-domain row has no oracle line at all)."""
    verdict = {True: "pass", False: "fail"}.get(row.get("passed"), "unknown")
    caption = row.get("caption")
    caption_html = esc(caption) if caption is not None else "(no caption)"
    parts = [
        f'<div class="card {verdict}">',
        _img(row["image"], row.get("prompt", "")),
        _prompt_html(row.get("prompt", ""), row.get("token_logprobs")),
        f'<div class="caption">{caption_html}</div>',
        f'<div class="meta">score {esc(_fmt(row.get("score")))} · '
        f'rank {esc(_fmt(row.get("rank")))}</div>',
    ]
    if "oracle" in row:
        parts.append(_oracle_html(row["oracle"]))
    if "judge_label" in row:
        parts.append(_label_html(row))
    if row.get("skipped_reason"):
        parts.append(f'<div class="meta bad">skipped: {esc(row["skipped_reason"])}</div>')
    parts.append("</div>")
    return "\n".join(parts)


def flatten(summary: Mapping, prefix: str = "") -> dict[str, object]:
    """Nested dicts to dotted keys; the `skipped` list is left to its own section."""
    flat: dict[str, object] = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if not prefix and key == "skipped" and isinstance(value, list):
            continue
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = "[" + ", ".join(_fmt(v) for v in value) + "]"
        else:
            flat[name] = value
    return flat


def _summary_html(summary: Mapping) -> str:
    """Every number of the summary, flattened, in a collapsed section below the headline."""
    flat = flatten({k: v for k, v in summary.items() if k not in ("headline", "task_table", "task_note")})
    rows = "\n".join(f'<tr><th>{esc(k)}</th><td class="num">{esc(_fmt(v))}</td></tr>' for k, v in flat.items())
    if not rows:
        return ""
    return (f'<details class="all"><summary>all numbers ({len(flat)})</summary>\n'
            f'<table class="summary">\n{rows}\n</table>\n</details>')


def _stat_html(item: Mapping) -> str:
    """One headline number: value, 95% interval when there is one, label and a one-line note."""
    value, low, high = item.get("value"), item.get("low"), item.get("high")
    detail = [f"95% CI [{_fmt(low)}, {_fmt(high)}]"] if low is not None and high is not None else []
    detail += [f"n = {item['n']}"] if item.get("n") is not None else []
    return (f'<div class="stat"><div class="value">{esc(_fmt(value))}</div>'
            f'<div class="ci">{esc(" · ".join(detail))}</div><div class="label">{esc(item.get("label", ""))}</div>'
            f'<div class="note">{esc(item.get("note", ""))}</div></div>')


def _headline_html(summary: Mapping, rows: Sequence[Mapping]) -> str:
    """The few numbers a person reads first, beside the judge's scores by oracle verdict and its calibration."""
    items = summary.get("headline")
    if not isinstance(items, list) or not items:
        return ""
    by_verdict: dict[str, list[float]] = {}
    for row in rows:
        if isinstance(row.get("score"), numbers.Real):
            by_verdict.setdefault(row.get("oracle_overall") or "all images", []).append(float(row["score"]))
    order = [v for v in ("right", "wrong", "unsure", "all images") if v in by_verdict]
    figures = [
        (score_histogram({v: by_verdict[v] for v in order}, "the judge's margin, by the oracle's verdict",
                         "margin: debiased score of the prompt − best distractor's"),
         "Green: images the oracle calls right; red: wrong; grey: unsure. A judge worth trusting keeps green "
         "right of 0 and red left of it."),
        (reliability_diagram((summary.get("calibration") or {}).get("reliability") or [],
                             "reliability: the judge's probability vs the oracle"),
         "Bars: share of oracle-right images per probability bin (number of images on top; the dot marks the bin's "
         "mean probability). On the dashed diagonal the judge's probability means what it says."),
    ]
    pictures = "".join(f"<figure>{svg}<figcaption>{esc(text)}</figcaption></figure>" for svg, text in figures if svg)
    stats = "".join(_stat_html(item) for item in items if isinstance(item, Mapping))
    return f'<section class="headline"><div class="numbers">{stats}</div>{pictures}</section>'


def _intro_html(summary: Mapping) -> str:
    """What the page shows, in plain words, and how its images were chosen: read before any number."""
    selection = summary.get("selection")
    chosen = describe_selection(selection) if isinstance(selection, Mapping) else "not recorded"
    return ('<p class="intro">Each card below is one image with the prompt it was drawn for under it (each word '
            "shaded by how likely the captioner finds it, given the image), the captioner's own caption in italics, "
            "the judge's score and the prompt's rank among near-miss prompts (0: the judge reads the image as this "
            "prompt), and, where the data has an exact pixel oracle, the oracle's verdict. The numbers next sum "
            f"them up; every term is explained in docs/glossary.md.<br><b>How the images were chosen:</b> "
            f"{esc(chosen)}.</p>")


def _task_table_html(summary: Mapping) -> str:
    """The per-task table of a domain that poses tasks (caption/evaluation/tasks.py `table`): one row per task."""
    rows = summary.get("task_table")
    if not isinstance(rows, list) or not rows or not isinstance(rows[0], Mapping):
        return ""
    keys = list(rows[0])
    head = "".join(f"<th>{esc(k)}</th>" for k in keys)
    body = "\n".join("<tr>" + "".join(f'<td class="num">{esc(_fmt(row.get(k)))}</td>' if k != keys[0]
                                      else f"<th>{esc(_fmt(row.get(k)))}</th>" for k in keys) + "</tr>"
                     for row in rows if isinstance(row, Mapping))
    note = summary.get("task_note")
    return (f'<h2>per task</h2>\n<table class="summary tasks">\n<tr>{head}</tr>\n{body}\n</table>'
            + (f'\n<p class="meta">{esc(note)}</p>' if note else ""))


def _skipped_html(summary: Mapping) -> str:
    skipped = summary.get("skipped")
    if not isinstance(skipped, list) or not skipped:
        return ""
    items = "\n".join(
        f"<li>{esc(s.get('file_name', '?'))}: {esc(s.get('reason', ''))}</li>"
        if isinstance(s, Mapping)
        else f"<li>{esc(s)}</li>"
        for s in skipped
    )
    return f"<h2>skipped ({len(skipped)})</h2>\n<ul class=\"skipped\">\n{items}\n</ul>"


def write_report(
    path: str | Path, rows: Sequence[dict], summary: dict, title: str = "roundtrip report"
) -> Path:
    """Write a single-file HTML report: headline numbers and charts, the per-task table where the summary has one
    (`task_table`), the full table collapsed, skipped items, then a grid of cards."""
    cards = "\n".join(_card(row) for row in rows)
    body = (f'{_intro_html(summary)}\n{_headline_html(summary, rows)}\n{_task_table_html(summary)}\n{_summary_html(summary)}\n'
            f'{_skipped_html(summary)}\n<div class="grid">\n{cards}\n</div>')
    return write_page(path, title, _CSS, body)


def write_strip(
    path: str | Path, items: Sequence[tuple[Image.Image, str, float]], query: str
) -> Path:
    """Write search results for `query` as one HTML strip, in the given (rank) order."""
    figures = "\n".join(
        f'<figure class="hit">{_img(image, name)}<figcaption>#{rank} {esc(name)}'
        f"<br>score {esc(_fmt(float(score)))}</figcaption></figure>"
        for rank, (image, name, score) in enumerate(items, start=1)
    )
    body = f'<div class="strip">\n{figures}\n</div>'
    return write_page(path, f"search: {query}", _CSS, body)
