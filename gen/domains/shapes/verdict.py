"""The strict oracle: per stated attribute, right, wrong or unsure.

A reading is sure only when no other value is nearly as good. For each attribute the oracle keeps
the set of *plausible* values, those within a margin of the best reading; the verdict is

- right when the stated value is the only plausible one,
- wrong when the stated value is not plausible at all,
- unsure otherwise (the stated value is one of several plausible ones).

So an object halfway between a circle and a square is "unsure" for a prompt that says circle or
square, but still "wrong" for one that says triangle. An image with no object or with several
objects is unsure on every attribute: which object the prompt meant cannot be told. The margins
keep at least 99.5% of clean renders right (docs/judge.md gives the measurement and its command).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from gen.domains.base import RIGHT, UNSURE, WRONG, Verdict
from gen.domains.shapes.oracle import CENTER_DEAD_ZONE, Reading, position_at

# A shape is plausible when its prototype fits within this soft IoU of the best one. Clean 32 px
# renders keep a margin of at least 0.12 over the next prototype; the demo generator's images 0.08.
SHAPE_MARGIN = 0.05
# Below this best fit the object is no clear circle, square or triangle at all (renders fit >= 0.89).
MIN_SHAPE_FIT = 0.7
# A colour is plausible when its distance is within 1 / COLOR_RATIO of the nearest one's: at 0.6 an
# object must be ~1.7x nearer one palette colour than any other. Renders sit at a ratio near 0.
COLOR_RATIO = 0.6
# A position is plausible when the box middle, moved by up to this (fraction of the side), would read
# as it. Renders sit >= 0.085 from the centre's dead zone edge (CENTER_DEAD_ZONE) and >= 0.17 from
# the diagonals, so 0.04 is about a pixel and a half of slack at 32 px.
POSITION_MARGIN = 0.04


def plausible_values(reading: Reading | None, vocabulary: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Per attribute, every value the pixels leave open; all of `vocabulary` when there is not exactly one object."""
    if reading is None or reading.blobs != 1:
        return {attribute: list(values) for attribute, values in vocabulary.items()}
    return {"color": plausible_colors(reading.color_distances), "shape": plausible_shapes(reading.shape_fits),
            "position": _plausible_positions(*reading.offset)}


def plausible_colors(distances: Mapping[str, float]) -> list[str]:
    """The palette colours within COLOR_RATIO of the nearest one (one, for a clean render)."""
    nearest = min(distances.values())
    return [c for c, d in distances.items() if nearest >= COLOR_RATIO * d]


def plausible_shapes(fits: Mapping[str, float]) -> list[str]:
    """The shapes whose prototype fits within SHAPE_MARGIN of the best; all of them when none fits well."""
    best = max(fits.values())
    return [s for s, f in fits.items() if f >= best - SHAPE_MARGIN or best < MIN_SHAPE_FIT]


def _plausible_positions(dx: float, dy: float, directions: int = 16) -> list[str]:
    """Positions read anywhere within POSITION_MARGIN of (dx, dy): the centre and a ring around it."""
    angles = np.linspace(0, 2 * np.pi, directions, endpoint=False)
    points = [(dx, dy)] + [(dx + POSITION_MARGIN * np.cos(a), dy + POSITION_MARGIN * np.sin(a)) for a in angles]
    seen = {position_at(x, y) for x, y in points}
    # A ring of points can step over the thin dead-zone corner; the distance to it is checked exactly.
    if abs(max(abs(dx), abs(dy)) - CENTER_DEAD_ZONE) < POSITION_MARGIN:
        seen.add("center")
    return sorted(seen)


def verdict_for(reading: Reading | None, stated: Mapping[str, str],
                vocabulary: Mapping[str, Sequence[str]]) -> Verdict:
    """Right / wrong / unsure for each stated attribute, and the shape fit margin."""
    plausible = plausible_values(reading, vocabulary)
    attributes = {}
    for attribute, value in stated.items():
        options = plausible[attribute]
        attributes[attribute] = RIGHT if options == [value] else UNSURE if value in options else WRONG
    margin = None
    if reading is not None and stated.get("shape") in reading.shape_fits:
        fits = reading.shape_fits
        margin = fits[stated["shape"]] - max(f for s, f in fits.items() if s != stated["shape"])
    return Verdict(attributes, plausible, margin)
