"""The scenes world (1–4 objects; GenEval's six tasks, grammar.py), its oracle and hard negatives, as a Domain."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from gen.domains.base import Verdict
from gen.domains.scenes import grammar, negatives, oracle, prompts, world


class MultiObjectScenes:
    """Scenes of several objects: a strict oracle per GenEval task, binding-swap hard negatives, its own data."""

    name = "scenes"
    has_oracle = True
    attributes: tuple[str, ...] = ()  # a verdict is per task (grammar.TASKS), not per attribute
    margin_attribute: str | None = None
    tasks = grammar.TASKS
    task_names = grammar.TASK_NAMES  # how a table names each task
    # What a 2-core CPU run of configs/gen/scenes48.yaml is held to, unseen combinations only (docs/scenes.md).
    targets = {"single_object": 0.97, "two_object": 0.85, "counting": 0.70, "colors": 0.90, "position": 0.70,
               "color_attr": 0.70, "overall": 0.80}

    def task(self, prompt: str) -> str | None:
        """The GenEval task a prompt poses, or None when it is not in the grammar."""
        claim = grammar.parse(prompt)
        return None if claim is None else claim.task

    def oracle(self, image: Image.Image, prompt: str) -> Verdict | None:
        claim = grammar.parse(prompt)
        return None if claim is None else oracle.verdict(image, claim)

    def stated(self, prompt: str) -> dict[str, str]:
        return {}

    def hard_negatives(self, prompt: str) -> list[str]:
        return negatives.hard_negatives(prompt)

    def hard_negative_kinds(self, prompt: str) -> list[tuple[str, str]]:
        """(kind of edit, negative) for each of `hard_negatives`, in the same order ("swap colours", ...)."""
        claim = grammar.parse(prompt)
        if claim is None:
            return []
        return list(zip([kind for kind, _ in negatives.edits(claim)], self.hard_negatives(prompt)))

    def same_caption(self, candidate: str, reference: str) -> bool:
        return negatives.same_claim(grammar.parse(candidate), grammar.parse(reference))

    def variants(self, prompt: str) -> dict[str, list[tuple[str, str]]]:
        return {}

    # The Scenes capability (base.py): this world draws its own images.

    def make_dataset(self, folder: str | Path, count: int, size: int, seed: int) -> Path:
        return world.make_dataset(folder, count=count, size=size, seed=seed)

    def ensure_dataset(self, folder: str | Path, count: int, size: int, seed: int) -> Path:
        return world.ensure_dataset(folder, count=count, size=size, seed=seed)

    def eval_prompts(self, data_dir: str | Path | None = None, seen: int = 28, seed: int = 0) -> list[str]:
        return prompts.eval_prompts(data_dir, seen, seed)

    def renders(self, count: int, size: int, seed: int) -> Iterator[tuple[Image.Image, str]]:
        """Clean renders of the benchmark's prompts in turn (every task), each drawn exactly as it asks."""
        rows = prompts.build()
        for index in range(count):
            text = rows[index % len(rows)]["prompt"]
            things = world.things_for(grammar.parse(text), np.random.default_rng([seed, index]))
            yield world.render(things, size), text

    def benchmark(self, path: str | Path | None = None) -> list[dict]:
        """The benchmark's prompt rows {"prompt", "task", "unseen"}: PATH, or the committed file."""
        return prompts.load(path or prompts.PROMPT_FILE)

    def render_prompt(self, prompt: str, size: int, rng: np.random.Generator) -> Image.Image:
        """A clean render of exactly what PROMPT asks (a ValueError if it is not in the grammar)."""
        claim = grammar.parse(prompt)
        if claim is None:
            raise ValueError(f"not a scenes prompt: {prompt!r}")
        return world.render(world.things_for(claim, rng), size)

    def scene(self, size: int, rng: np.random.Generator) -> tuple[Image.Image, str, tuple]:
        image, things, claims = world.random_scene(size, world.held_out(0), rng)
        claim = claims[int(rng.integers(len(claims)))]
        return image, grammar.pick_phrasing(claim, rng), tuple(things)

    def corrupt(self, text: str, attributes: list[str], rng: np.random.Generator) -> str | None:
        """`text` with one random edit of its claim (negatives.edits); its `attributes` are all () here."""
        found = negatives.hard_negatives(text)
        return found[int(rng.integers(len(found)))] if found else None
