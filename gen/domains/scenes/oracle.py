"""The scenes oracle: find every object, read each one's colour and shape, and give GenEval's verdict per task.

Objects are the connected components of the foreground (shapes/oracle.py's `blobs`), each read as the
single-object oracle reads its one object: a palette colour after a brightness fit, and the best-fitting
prototype. Each reading keeps the values the pixels leave open (shapes/verdict.py's margins), so a verdict is
right only when no plausible reading of the image would make it wrong, and wrong only when none would make it
right; between the two it is unsure, which the strict score counts as wrong.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gen.domains.base import RIGHT, UNSURE, WRONG, Verdict
from gen.domains.scenes import geometry
from gen.domains.scenes.grammar import Claim, Group
from gen.domains.shapes.oracle import FOREGROUND_DISTANCE, blobs, color_distances, to_array
from gen.domains.shapes.prototypes import fit_box, shape_fits
from gen.domains.shapes.verdict import plausible_colors, plausible_shapes
from gen.domains.shapes.world import BACKGROUND, COLORS, SHAPES

# Coverage (pixels) from which a component is an object, and below which it is sampling noise, as fractions of
# the smallest rendered object's area (a triangle of side 0.21: 0.022 of the canvas). Between the two a
# component may or may not be an object: it counts for "at most" but never for "at least".
OBJECT_AREA, NOISE_AREA = 0.5, 0.15
SMALLEST_OBJECT = 0.21**2 / 2


@dataclass(frozen=True)
class Found:
    """One component: the colours and shapes it may be, whether it surely is an object, and its box."""

    colors: tuple[str, ...]
    shapes: tuple[str, ...]
    sure_object: bool
    box: geometry.Box  # centre x, centre y, width, height in pixels, from the best shape's moment fit

    def may_be(self, group: Group) -> bool:
        return group.shape in self.shapes and (group.color is None or group.color in self.colors)

    def surely_is(self, group: Group) -> bool:
        return self.sure_object and self.shapes == (group.shape,) and (
            group.color is None or self.colors == (group.color,))


def find_objects(image) -> list[Found]:
    """Every component big enough to be an object, read."""
    arr = to_array(image)
    height, width = arr.shape[:2]
    offset = arr - np.asarray(BACKGROUND, dtype=np.float64)  # (H, W, 3)
    distance = np.linalg.norm(offset, axis=2)  # (H, W)
    smallest = SMALLEST_OBJECT * height * width
    found = []
    for blob in blobs(distance > FOREGROUND_DISTANCE):
        inner = blob & (distance >= 0.7 * np.percentile(distance[blob], 90))  # edges mix in the background
        rgb = np.median(arr[inner], axis=0)  # (3,)
        axis = rgb - np.asarray(BACKGROUND, dtype=np.float64)
        alpha = np.maximum(offset @ axis / max(axis @ axis, 1e-6), 0.0)  # (H, W): coverage by this colour
        alpha *= _grow(blob)  # the component and its antialiased edge ring only
        area = float(np.clip(alpha, 0, 1).sum())
        if area < NOISE_AREA * smallest:
            continue
        fits = shape_fits(alpha)
        best = max(fits, key=fits.get)
        sure = area >= OBJECT_AREA * smallest
        colors = plausible_colors(color_distances(tuple(rgb), COLORS, BACKGROUND)) if sure else list(COLORS)
        shapes = plausible_shapes(fits) if sure else list(SHAPES)
        found.append(Found(tuple(colors), tuple(shapes), sure, fit_box(np.clip(alpha, 0, 1), best)))
    return found


def _grow(mask: np.ndarray) -> np.ndarray:
    """The mask and every pixel next to it (3x3)."""
    padded = np.pad(mask, 1)
    h, w = mask.shape
    return np.any([padded[dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)], axis=0)


def _at_least(found: Sequence[Found], group: Group) -> str:
    if sum(f.surely_is(group) for f in found) >= group.count:
        return RIGHT
    return WRONG if sum(f.may_be(group) for f in found) < group.count else UNSURE


def _exactly(found: Sequence[Found], group: Group) -> str:
    sure, possible = sum(f.surely_is(group) for f in found), sum(f.may_be(group) for f in found)
    if sure == possible == group.count:
        return RIGHT
    return WRONG if not sure <= group.count <= possible else UNSURE


def _relation(found: Sequence[Found], claim: Claim) -> str:
    """GenEval's position check: every object of the first group stands in the relation to every one of the
    second. Right when every pair that may be such a pair surely does; wrong when a sure pair surely does not."""
    a, b = claim.groups
    pairs = [(x, y) for x in found for y in found if x is not y and x.may_be(a) and y.may_be(b)]
    if all(claim.relation in geometry.sure_relations(x.box, y.box) for x, y in pairs):
        return RIGHT
    if any(x.surely_is(a) and y.surely_is(b) and claim.relation not in geometry.plausible_relations(x.box, y.box)
           for x, y in pairs):
        return WRONG
    return UNSURE


def verdict(image, claim: Claim) -> Verdict:
    """The claim's task → right / wrong / unsure; the per-object readings as `plausible`."""
    return judge_found(find_objects(image), claim)


def judge_found(found: Sequence[Found], claim: Claim) -> Verdict:
    """`verdict` on objects already read: reading is most of the cost, so several claims about one image share it."""
    check = _exactly if claim.exact else _at_least
    parts = [check(found, g) for g in claim.groups]
    if claim.task == "position" and WRONG not in parts:
        parts.append(_relation(found, claim))
    result = WRONG if WRONG in parts else UNSURE if UNSURE in parts else RIGHT
    plausible = {f"object {i}": [*f.colors, *f.shapes] for i, f in enumerate(found)}
    return Verdict({claim.task: result}, plausible)
