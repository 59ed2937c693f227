"""Two small inline SVG charts for report.html: the judge's scores split by the oracle's verdict, and the
reliability diagram. Hand-written SVG (a few rects and lines) keeps the report one self-contained file
with no plotting dependency; matplotlib would be the only reason to install it.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from gen.core.html import esc

WIDTH, HEIGHT = 360, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 40, 10, 40, 36
LEGEND_Y = 30  # a row of legend entries between the title and the plot
# The oracle's verdicts in the cards' colours (caption/report/page.py): green right, red wrong, grey unsure.
VERDICT_COLORS = {"right": "#2a9d3a", "wrong": "#d33", "unsure": "#999", "all images": "#4a6fa5"}


def _frame(title: str, x_label: str, y_label: str, x_ticks: Sequence[tuple[float, str]],
           y_ticks: Sequence[tuple[float, str]], body: str) -> str:
    """Axes, ticks and labels around `body`, whose coordinates are already in pixels."""
    left, bottom = PAD_LEFT, HEIGHT - PAD_BOTTOM
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="system-ui, sans-serif" font-size="11" role="img">',
             f"<title>{esc(title)}</title>",
             f'<text x="{WIDTH / 2}" y="14" text-anchor="middle" font-size="12">{esc(title)}</text>', body,
             f'<line x1="{left}" y1="{bottom}" x2="{WIDTH - PAD_RIGHT}" y2="{bottom}" stroke="#333"/>',
             f'<line x1="{left}" y1="{PAD_TOP}" x2="{left}" y2="{bottom}" stroke="#333"/>']
    parts += [f'<text x="{x:.1f}" y="{bottom + 13}" text-anchor="middle">{esc(t)}</text>' for x, t in x_ticks]
    parts += [f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{esc(t)}</text>' for y, t in y_ticks]
    parts.append(f'<text x="{(left + WIDTH - PAD_RIGHT) / 2}" y="{HEIGHT - 4}" text-anchor="middle">'
                 f"{esc(x_label)}</text>")
    parts.append(f'<text transform="translate(11 {(PAD_TOP + bottom) / 2}) rotate(-90)" text-anchor="middle">'
                 f"{esc(y_label)}</text>")
    parts.append("</svg>")
    return "\n".join(parts)


def score_histogram(groups: Mapping[str, Sequence[float]], title: str, x_label: str, bins: int = 20) -> str:
    """Overlaid step histograms of the scores in each group (e.g. by the oracle's verdict), with a legend."""
    values = [v for vs in groups.values() for v in vs if math.isfinite(v)]
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, bins + 1)
    counts = {name: np.histogram([v for v in vs if math.isfinite(v)], edges)[0] for name, vs in groups.items()}
    top = max(1, max(int(c.max()) for c in counts.values()))
    x = lambda v: PAD_LEFT + (v - low) / (high - low) * (WIDTH - PAD_LEFT - PAD_RIGHT)  # noqa: E731
    y = lambda c: HEIGHT - PAD_BOTTOM - c / top * (HEIGHT - PAD_TOP - PAD_BOTTOM)  # noqa: E731
    body = []
    for k, (name, c) in enumerate(counts.items()):
        color = VERDICT_COLORS.get(name, "#555")
        points = [(x(edges[0]), y(0))]
        for i, n in enumerate(c):
            points += [(x(edges[i]), y(n)), (x(edges[i + 1]), y(n))]
        points.append((x(edges[-1]), y(0)))
        path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
        body.append(f'<polyline points="{path}" fill="{color}" fill-opacity="0.25" stroke="{color}" '
                    'stroke-width="1.5"/>')
        lx = PAD_LEFT + 100 * k
        body.append(f'<rect x="{lx}" y="{LEGEND_Y - 9}" width="10" height="10" fill="{color}"/>'
                    f'<text x="{lx + 14}" y="{LEGEND_Y}">{esc(name)} ({len(groups[name])})</text>')
    x_ticks = [(x(v), f"{v:.1f}") for v in np.linspace(low, high, 5)]
    y_ticks = [(y(c), str(c)) for c in sorted({0, top // 2, top})]
    return _frame(title, x_label, "images", x_ticks, y_ticks, "\n".join(body))


def reliability_diagram(table: Sequence[Mapping], title: str) -> str:
    """Right rate per probability bin as bars against the diagonal (perfect calibration); counts on the bars."""
    if not any(row["n"] for row in table):
        return ""
    span_x, span_y = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_TOP - PAD_BOTTOM
    x = lambda p: PAD_LEFT + p * span_x  # noqa: E731
    y = lambda r: HEIGHT - PAD_BOTTOM - r * span_y  # noqa: E731
    body = [f'<line x1="{x(0)}" y1="{y(0)}" x2="{x(1)}" y2="{y(1)}" stroke="#999" stroke-dasharray="4 3"/>']
    for row in table:
        if not row["n"]:
            continue
        x0, x1, top = x(row["low"]) + 1, x(row["high"]) - 1, y(row["right_rate"])
        body.append(f'<rect x="{x0:.1f}" y="{top:.1f}" width="{x1 - x0:.1f}" height="{y(0) - top:.1f}" '
                    f'fill="#4a6fa5" fill-opacity="0.7"><title>{row["n"]} images, mean p {row["mean_prob"]:.2f}, '
                    f'right {row["right_rate"]:.2f}</title></rect>')
        body.append(f'<circle cx="{x(row["mean_prob"]):.1f}" cy="{top:.1f}" r="2.5" fill="#222"/>')
        body.append(f'<text x="{(x0 + x1) / 2:.1f}" y="{top - 3:.1f}" text-anchor="middle" font-size="9">'
                    f'{row["n"]}</text>')
    ticks = [(x(p), f"{p:.1f}") for p in (0, 0.5, 1)]
    return _frame(title, "judge's probability that all attributes are right", "oracle: right rate",
                  ticks, [(y(r), f"{r:.1f}") for r in (0, 0.5, 1)], "\n".join(body))
