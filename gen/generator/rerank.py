"""Best-of-N sampling: what a scorer is, and the random baseline any judge must beat.

gen never imports caption, so a judge reaches gen/generator/sample.py through this small protocol: a callable
from images and their prompts to one number per image, higher meaning better. `RandomScorer` is the baseline,
which keeps a candidate at random. Other scorers are found by name among the `roundtrip.scorers` entry points
of the installed packages: caption registers its captioner there (pyproject.toml), so gen names no package
that judges it and still installs and tests alone.
"""
from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, Protocol, Sequence

import numpy as np
from PIL import Image

from gen.core.errors import UserError


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


SCORERS = "roundtrip.scorers"  # the entry-point group of scorer factories: name → callable(**kwargs) → Scorer


def load_scorer(name: str, **kwargs: Any) -> Scorer:
    """The scorer an installed package registers as `name` in the roundtrip.scorers entry points, built with
    `kwargs`; a name that no package registers is a UserError that lists the ones that are."""
    found = {ep.name: ep for ep in entry_points(group=SCORERS)}
    if name not in found:
        raise UserError(f"no scorer named {name!r} is installed (entry points {SCORERS}: "
                        f"{', '.join(sorted(found)) or 'none'}); `pip install -e .` registers caption's 'captioner'")
    return found[name].load()(**kwargs)


def candidate_seed(seed: int, image: int, candidates: int, k: int) -> int:
    """Seed of candidate k of image `image`: seed + image * N + k, so with N = 1 image i keeps seed + i."""
    return seed + image * candidates + k


def best_of(scores: Sequence[float]) -> int:
    """Index of the highest score; the earliest on ties and NaN never wins (unless all are NaN)."""
    values = np.asarray(scores, dtype=float)
    if np.isnan(values).all():
        return 0
    return int(np.nanargmax(values))
