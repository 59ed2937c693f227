"""The synthetic shapes world (render, caption grammar, pixel oracle, hard negatives) and its Domain."""
from __future__ import annotations

from PIL import Image

from gen.domains.base import Verdict, same_text
from gen.domains.shapes import negatives as shapes_negatives
from gen.domains.shapes import world as shapes


class Shapes:
    """Single-object shapes scenes (world.py): strict pixel oracle, one-word hard negatives."""

    name = "shapes"
    has_oracle = True
    attributes = shapes.ATTRIBUTES

    def oracle(self, image: Image.Image, prompt: str) -> Verdict | None:
        """The strict oracle's verdict for a prompt that states every attribute; None for any other prompt:
        a verdict on part of a scene would count as a pass what the prompt left open."""
        stated = shapes.parse_caption(prompt)
        return shapes.check_strict(image, prompt) if stated and len(stated) == len(self.attributes) else None

    def hard_negatives(self, prompt: str) -> list[str]:
        return shapes_negatives.hard_negatives(prompt)

    def same_caption(self, candidate: str, reference: str) -> bool:
        """The same colour, shape and position in any phrasing; other captions by normalised text."""
        same = shapes_negatives.same_attributes(candidate, reference)
        return same_text(candidate, reference) if same is None else same

    def variants(self, prompt: str) -> dict[str, list[tuple[str, str]]]:
        return shapes_negatives.variants(prompt)
