"""The prompts a shapes generator is evaluated on: every held-out combination and a fixed draw of seen ones.

The held-out combinations are the ones make_dataset kept out of training (world.heldout_combinations), so the
list asks both "does it draw what it was taught" and "does it compose values it never saw together".
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gen.core.english import article
from gen.domains.shapes.world import PLACE_PHRASES, ShapeSpec, all_combinations, heldout_combinations


def canonical(spec: ShapeSpec) -> str:
    """'a red circle on the left': one fixed phrasing, so every generator is asked the same words."""
    return f"{article(spec.color)} {spec.color} {spec.shape} {PLACE_PHRASES[spec.position]}"


def eval_prompts(data_dir: str | Path | None = None, seen: int = 28, seed: int = 0) -> list[str]:
    """Every held-out combination, then `seen` others drawn with `seed`. The held-out set is DATA_DIR/heldout.json,
    or without a folder the one make_dataset draws with `seed` (seed 0: the demo's data)."""
    if data_dir is None:
        unseen = heldout_combinations(seed)
    else:
        unseen = [ShapeSpec(**c) for c in json.loads((Path(data_dir) / "heldout.json").read_text())]
    rest = [c for c in all_combinations() if c not in unseen]
    rng = np.random.default_rng(seed)
    picked = [rest[i] for i in sorted(rng.choice(len(rest), seen, replace=False))]
    return [canonical(c) for c in unseen + picked]
