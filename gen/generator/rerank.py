"""Best-of-N sampling: what a scorer is, and the random baseline any judge must beat.

gen never imports caption, so a judge reaches gen/generator/sample.py through this small protocol: a callable
from images and their prompts to one number per image, higher meaning better. The captioner's scorer
(caption/judge/scorer.py) is one; `RandomScorer` is the baseline, which keeps a candidate at random.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np
from PIL import Image


class Scorer(Protocol):
    """Scores images against their prompts: one float per (images[k], prompts[k]), higher is better."""

    name: str

    def __call__(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[float]: ...


class RandomScorer:
    """Uniform random scores from a seeded generator: best-of-N by chance, the baseline for a judge.

    Scores are drawn in call order, so a run with the same seed and candidates reproduces them.
    """

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[float]:
        return self.rng.random(len(images)).tolist()


def candidate_seed(seed: int, image: int, candidates: int, k: int) -> int:
    """Seed of candidate k of image `image`: seed + image * N + k, so with N = 1 image i keeps seed + i."""
    return seed + image * candidates + k


def best_of(scores: Sequence[float]) -> int:
    """Index of the highest score; the earliest on ties and NaN never wins (unless all are NaN)."""
    values = np.asarray(scores, dtype=float)
    if np.isnan(values).all():
        return 0
    return int(np.nanargmax(values))
