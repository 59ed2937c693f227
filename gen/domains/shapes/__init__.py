"""The synthetic shapes world (render, caption grammar, pixel oracle, hard negatives) and its Domain."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from gen.domains.base import Verdict, same_text
from gen.domains.shapes import negatives as shapes_negatives
from gen.domains.shapes import prompts as shapes_prompts
from gen.domains.shapes import world as shapes


class Shapes:
    """Single-object shapes scenes (world.py): strict pixel oracle, one-word hard negatives, its own data."""

    name = "shapes"
    has_oracle = True
    attributes = shapes.ATTRIBUTES
    margin_attribute = "shape"  # verdict.py: the stated shape's prototype fit minus the best other one's

    def oracle(self, image: Image.Image, prompt: str) -> Verdict | None:
        """The strict oracle's verdict for a prompt that states every attribute; None for any other prompt:
        a verdict on part of a scene would count as a pass what the prompt left open."""
        stated = shapes.parse_caption(prompt)
        return shapes.check_strict(image, prompt) if stated and len(stated) == len(self.attributes) else None

    def stated(self, prompt: str) -> dict[str, str]:
        return shapes.parse_caption(prompt) or {}

    def hard_negatives(self, prompt: str) -> list[str]:
        return shapes_negatives.hard_negatives(prompt)

    def same_caption(self, candidate: str, reference: str) -> bool:
        """The same colour, shape and position in any phrasing; other captions by normalised text."""
        same = shapes_negatives.same_attributes(candidate, reference)
        return same_text(candidate, reference) if same is None else same

    def variants(self, prompt: str) -> dict[str, list[tuple[str, str]]]:
        return shapes_negatives.variants(prompt)

    # The Scenes capability (base.py): this world draws its own images.

    def make_dataset(self, folder: str | Path, count: int, size: int, seed: int) -> Path:
        return shapes.make_dataset(folder, count=count, size=size, seed=seed)

    def ensure_dataset(self, folder: str | Path, count: int, size: int, seed: int) -> Path:
        return shapes.ensure_dataset(folder, count=count, size=size, seed=seed)

    def eval_prompts(self, data_dir: str | Path | None = None, seen: int = 28, seed: int = 0) -> list[str]:
        return shapes_prompts.eval_prompts(data_dir, seen, seed)

    def renders(self, count: int, size: int, seed: int) -> Iterator[tuple[Image.Image, str]]:
        """Each render gets its own generator from (seed, index), as make_dataset's rows do; seed 0 is the
        demo's training set, so callers default to another."""
        combos = shapes.all_combinations()
        for index in range(count):
            spec = combos[index % len(combos)]
            yield shapes.render([spec], size, np.random.default_rng([seed, index])), shapes.phrasings([spec])[0]

    def scene(self, size: int, rng: np.random.Generator) -> tuple[Image.Image, str, shapes.ShapeSpec]:
        combos = shapes.all_combinations()
        spec = combos[int(rng.integers(len(combos)))]
        image = shapes.render([spec], size, rng)
        return image, shapes.caption([spec], rng), spec

    def corrupt(self, text: str, attributes: list[str], rng: np.random.Generator) -> str | None:
        return shapes_negatives.corrupt(text, attributes, rng)
