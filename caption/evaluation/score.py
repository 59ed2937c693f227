"""`caption score`: judge a folder of generated images against their prompts.

Per image: log p(prompt|image) with per-token log-probs, the debiased score, the rank of the prompt
among distractors (R-precision), and a round-trip caption with exact match / BLEU-4 / CIDEr-D. What more
there is depends on the folder's domain (gen/domains/): shapes adds the judge's probability that each
attribute is right and the strict pixel oracle; plain adds nothing, and no caption is parsed. Labelled
rows add the judge's zero-shot class reading (caption/judge/labels.py). Aggregates carry bootstrap 95%
intervals; `headline` holds the few a person reads first (report.html's top).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from caption.evaluation.metrics import CiderD, auroc, bleu4, bootstrap_ci, bootstrap_stat, rank_of_true
from caption.judge.attribute_probs import attribute_probs
from caption.judge.calibration import expected_calibration_error, reliability
from caption.judge.judge import Judge
from caption.judge.labels import (
    Labels,
    class_scores,
    classifier_readings,
    find_labels,
    label_fields,
    label_headline,
    label_summary,
)
from caption.judge.negatives import distractors, other_label_distractors
from caption.judge.views import check_views
from caption.report.page import write_report
from gen import domains
from gen.core.errors import UserError
from gen.core.labelled_grid import labelled_grid
from gen.core.outputs import atomic_write_text, dumps, refuse_existing, require_dir_or_missing
from gen.data import SkipLog, read_folder, read_record_rgb
from gen.domains import RIGHT, UNSURE, WRONG, Domain
from gen.data.selection import folder_selection

log = logging.getLogger(__name__)
OUTPUTS = ("scores.jsonl", "summary.json", "report.html", "scored_grid.png")
GRID_IMAGES = 32  # scored_grid.png: a picture to look at or put in a README, not a second copy of the folder


def _load_items(samples_dir: Path, split: str | None, judge: Judge, skips: SkipLog) -> list[dict[str, Any]]:
    """Readable rows (of `split`, when given; rows without a split always count) with their images."""
    items = []
    for rec in read_folder(samples_dir, split=split, skips=skips):
        image = read_record_rgb(rec, skips)  # None: unreadable, counted in skips
        if image is None:
            continue
        items.append({"file_name": rec.path.name, "prompt": rec.texts[0], "image": image, "record": rec,
                      "pixels": judge.pil_to_pixels(image)})
    return items


def _rank_against_distractors(judge: Judge, tokens: torch.Tensor, prompts: list[str], k: int, domain: Domain,
                              labels: Labels | None) -> list[dict]:
    """R-precision. A labelled image's distractors are prompts of other labels only (a paraphrase of its own
    class is no error); any other image's are the domain's hard negatives, then other prompts."""
    rng = np.random.default_rng(0)
    of_item = labels.of_item if labels is not None else [None] * len(prompts)
    pool = list(zip(prompts, of_item)) + (list(zip(labels.prompts, labels.classes)) if labels is not None else [])
    out = []
    for i, prompt in enumerate(tqdm(prompts, desc="R-precision", leave=False)):
        label = of_item[i]
        wrong = (distractors(prompt, prompts, k, rng, domain) if label is None
                 else other_label_distractors(prompt, label, pool, k, rng, domain))
        cands = [prompt] + wrong
        scores = judge.debiased(tokens[i:i + 1].repeat(len(cands), 1, 1), cands).tolist()
        best_other = max(scores[1:]) if len(cands) > 1 else float("-inf")
        out.append({"rank": rank_of_true(scores, 0), "candidates": len(cands), "margin": scores[0] - best_other,
                    "best_distractor": cands[1 + int(np.argmax(scores[1:]))] if len(cands) > 1 else None})
    return out


def _ci(values: list[float]) -> dict[str, float]:
    mean, low, high = bootstrap_ci(values)
    return {"mean": mean, "low": low, "high": high, "n": len(values)}


def _oracle_summary(judged: list[dict[str, Any]], attributes: tuple[str, ...]) -> dict[str, Any]:
    """Oracle accuracy (unsure counts as not right) and unsure rate per attribute and overall; the judge's
    AUROC against the oracle and its calibration, on the images the oracle is sure of."""
    if not judged:
        return {"oracle": {}, "oracle_unsure": {}, "auroc_vs_oracle": dict.fromkeys(
            ("margin", "debiased", "logp_mean", "p_right")), "calibration": None}
    verdicts = {a: [r["oracle"][a] for r in judged] for a in attributes}
    verdicts["all"] = [r["oracle_overall"] for r in judged]
    sure = [r for r in judged if r["oracle_pass"] is not None]
    labels = [bool(r["oracle_pass"]) for r in sure]
    with_prob = [(r["p_right"], r["oracle_pass"]) for r in sure if r["p_right"] is not None]
    return {"oracle": {a: float(np.mean([v == RIGHT for v in vs])) for a, vs in verdicts.items()},
            "oracle_unsure": {a: float(np.mean([v == UNSURE for v in vs])) for a, vs in verdicts.items()},
            "auroc_vs_oracle": {k: auroc([r[k] for r in sure], labels) if all(r[k] is not None for r in sure) else None
                                for k in ("margin", "debiased", "logp_mean", "p_right")},
            "calibration": {"reliability": reliability(*zip(*with_prob)) if with_prob else [],
                            "ece": expected_calibration_error(*zip(*with_prob)) if with_prob else None}}


def _in_words(attributes: tuple[str, ...]) -> str:
    """("size", "hue", "place") → "size, hue and place", as a sentence names a domain's attributes."""
    return " and ".join(filter(None, (", ".join(attributes[:-1]), attributes[-1]))) if attributes else "every attribute"


def _oracle_headline(rows: list[dict[str, Any]], attributes: tuple[str, ...]) -> list[dict[str, Any]]:
    """The oracle's numbers for the headline; none when no prompt could be checked."""
    judged = [r for r in rows if r.get("oracle") is not None]
    if not judged:
        return []
    sure = [r for r in judged if r["oracle_pass"] is not None]
    right = np.asarray([r["oracle_overall"] == RIGHT for r in judged], dtype=float)
    label = np.asarray([bool(r["oracle_pass"]) for r in sure])
    margin = np.asarray([r["margin"] for r in sure], dtype=float)
    calibrated = [r for r in sure if r["p_right"] is not None]
    prob = np.asarray([r["p_right"] for r in calibrated], dtype=float)
    prob_label = np.asarray([bool(r["oracle_pass"]) for r in calibrated])
    return [
        {"key": "oracle_all", "label": "oracle: all right", "note": f"{_in_words(attributes)} all right by the "
         "strict pixel oracle (unsure counts as not right)",
         **bootstrap_stat(lambda i: float(right[i].mean()), len(judged))},
        {"key": "oracle_unsure", "label": "oracle unsure", "note": "images the oracle cannot call "
         f"(an ambiguous {' or '.join(attributes)}; no object or several)",
         "value": float(np.mean([r["oracle_overall"] == UNSURE for r in judged])), "n": len(judged)},
        {"key": "auroc_judge_vs_oracle", "label": "judge vs oracle AUROC", "note": "the judge's margin separates "
         "oracle-right from oracle-wrong images (oracle-unsure ones left out)",
         **bootstrap_stat(lambda i: auroc(margin[i], label[i]), len(sure))},
        {"key": "ece", "label": "calibration error", "note": "ECE of the judge's probability that all attributes are "
         "right, against the oracle", **bootstrap_stat(lambda i: expected_calibration_error(prob[i], prob_label[i]),
                                                       len(calibrated))},
    ]


def _headline(rows: list[dict[str, Any]], skipped: int, labels: dict[str, Any] | None,
              attributes: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The numbers a person reads first, with bootstrap 95% intervals (report.html opens with them): the judge's
    R@1, its class accuracy for labelled rows, the oracle's numbers where there is an oracle, the skips."""
    ranked = np.asarray([r["rank"] == 0 for r in rows], dtype=float)
    r_at_1 = {"key": "r_precision@1", "label": "judge R@1", "note": "the prompt scored above all its distractors "
              "(hard negatives where the domain has them, then other prompts; for a labelled image, prompts of "
              "other classes only)", **bootstrap_stat(lambda i: float(ranked[i].mean()), len(rows))}
    return [r_at_1, *(label_headline(labels) if labels is not None else []), *_oracle_headline(rows, attributes),
            {"key": "skipped", "label": "skipped", "note": "rows not scored (see the list below)", "value": skipped}]


def summarise(rows: list[dict[str, Any]], skips: SkipLog, alpha: float, domain: Domain = domains.PLAIN,
              labels: dict[str, Any] | None = None) -> dict[str, Any]:
    """Means with bootstrap 95% intervals, R@1 and match rates; oracle accuracy and judge-vs-oracle AUROC in a
    domain with an oracle; the judge's class accuracy (`labels`, caption/judge/labels.py) for labelled rows."""
    keys = ("logp_sum", "logp_mean", "debiased", "margin", "exact_match", "bleu4", "cider_d")
    means = {k: _ci([float(r[k]) for r in rows]) for k in keys}
    means["r_precision@1"] = _ci([float(r["rank"] == 0) for r in rows])
    skipped = sum(skips.counts.values())
    table = {"images": len(rows), "skipped": skipped,
             "r_precision@1": means["r_precision@1"]["mean"], "caption_exact_match": means["exact_match"]["mean"],
             "bleu4": means["bleu4"]["mean"], "cider_d": means["cider_d"]["mean"]}
    found: dict[str, Any] = {}
    if domain.has_oracle:
        judged = [r for r in rows if r["oracle"] is not None]
        found = {**_oracle_summary(judged, domain.attributes), "oracle_judged": len(judged)}
        table |= {**{f"oracle_{k}": v for k, v in found["oracle"].items()},
                  "auroc_judge_vs_oracle": found["auroc_vs_oracle"]["margin"]}
    if labels is not None:
        found["labels"] = labels
        table["judge_accuracy"] = labels["judge_accuracy"]["value"]
    return {"alpha": alpha, "domain": domain.name, "headline": _headline(rows, skipped, labels, domain.attributes), "means": means,
            **found, "table": table, "skipped_counts": skips.summary(), "skipped": skips.items,
            "notes": dict(skips.notes)}


def _kept_sections(summary_path: Path, written: dict[str, Any]) -> dict[str, Any]:
    """Top-level sections of an existing summary.json that scoring does not write (the demo's `demo`)."""
    try:
        old = json.loads(summary_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    kept = {k: v for k, v in old.items() if k not in written} if isinstance(old, dict) else {}
    if kept:
        log.info("%s: keeping its sections %s", summary_path, ", ".join(kept))
    return kept


def _check_arguments(samples_dir: Path, out: Path, alpha: float | None, k: int, overwrite: bool,
                     views: int | None = None) -> None:
    """Every mistake a user can fix, before a model is loaded."""
    check_views(views)
    if alpha is not None and not math.isfinite(alpha):
        raise UserError(f"--alpha must be a finite number, not {alpha}")
    if k < 0:
        raise UserError(f"--distractors must be ≥ 0, not {k}")
    require_dir_or_missing(out)
    if not overwrite:
        refuse_existing([out / name for name in OUTPUTS], "caption score")
    if not (samples_dir / "metadata.jsonl").is_file():
        raise FileNotFoundError(f"{samples_dir} has no metadata.jsonl; pass a folder written by `gen sample` "
                                "or any folder with a metadata.jsonl")


def _domain_fields(judge: Judge, pixels: torch.Tensor, tokens: torch.Tensor, items: list[dict[str, Any]],
                   domain: Domain) -> list[dict]:
    """Per image, what the domain adds: the judge's attribute probabilities (over the image and its warped views)
    and the oracle's verdict; nothing at all for a domain with neither (plain), whose prompts are then
    never parsed."""
    fields: list[dict[str, Any]] = [{} for _ in items]
    if domain.attributes:
        views = judge.encode_views(pixels, tokens)
        probs = attribute_probs(judge, views, [it["prompt"] for it in items], domain)
        for i, f in enumerate(fields):
            f["p_right"] = None if math.isnan(probs.all[i]) else float(probs.all[i])
            f["p_attributes"] = {a: float(p[i]) for a, p in probs.probs.items() if not math.isnan(p[i])}
    if domain.has_oracle:
        for it, f in zip(items, fields):
            verdict = domain.oracle(it["image"], it["prompt"])
            overall = None if verdict is None else verdict.overall
            f |= {"oracle": None if verdict is None else verdict.attributes, "oracle_overall": overall,
                  "oracle_pass": {RIGHT: True, WRONG: False}.get(overall),  # None: unsure, or no oracle
                  "shape_margin": None if verdict is None else verdict.shape_margin}
    return fields


def _judge_rows(judge: Judge, items: list[dict[str, Any]], domain: Domain, k: int,
                labels: Labels | None) -> tuple[list[dict[str, Any]], torch.Tensor]:
    """One scores.jsonl row per image (without label fields), and the images' tokens (N, T_img, D)."""
    prompts = [it["prompt"] for it in items]
    pixels = torch.stack([it["pixels"] for it in items])  # (N, 3, S, S)
    tokens = judge.encode(pixels)  # (N, T_img, D)
    token_lps = judge.token_logprobs(tokens, prompts)
    prior = judge.prior(prompts).tolist()
    ranks = _rank_against_distractors(judge, tokens, prompts, k, domain, labels)
    captions = judge.caption(pixels)
    cider = CiderD([[p] for p in prompts])
    rows = []
    for it, lps, pr, rk, cap, extra in zip(items, token_lps, prior, ranks, captions,
                                           _domain_fields(judge, pixels, tokens, items, domain)):
        total = sum(v for _, v in lps)
        rows.append({"file_name": it["file_name"], "prompt": it["prompt"], "logp_sum": total,
                     "logp_mean": total / max(1, len(lps)), "token_logprobs": lps, "log_prior": pr,
                     "debiased": total - judge.alpha * pr, **rk, "caption": cap,
                     "exact_match": domain.same_caption(cap, it["prompt"]), "bleu4": bleu4(cap, [it["prompt"]]),
                     "cider_d": cider.score(cap, [it["prompt"]]), **extra})
    return rows, tokens


def _write(out: Path, samples_dir: Path, items: list[dict[str, Any]], rows: list[dict[str, Any]],
           summary: dict[str, Any]) -> dict[str, Any]:
    """scores.jsonl, summary.json (keeping sections scoring does not write) and report.html; the stored summary."""
    summary = json.loads(dumps(summary))  # as stored: NaN and inf become null
    stored = {**_kept_sections(out / "summary.json", summary), **summary}
    atomic_write_text(out / "scores.jsonl", "".join(dumps(r) + "\n" for r in rows))
    atomic_write_text(out / "summary.json", dumps(stored, indent=2))
    shown = ("oracle", "oracle_overall", "p_right", "label", "judge_label")  # the ones a row has
    report_rows = [{"image": it["image"], "prompt": r["prompt"], "token_logprobs": r["token_logprobs"],
                    "caption": r["caption"], "score": r["margin"], "rank": r["rank"],
                    "passed": r["rank"] == 0,  # the judge's verdict; the oracle is shown beside it
                    **{key: r[key] for key in shown if key in r}}
                   for it, r in zip(items, rows)]
    write_report(out / "report.html", report_rows, summary, title=f"roundtrip scores: {samples_dir}")
    shown_rows = rows[:GRID_IMAGES]
    grid = labelled_grid([it["image"] for it in items[:GRID_IMAGES]], [r["prompt"] for r in shown_rows],
                         [_verdict(r) for r in shown_rows], [r["rank"] == 0 for r in shown_rows])
    grid.save(out / "scored_grid.png")
    return stored


def _verdict(row: dict[str, Any]) -> str:
    """The judge's word on one image, short enough for a grid tile: the prompt's rank among its distractors
    (1: the judge reads the image as this prompt) and, where it has one, its probability that all is right."""
    rank = f"rank {row['rank'] + 1}"
    return f"{rank}, p {row['p_right']:.2f}" if row.get("p_right") is not None else rank


def score_folder(model_dir: str | Path, samples_dir: str | Path, out: str | Path | None = None,
                 alpha: float | None = None, k: int = 20, overwrite: bool = False, domain: str | None = None,
                 split: str | None = None, labels_from: str | Path | None = None,
                 views: int | None = None, device: str | None = None) -> dict[str, Any]:
    """Write scores.jsonl, summary.json and report.html for SAMPLES_DIR (any metadata.jsonl folder).

    `domain`: a name in gen.domains.DOMAINS; by default the one SAMPLES_DIR/info.json declares, else plain (gen/domains/).
    `split`: score only rows of that split (a `gen prepare` folder's test images). `labels_from`: a labelled
    data set whose captions give unlabelled prompts their class (caption/judge/labels.py). `views`: warped copies the
    attribute probabilities average over (caption/judge/views.py); None: the captioner's own setting.
    Earlier outputs in OUT are refused unless `overwrite`. With it they are replaced, but sections of an
    existing summary.json that scoring does not write (such as the demo's `demo`) are kept.
    """
    samples_dir = Path(samples_dir)
    out = Path(out) if out else samples_dir
    _check_arguments(samples_dir, out, alpha, k, overwrite, views)
    world, why = domains.resolve(domain, samples_dir)
    log.info("%s: scored as %s captions (%s)", samples_dir, world.name, why)
    trained = domains.get(domains.of_model(model_dir), f"{model_dir}'s config")
    if why == domains.UNDECLARED and trained.has_oracle:  # info.json is read once, above
        log.warning("%s declares no domain, so no prompt is checked by the %s oracle; the judge was trained on "
                    "%s: pass --domain %s if these are %s prompts", samples_dir, *[trained.name] * 4)
    out.mkdir(parents=True, exist_ok=True)
    judge, skips = Judge(model_dir, alpha, device, views=views), SkipLog()
    items = _load_items(samples_dir, split, judge, skips)
    if not items:
        where = f" of split {split!r}" if split is not None else ""
        raise UserError(f"{samples_dir}: no readable image with a prompt{where} ({skips.summary()})")
    labels = find_labels([it["record"] for it in items], labels_from)
    rows, tokens = _judge_rows(judge, items, world, k, labels)
    section = None
    if labels is not None:
        scores = class_scores(judge, tokens, labels.prompts)
        extra = label_fields(labels, scores, [it["record"] for it in items], samples_dir,
                             classifier_readings(samples_dir))
        for row, fields in zip(rows, extra):
            row |= fields
        section = label_summary(labels, scores, rows)
    summary = summarise(rows, skips, judge.alpha, world, section) | {
        "views": dataclasses.asdict(judge.views),
        # Best-of-N changes what every score here means: recorded beside them, and said at the report's top.
        "selection": folder_selection([it["record"] for it in items])}
    return _write(out, samples_dir, items, rows, summary)
