"""What every data world offers generic code: the Domain protocol, the oracle's Verdict, and the plain world.

Generic code (`caption score`, best-of-N reranking, the captioner's exact-match metric) asks a domain
"is there an oracle? hard negatives? attributes to probe?" instead of parsing captions itself, so a
folder of photos is never read as shapes captions. A world with an exact pixel oracle (shapes/) answers
with a Verdict per stated attribute; the plain world has no oracle, no negatives and no attributes.
"""
from __future__ import annotations

import re
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image

RIGHT, WRONG, UNSURE = "right", "wrong", "unsure"
VERDICTS: tuple[str, ...] = (RIGHT, WRONG, UNSURE)


@dataclass(frozen=True)
class Verdict:
    """An oracle's answer for one image and one caption: per stated attribute, right, wrong or unsure."""

    attributes: dict[str, str]  # stated attribute -> right / wrong / unsure
    plausible: dict[str, list[str]] = field(default_factory=dict)  # attribute -> values the pixels allow
    # How clearly the image shows the form asked for: the stated value's fit minus the best other value's
    # (> 0: the stated one fits best). None where the world has no such measure, or nothing was drawn.
    shape_margin: float | None = None

    @property
    def overall(self) -> str:
        """Wrong if any attribute is wrong, else unsure if any is unsure, else right."""
        values = set(self.attributes.values())
        return WRONG if WRONG in values else UNSURE if UNSURE in values else RIGHT

    @property
    def right(self) -> bool:
        """Every stated attribute right (the strict reading: unsure counts as not right)."""
        return self.overall == RIGHT

    def passed(self) -> dict[str, bool]:
        """Per attribute, whether it is right (unsure counts as not right)."""
        return {a: v == RIGHT for a, v in self.attributes.items()}


def same_text(candidate: str, reference: str) -> bool:
    """Equal after lower-casing, dropping punctuation and collapsing spaces ("Hello, world!" == "hello world")."""
    norm = lambda s: " ".join(re.sub(r"[^\w\s]", " ", s.lower()).split())  # noqa: E731
    return norm(candidate) == norm(reference)


class Domain(Protocol):
    """What scoring may ask of a data world."""

    name: str
    has_oracle: bool  # whether `oracle` can ever answer: scores then carry oracle fields, else none at all
    attributes: tuple[str, ...]  # the attributes `variants` edits (caption/judge/attribute_probs.py); () for none
    margin_attribute: str | None  # the attribute whose fit Verdict.shape_margin measures; None: verdicts carry none

    def oracle(self, image: Image.Image, prompt: str) -> Verdict | None:
        """A pixel check of the prompt, or None where the domain has none for this prompt."""

    def stated(self, prompt: str) -> dict[str, str]:
        """The attribute values the prompt states, in `attributes` order; {} where it states none."""

    def hard_negatives(self, prompt: str) -> list[str]:
        """Captions a small edit away from the prompt that say something else."""

    def same_caption(self, candidate: str, reference: str) -> bool:
        """Whether a caption says what the reference says (the round trip's exact match)."""

    def variants(self, prompt: str) -> dict[str, list[tuple[str, str]]]:
        """Per attribute the prompt states: (value, caption) for its own value first, then each other value."""


class Scenes(Protocol):
    """What a world that draws its own images offers besides: a data set, clean renders, corrupted captions.

    Optional: the plain world has none of it; `registry.scenes` hands a domain out as one, or says which can."""

    def make_dataset(self, folder: str | Path, count: int, size: int, seed: int) -> Path:
        """Write `count` captioned images of side `size` into `folder` (and its info.json), over any set there."""

    def ensure_dataset(self, folder: str | Path, count: int, size: int, seed: int) -> Path:
        """make_dataset unless a finished set is in `folder` already."""

    def eval_prompts(self, data_dir: str | Path | None = None, seen: int = 28, seed: int = 0) -> list[str]:
        """Prompts to evaluate a generator on: every combination held out of the data in DATA_DIR (without one, of
        the set `seed` draws), then `seen` combinations it trained on, in one fixed phrasing."""

    def renders(self, count: int, size: int, seed: int) -> Iterator[tuple[Image.Image, str]]:
        """`count` clean renders, every combination of attribute values in turn, each with a caption that states
        them all: what the oracle must call right."""

    def scene(self, size: int, rng: np.random.Generator) -> tuple[Image.Image, str, Hashable]:
        """One random scene drawn with `rng`: its image, a caption of it, and a key equal for scenes that show the
        same combination of attribute values."""

    def corrupt(self, text: str, attributes: list[str], rng: np.random.Generator) -> str | None:
        """`text` with each listed attribute changed to a random other value; None when it cannot be."""


class Plain:
    """Any captions: nothing to check pixels against and no grammar to edit."""

    name = "plain"
    has_oracle = False
    attributes: tuple[str, ...] = ()
    margin_attribute: str | None = None

    def oracle(self, image: Image.Image, prompt: str) -> Verdict | None:
        return None

    def stated(self, prompt: str) -> dict[str, str]:
        return {}

    def hard_negatives(self, prompt: str) -> list[str]:
        return []

    def same_caption(self, candidate: str, reference: str) -> bool:
        return same_text(candidate, reference)

    def variants(self, prompt: str) -> dict[str, list[tuple[str, str]]]:
        return {}
