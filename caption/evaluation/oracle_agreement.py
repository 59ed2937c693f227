"""How far the judge agrees with the strict pixel oracle, per attribute and overall, with bootstrap intervals.

Each row is one image: the oracle's verdict per attribute (right / wrong / unsure, gen/domains/base.py Verdict)
and the judge's probability and reading per attribute (caption/judge/attribute_probs.py). Images the oracle is
unsure of are left out of everything that needs a true answer (AUROC, agreement, calibration); the
unsure rate is reported beside them, and the Spearman against the oracle's fit margin (Verdict.shape_margin, where the
domain has one) uses every image with a margin.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from caption.evaluation.metrics import auroc, bootstrap_stat, spearman
from caption.judge.calibration import expected_calibration_error, reliability
from gen.domains import RIGHT, UNSURE

ALL = "all"


def _columns(rows: Sequence[Mapping[str, Any]], attribute: str, attributes: Sequence[str]) -> dict[str, np.ndarray]:
    """Per image: the oracle's verdict, the judge's probability, and whether the judge reads the prompt's value
    and a value the oracle finds plausible, for one attribute or for all of them together."""
    if attribute == ALL:
        verdict = [r["overall"] for r in rows]
        prob = [r["prob_all"] for r in rows]
        says = [all(r["reading"][a] == r["stated"][a] for a in attributes) for r in rows]
        reads = [all(r["reading"][a] in r["plausible"][a] for a in attributes) for r in rows]
    else:
        verdict = [r["verdict"][attribute] for r in rows]
        prob = [r["prob"][attribute] for r in rows]
        says = [r["reading"][attribute] == r["stated"][attribute] for r in rows]
        reads = [r["reading"][attribute] in r["plausible"][attribute] for r in rows]
    verdict = np.asarray(verdict)
    return {"is_right": verdict == RIGHT, "sure": verdict != UNSURE, "prob": np.asarray(prob, dtype=float),
            "says_right": np.asarray(says), "reads_plausible": np.asarray(reads)}


def _summary(c: dict[str, np.ndarray], debiased: np.ndarray | None = None) -> dict[str, Any]:
    n = len(c["is_right"])
    sure = np.flatnonzero(c["sure"])
    right, prob = c["is_right"][sure], c["prob"][sure]

    def on_sure(stat):  # a statistic of the sure images, resampled among them
        return bootstrap_stat(stat, len(sure))

    out = {
        "images": n,
        "unsure_rate": bootstrap_stat(lambda i: float(np.mean(~c["sure"][i])), n),
        "oracle_right": bootstrap_stat(lambda i: float(np.mean(c["is_right"][i])), n),
        "auroc": on_sure(lambda i: auroc(prob[i], right[i])),
        "agreement": on_sure(lambda i: float(np.mean(c["says_right"][sure][i] == right[i]))),
        "reading_agreement": on_sure(lambda i: float(np.mean(c["reads_plausible"][sure][i]))),
        "ece": on_sure(lambda i: expected_calibration_error(prob[i], right[i])),
        "reliability": reliability(prob, right),
    }
    if debiased is not None:
        out["auroc_debiased"] = on_sure(lambda i: auroc(debiased[sure][i], right[i]))
    return out


def agreement_report(rows: Sequence[Mapping[str, Any]], attributes: Sequence[str] | None = None,
                     margin_attribute: str | None = None) -> dict[str, Any]:
    """Per attribute and overall: unsure rate, oracle accuracy, AUROC, agreement and calibration of the judge;
    and the Spearman correlation of the judge's probability of `margin_attribute` (Domain.margin_attribute; None:
    no Spearman) with the oracle's fit margin. `attributes`: the domain's (Domain.attributes); None: those the
    first row's verdict names, in its order."""
    rows = [r for r in rows if r["prob_all"] == r["prob_all"]]  # NaN: a prompt with no variants, nothing to compare
    if attributes is None:
        attributes = tuple(rows[0]["verdict"]) if rows else ()
    report: dict[str, Any] = {a: _summary(_columns(rows, a, attributes)) for a in attributes}
    report[ALL] = _summary(_columns(rows, ALL, attributes), np.asarray([r["debiased"] for r in rows], dtype=float))
    with_margin = [r for r in rows if r.get("shape_margin") is not None] if margin_attribute is not None else []
    prob = np.asarray([r["prob"][margin_attribute] for r in with_margin], dtype=float)
    margin = np.asarray([r["shape_margin"] for r in with_margin], dtype=float)
    report["spearman_shape_margin"] = bootstrap_stat(lambda i: spearman(prob[i], margin[i]), len(with_margin))
    return report
