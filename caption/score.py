"""`caption score`: judge a folder of generated images against their prompts.

Per image: log p(prompt|image) with per-token log-probs, the debiased score, the rank of the prompt
among distractors (R-precision), a round-trip caption with exact match / BLEU-4 / CIDEr-D, and the
pixel oracle for shapes prompts. Aggregates carry bootstrap 95% intervals.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from gen.cli import UserError
from gen.data import UNREADABLE, SkipLog, read_folder, read_rgb, skip_reason
from gen.outputs import atomic_write_text, dumps, refuse_existing, require_dir_or_missing
from gen.shapes import ATTRIBUTES, check, parse_caption

from .judge import Judge
from .metrics import CiderD, auroc, bleu4, bootstrap_ci, rank_of_true
from .negatives import distractors, same_caption
from .report import write_report

log = logging.getLogger(__name__)
OUTPUTS = ("scores.jsonl", "summary.json", "report.html")


def _load_items(samples_dir: Path, judge: Judge, skips: SkipLog) -> list[dict[str, Any]]:
    items = []
    for rec in read_folder(samples_dir, split=None, skips=skips):
        try:  # read_rgb refuses FIFOs and decompression bombs, applies EXIF and scales 16-bit images
            image = read_rgb(rec.path, skips)
        except UNREADABLE as err:
            skips.skip(rec.path.name, skip_reason(err), rec.row)
            continue
        items.append({"file_name": rec.path.name, "prompt": rec.texts[0], "image": image,
                      "pixels": judge.pil_to_pixels(image)})
    return items


def _rank_against_distractors(judge: Judge, tokens: torch.Tensor, prompts: list[str], k: int) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for i, prompt in enumerate(tqdm(prompts, desc="R-precision", leave=False)):
        cands = [prompt] + distractors(prompt, prompts, k, rng)
        scores = judge.debiased(tokens[i:i + 1].repeat(len(cands), 1, 1), cands).tolist()
        best_other = max(scores[1:]) if len(cands) > 1 else float("-inf")
        out.append({"rank": rank_of_true(scores, 0), "candidates": len(cands), "margin": scores[0] - best_other,
                    "best_distractor": cands[1 + int(np.argmax(scores[1:]))] if len(cands) > 1 else None})
    return out


def _oracle(image: Image.Image, prompt: str) -> dict[str, bool] | None:
    attrs = parse_caption(prompt)
    return check(image, prompt) if attrs is not None and len(attrs) == len(ATTRIBUTES) else None


def _ci(values: list[float]) -> dict[str, float]:
    mean, low, high = bootstrap_ci(values)
    return {"mean": mean, "low": low, "high": high, "n": len(values)}


def summarise(rows: list[dict[str, Any]], skips: SkipLog, alpha: float) -> dict[str, Any]:
    """Means with bootstrap 95% intervals, R@1, match rates, oracle accuracy and judge-vs-oracle AUROC."""
    keys = ("logp_sum", "logp_mean", "debiased", "margin", "exact_match", "bleu4", "cider_d")
    means = {k: _ci([float(r[k]) for r in rows]) for k in keys}
    means["r_precision@1"] = _ci([float(r["rank"] == 0) for r in rows])
    judged = [r for r in rows if r["oracle"] is not None]
    oracle = {a: float(np.mean([r["oracle"][a] for r in judged])) for a in ATTRIBUTES} if judged else {}
    if judged:
        oracle["all"] = float(np.mean([r["oracle_pass"] for r in judged]))
    labels = [bool(r["oracle_pass"]) for r in judged]
    vs_oracle = {k: auroc([r[k] for r in judged], labels) for k in ("margin", "debiased", "logp_mean")}
    table = {"images": len(rows), "skipped": sum(skips.counts.values()),
             "r_precision@1": means["r_precision@1"]["mean"], "caption_exact_match": means["exact_match"]["mean"],
             "bleu4": means["bleu4"]["mean"], "cider_d": means["cider_d"]["mean"],
             **{f"oracle_{k}": v for k, v in oracle.items()}, "auroc_judge_vs_oracle": vs_oracle["margin"]}
    return {"alpha": alpha, "means": means, "oracle": oracle, "oracle_judged": len(judged),
            "auroc_vs_oracle": vs_oracle, "table": table, "skipped_counts": skips.summary(), "skipped": skips.items,
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


def score_folder(model_dir: str | Path, samples_dir: str | Path, out: str | Path | None = None,
                 alpha: float | None = None, k: int = 20, overwrite: bool = False) -> dict[str, Any]:
    """Write scores.jsonl, summary.json and report.html for SAMPLES_DIR (any metadata.jsonl folder).

    Earlier outputs in OUT are refused unless `overwrite`. With it they are replaced, but sections of an
    existing summary.json that scoring does not write (such as the demo's `demo`) are kept.
    """
    samples_dir = Path(samples_dir)
    out = Path(out) if out else samples_dir
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
    out.mkdir(parents=True, exist_ok=True)
    judge, skips = Judge(model_dir, alpha), SkipLog()
    items = _load_items(samples_dir, judge, skips)
    if not items:
        raise UserError(f"{samples_dir}: no readable image with a prompt ({skips.summary()})")
    prompts = [it["prompt"] for it in items]
    tokens = judge.encode(torch.stack([it["pixels"] for it in items]))  # (N, T_img, D)
    token_lps = judge.token_logprobs(tokens, prompts)
    prior = judge.prior(prompts).tolist()
    ranks = _rank_against_distractors(judge, tokens, prompts, k)
    captions = judge.caption(torch.stack([it["pixels"] for it in items]))
    cider = CiderD([[p] for p in prompts])
    rows = []
    for it, lps, pr, rk, cap in zip(items, token_lps, prior, ranks, captions):
        total = sum(v for _, v in lps)
        oracle = _oracle(it["image"], it["prompt"])
        rows.append({"file_name": it["file_name"], "prompt": it["prompt"], "logp_sum": total,
                     "logp_mean": total / max(1, len(lps)), "token_logprobs": lps, "log_prior": pr,
                     "debiased": total - judge.alpha * pr, **rk, "caption": cap,
                     "exact_match": same_caption(cap, it["prompt"]), "bleu4": bleu4(cap, [it["prompt"]]),
                     "cider_d": cider.score(cap, [it["prompt"]]), "oracle": oracle,
                     "oracle_pass": None if oracle is None else all(oracle.values())})
    summary = summarise(rows, skips, judge.alpha)
    summary = json.loads(dumps(summary))  # as stored: NaN and inf become null
    stored = {**_kept_sections(out / "summary.json", summary), **summary}
    atomic_write_text(out / "scores.jsonl", "".join(dumps(r) + "\n" for r in rows))
    atomic_write_text(out / "summary.json", dumps(stored, indent=2))
    report_rows = [{"image": it["image"], "prompt": r["prompt"], "token_logprobs": r["token_logprobs"],
                    "caption": r["caption"], "score": r["margin"], "rank": r["rank"], "oracle": r["oracle"],
                    "passed": r["rank"] == 0}  # the judge's verdict; the oracle is shown beside it
                   for it, r in zip(items, rows)]
    write_report(out / "report.html", report_rows, summary, title=f"roundtrip scores: {samples_dir}")
    return stored
