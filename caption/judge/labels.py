"""Label-aware scoring: the judge as a zero-shot classifier with one prompt per class.

When the scored rows carry a `label` (as `gen prepare` writes them), or their prompts map to one through a
real data set (`--labels-from DIR`, with gen/evaluate/real.py's caption table), every image is scored
against one prompt per class, that class's most common first caption, and the class whose prompt scores
highest is the judge's reading. Its share of right readings is the judge's zero-shot accuracy; beside it,
when `gen evaluate` has left per-image classifier readings in evaluation.json, how often the two agree.

The ranking score is the plain log-likelihood log p(t|i), not the debiased one (caption/judge/judge.py): at the
default α the two tie on class prompts of different lengths, and debiasing only loses as α grows (measurements
in docs/judge.md, "Domains and label-aware scoring"). So the reading does not depend on α, which was tuned for
another task (the one-word hard negatives of R-precision). Both accuracies are stored (`by_score`), for every
judge scored.
"""
from __future__ import annotations

import collections
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from caption.evaluation.metrics import bootstrap_stat, rank_of_true
from caption.judge.judge import Judge
from gen.core.errors import UserError
from gen.data.records import Record, SkipLog, read_folder
from gen.data import caption_labels, label_of, row_name, sample_labels

log = logging.getLogger(__name__)
SCORE = "logp"  # what ranks the class prompts (see the module docstring)
SCORES = ("debiased", "logp")


@dataclass
class Labels:
    classes: list[str]
    prompts: list[str]  # one per class: its rows' most common first caption
    of_item: list[str | None]  # each scored image's label; None where neither its row nor its prompt gives one
    source: str  # where the labels came from, for summary.json


def class_prompt(records: Sequence[Record]) -> str:
    """The most common first caption among a class's rows (the first seen wins a tie)."""
    return collections.Counter(r.texts[0] for r in records).most_common(1)[0][0]


def find_labels(records: Sequence[Record], labels_from: str | Path | None = None) -> Labels | None:
    """The class set, class prompts and each record's label, or None when the rows give no labels.

    Classes and prompts come from the --labels-from data set when given (its labelled rows, every split),
    else from the scored rows themselves. A record's label is its row's, else its prompt's in that data set.
    """
    real = read_folder(labels_from, split=None, skips=SkipLog(warn=False)) if labels_from else None
    source = real if real is not None else records
    classes = sorted({lab for r in source if (lab := label_of(r)) is not None})
    if len(classes) < 2:
        if labels_from:
            raise UserError(f"--labels-from {labels_from}: its rows carry {len(classes)} labels; it needs rows with "
                            '"label" of at least two classes (see `gen prepare`)')
        return None
    of_item = sample_labels(records, caption_labels(real) if real is not None else {}, classes)
    if all(lab is None for lab in of_item):
        if labels_from:
            log.warning("no scored prompt is a caption of %s: no label-aware scores", labels_from)
        return None
    by_class: dict[str, list[Record]] = collections.defaultdict(list)  # one pass: thousands of classes (OpenMoji)
    for r in source:
        if (lab := label_of(r)) is not None:
            by_class[lab].append(r)
    prompts = [class_prompt(by_class[c]) for c in classes]
    shared = [p for p, n in collections.Counter(prompts).items() if n > 1]
    if shared:
        log.warning("classes share a class prompt (%s): the judge cannot tell them apart", ", ".join(shared))
    return Labels(classes, prompts, of_item, str(labels_from) if labels_from else "the rows' labels")


def class_logp(judge: Judge, tokens: torch.Tensor, prompts: Sequence[str]) -> torch.Tensor:
    """log p(prompt | image) of every image (tokens (N, T_img, D)) against every class prompt: (N, C)."""
    c = len(prompts)
    step = max(1, judge.batch_size // c)
    return torch.cat([judge.logp(tokens[s:s + step].repeat_interleave(c, 0), list(prompts) * len(tokens[s:s + step]))
                      .view(-1, c) for s in range(0, len(tokens), step)])


def class_scores(judge: Judge, tokens: torch.Tensor, prompts: Sequence[str]) -> dict[str, np.ndarray]:
    """Every image (tokens (N, T_img, D)) against every class prompt: {"logp", "debiased"} → (N, C)."""
    logp = class_logp(judge, tokens, prompts)
    prior = judge.prior(prompts)  # (C,)
    return {"logp": logp.numpy(), "debiased": (logp - judge.alpha * prior).numpy()}


def classifier_readings(samples_dir: Path) -> dict[str, str] | None:
    """file_name → the class `gen evaluate`'s classifier read, from SAMPLES/evaluation.json; None without one."""
    path = samples_dir / "evaluation.json"
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8")).get("predictions")
    except (OSError, ValueError, AttributeError):
        found = None
    if not isinstance(found, list):
        log.warning("%s has no per-image predictions; rerun `gen evaluate --overwrite` to compare the judge with "
                    "its classifier", path)
        return None
    return {p["file_name"]: str(p["predicted"]) for p in found
            if isinstance(p, dict) and isinstance(p.get("file_name"), str) and "predicted" in p}


def label_fields(labels: Labels, scores: dict[str, np.ndarray], records: Sequence[Record], samples_dir: Path,
                 readings: dict[str, str] | None) -> list[dict[str, Any]]:
    """Per image: its label, the judge's reading, the label's rank among the class prompts (0 = read right;
    ties count against it, as in R-precision), and the classifier's reading where evaluation.json has one."""
    chosen = scores[SCORE]
    rows = []
    for i, (label, rec) in enumerate(zip(labels.of_item, records)):
        row: dict[str, Any] = {"label": label, "judge_label": labels.classes[int(np.argmax(chosen[i]))],
                               "label_rank": None if label is None else
                               rank_of_true(chosen[i].tolist(), labels.classes.index(label))}
        if readings is not None:
            row["classifier_label"] = readings.get(row_name(rec, samples_dir))
        rows.append(row)
    return rows


def _accuracy(hits: Sequence[bool]) -> dict[str, Any]:
    """Share of hits with a percentile-bootstrap 95% interval (caption/evaluation/metrics.py)."""
    x = np.asarray(hits, dtype=float)
    return bootstrap_stat(lambda i: float(x[i].mean()), len(x))


def label_summary(labels: Labels, scores: dict[str, np.ndarray], rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """summary.json's `labels`: the judge's zero-shot accuracy overall and per class, and its agreement with the
    classifier of `gen evaluate` (None without per-image predictions)."""
    known = [i for i, r in enumerate(rows) if r["label"] is not None]
    truth = [labels.classes.index(rows[i]["label"]) for i in known]
    by_score = {name: float(np.mean([rank_of_true(scores[name][i].tolist(), t) == 0 for i, t in zip(known, truth)]))
                for name in SCORES}
    compared = [rows[i] for i in known if rows[i].get("classifier_label") is not None]
    return {
        "source": labels.source, "classes": len(labels.classes), "class_prompts": dict(zip(labels.classes, labels.prompts)),
        "score": SCORE, "n": len(known), "unlabelled": len(rows) - len(known), "chance": 1 / len(labels.classes),
        "judge_accuracy": _accuracy([rows[i]["label_rank"] == 0 for i in known]),
        "by_score": by_score,
        "per_class": {c: _accuracy([rows[i]["label_rank"] == 0 for i in known if rows[i]["label"] == c])
                      for c in labels.classes},
        "agreement_with_classifier": _accuracy([r["judge_label"] == r["classifier_label"] for r in compared])
        if compared else None,
        "classifier_accuracy": _accuracy([r["classifier_label"] == r["label"] for r in compared]) if compared else None,
    }


def label_headline(section: dict[str, Any]) -> list[dict[str, Any]]:
    """The label numbers report.html opens with: the judge's accuracy, and its agreement with the classifier."""
    items = [{"key": "judge_accuracy", "label": "judge: class accuracy",
              "note": f"the image's class prompt scored highest among {section['classes']} (one per class; chance "
                      f"{section['chance']:.3f})", **section["judge_accuracy"]}]
    if section["agreement_with_classifier"] is not None:
        items.append({"key": "agreement_with_classifier", "label": "judge agrees with classifier",
                      "note": "the judge's class is the one `gen evaluate`'s classifier read",
                      **section["agreement_with_classifier"]})
    return items
