"""Where objects stand relative to each other: GenEval's relation rule, read with a margin either way.

GenEval (Ghosh et al. 2023, evaluation/evaluate_images.py) takes the offset between two box centres, shrinks each
axis by a share of the boxes' summed size (0.1), normalises by the offset's length, and says "left of" when the
x part is below -0.5, and so on. A verdict on a generated image must not hang on a pixel either side of those
lines, so the oracle reads the rule twice: strictly (a relation beyond doubt) and leniently (a relation the
pixels allow); the layouts drawn for training stand in exactly one relation both ways.
"""
from __future__ import annotations

import numpy as np

SHRINK = 0.1  # GenEval's POSITION_THRESHOLD: share of the two boxes' summed size taken off each axis's offset
CUT = 0.5  # a relation holds where its axis carries more than this share of the normalised offset
MARGIN_SHRINK, MARGIN_CUT = 0.05, 0.1  # how much stricter or more lenient the sure and plausible readings are

Box = tuple[float, float, float, float]  # centre x, centre y, width, height (y down)


def relations(a: Box, b: Box, shrink: float = SHRINK, cut: float = CUT) -> set[str]:
    """The relations of box `a` to box `b` ("left of": a's centre is left of b's), by GenEval's rule."""
    offset = np.array([a[0] - b[0], a[1] - b[1]], dtype=float)
    length = float(np.linalg.norm(offset))
    if length < 1e-9:
        return set()
    dims = np.array([a[2] + b[2], a[3] + b[3]], dtype=float)
    revised = np.maximum(np.abs(offset) - shrink * dims, 0.0) * np.sign(offset) / length
    dx, dy = revised
    found = set()
    if dx < -cut:
        found.add("left of")
    if dx > cut:
        found.add("right of")
    if dy < -cut:
        found.add("above")
    if dy > cut:
        found.add("below")
    return found


def sure_relations(a: Box, b: Box) -> set[str]:
    """Relations that hold even read strictly: more shrink, a higher cut."""
    return relations(a, b, SHRINK + MARGIN_SHRINK, CUT + MARGIN_CUT)


def plausible_relations(a: Box, b: Box) -> set[str]:
    """Relations that hold read leniently: less shrink, a lower cut."""
    return relations(a, b, SHRINK - MARGIN_SHRINK, CUT - MARGIN_CUT)


def too_close(a: tuple[float, float, float], b: tuple[float, float, float], gap: float) -> bool:
    """Whether two square boxes (x, y, side) come nearer than `gap` on both axes (so they could touch)."""
    reach = (a[2] + b[2]) / 2 + gap
    return abs(a[0] - b[0]) < reach and abs(a[1] - b[1]) < reach
