"""Best-of-N from M ≥ N images per prompt, estimated over every N-subset rather than one draw of them.

Cutting a prompt's M images into M / N disjoint groups, and drawing one random pick per group as the
baseline, gives estimates whose noise hides a lift of ten points on 40 prompts (docs/judge.md). Both
are computed exactly instead, as the unbiased pass@k estimator is (Chen et al. 2021):

- a scorer keeps the best-scored image of a subset; over all C(M, N) subsets, the image ranked i-th
  lowest (0-based) is kept in C(i, N − 1) of them, so its chance of being kept is C(i, N − 1) / C(M, N);
- a random pick is right with probability mean(right), whatever N is;
- an oracle that keeps a right image whenever the subset has one (the ceiling) is right with
  probability 1 − C(M − r, N) / C(M, N) for r right images.

Tied images share their ranks' chances equally (a random tie-break), so a constant score scores exactly as
random does. Intervals resample prompts, and `lift_*` is the paired difference from random.
"""
from __future__ import annotations

from math import comb
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from caption.evaluation.metrics import bootstrap_stat
from gen.domains import RIGHT

SCORERS: dict[str, Callable[[Mapping[str, Any]], float]] = {
    "judge_prob": lambda r: r["prob_all"],
    "judge_debiased": lambda r: r["debiased"],
}


def keep_chance(scores: Sequence[float], right: Sequence[bool], n: int) -> float:
    """The chance that the best-scored of a uniformly random n-subset of the images is right."""
    m = len(scores)
    values = np.array([_finite(s) for s in scores])
    total = 0.0
    for i in range(m):
        if right[i]:
            below, tied = int((values < values[i]).sum()), int((values == values[i]).sum())
            total += np.mean([comb(rank, n - 1) for rank in range(below, below + tied)])
    return total / comb(m, n)


def ceiling(right: Sequence[bool], n: int) -> float:
    """The chance that a random n-subset holds at least one right image."""
    return 1.0 - comb(len(right) - sum(right), n) / comb(len(right), n)


def groups_of(rows: Sequence[Mapping[str, Any]], per_prompt: int) -> list[Sequence[Mapping[str, Any]]]:
    """Rows that come prompt by prompt, `per_prompt` each, cut into one group per prompt (a short tail is dropped)."""
    return [rows[s:s + per_prompt] for s in range(0, len(rows) - per_prompt + 1, per_prompt)]


def group_chances(groups: Sequence[Sequence[Mapping[str, Any]]], n: int) -> dict[str, np.ndarray]:
    """Per group of one prompt's images ({"overall": the oracle's verdict, and each scorer's score}), the chance that
    a best-of-n pick by each scorer, by chance, and by the oracle itself is right: {name: (groups,)}."""
    right = [[r["overall"] == RIGHT for r in g] for g in groups]
    chances = {"random": np.array([np.mean(rg) for rg in right]),
               "oracle_ceiling": np.array([ceiling(rg, n) for rg in right])}
    for name, score in SCORERS.items():
        chances[name] = np.array([keep_chance([score(r) for r in g], rg, n) for g, rg in zip(groups, right)])
    return chances


def chance_summary(chances: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """{name: {value, low, high, n}} of group_chances' arrays, and each scorer's lift over random, paired by group."""
    entry = {k: _mean(v) for k, v in chances.items()}
    for name in SCORERS:
        entry[f"lift_{name}"] = _mean(chances[name] - chances["random"])
    return entry


def best_of_n(rows: Sequence[Mapping[str, Any]], per_prompt: int,
              counts: Sequence[int] = (1, 2, 4, 8)) -> dict[str, dict[str, Any]]:
    """{N: {scorer: {value, low, high, n}}} for every N ≤ per_prompt; rows come prompt by prompt, `per_prompt`
    each, with `overall` the oracle's verdict (Verdict.overall: RIGHT or not). n counts prompts."""
    groups = groups_of(rows, per_prompt)
    return {str(n): chance_summary(group_chances(groups, n)) for n in counts if n <= per_prompt}


def _mean(values: np.ndarray) -> dict[str, Any]:
    return bootstrap_stat(lambda i: float(values[i].mean()), len(values))


def _finite(x: float) -> float:
    return x if x == x else -np.inf  # NaN (no score) ranks lowest
