"""Is the judge's probability a probability? Reliability table and expected calibration error (ECE).

Equal-width bins over [0, 1], as in Guo et al. 2017 ("On Calibration of Modern Neural Networks"):
ECE = Σ_bins (n_b / n) · |right rate_b − mean probability_b|. A judge that says 0.8 should be right
on 8 in 10 such images.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BINS = 10


def reliability(probs: Sequence[float], right: Sequence[bool], bins: int = BINS) -> list[dict]:
    """Per bin: its range, how many items fall in it, their mean probability and their right rate."""
    p, y = np.asarray(probs, dtype=float), np.asarray(right, dtype=float)
    index = np.minimum((p * bins).astype(int), bins - 1)  # p = 1 goes into the last bin
    table = []
    for b in range(bins):
        inside = index == b
        n = int(inside.sum())
        table.append({"low": b / bins, "high": (b + 1) / bins, "n": n,
                      "mean_prob": float(p[inside].mean()) if n else None,
                      "right_rate": float(y[inside].mean()) if n else None})
    return table


def expected_calibration_error(probs: Sequence[float], right: Sequence[bool], bins: int = BINS) -> float | None:
    """Σ (n_b / n) |right rate_b − mean prob_b| over non-empty bins; None for no items."""
    n = len(probs)
    if n == 0:
        return None
    return float(sum(row["n"] / n * abs(row["right_rate"] - row["mean_prob"])
                     for row in reliability(probs, right, bins) if row["n"]))
