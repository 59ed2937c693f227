"""What every data world offers generic code: the Domain protocol, the oracle's Verdict, and the plain world.

Generic code (`caption score`, best-of-N reranking, the captioner's exact-match metric) asks a domain
"is there an oracle? hard negatives? attributes to probe?" instead of parsing captions itself, so a
folder of photos is never read as shapes captions. A world with an exact pixel oracle (shapes/) answers
with a Verdict per stated attribute; the plain world has no oracle, no negatives and no attributes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

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

    def oracle(self, image: Image.Image, prompt: str) -> Verdict | None:
        """A pixel check of the prompt, or None where the domain has none for this prompt."""

    def hard_negatives(self, prompt: str) -> list[str]:
        """Captions a small edit away from the prompt that say something else."""

    def same_caption(self, candidate: str, reference: str) -> bool:
        """Whether a caption says what the reference says (the round trip's exact match)."""

    def variants(self, prompt: str) -> dict[str, list[tuple[str, str]]]:
        """Per attribute the prompt states: (value, caption) for its own value first, then each other value."""


class Plain:
    """Any captions: nothing to check pixels against and no grammar to edit."""

    name = "plain"
    has_oracle = False
    attributes: tuple[str, ...] = ()

    def oracle(self, image: Image.Image, prompt: str) -> Verdict | None:
        return None

    def hard_negatives(self, prompt: str) -> list[str]:
        return []

    def same_caption(self, candidate: str, reference: str) -> bool:
        return same_text(candidate, reference)

    def variants(self, prompt: str) -> dict[str, list[tuple[str, str]]]:
        return {}
