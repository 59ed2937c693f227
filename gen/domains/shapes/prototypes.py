"""Ideal circle, square and triangle drawn into an object's box, and how well the object fits each.

The fit is the soft intersection over union of the object's coverage with each prototype's, each
fitted to the object by its moments. A clean
render fits its own prototype at about 0.95 and the next best at most about 0.8 (a disc in its box
against the box); a lumpy blob fits two of them about equally, and that is what the strict oracle
reads as "unsure" (gen/domains/shapes/verdict.py).
"""

from __future__ import annotations

import numpy as np

PROTOTYPES: tuple[str, ...] = ("circle", "square", "triangle")
# Sample points per pixel side: coverage is exact to about 1/64 of a pixel, as the renders'
# 4x supersampling is to 1/16.
SUBSAMPLES = 8


def prototype(shape: str, box: tuple[float, float, float, float], height: int, width: int) -> np.ndarray:
    """Coverage (H, W) in 0..1 of the ideal `shape` filling box (centre x, centre y, width, height).

    The shapes are drawn as gen/domains/shapes/world.py renders them: a disc (an ellipse for a non-square box), the
    box itself, and an apex-up triangle whose base is the bottom of the box.
    """
    cx, cy, bw, bh = box
    offsets = (np.arange(SUBSAMPLES) + 0.5) / SUBSAMPLES
    xs = (np.arange(width)[:, None] + offsets).ravel()  # (W * S,)
    ys = (np.arange(height)[:, None] + offsets).ravel()  # (H * S,)
    u = (xs[None, :] - cx) / max(bw / 2, 1e-6)  # (H * S, W * S), -1..1 across the box
    v = (ys[:, None] - cy) / max(bh / 2, 1e-6)
    if shape == "circle":
        inside = u**2 + v**2 <= 1
    elif shape == "square":
        inside = (np.abs(u) <= 1) & (np.abs(v) <= 1)
    elif shape == "triangle":  # half-width grows from 0 at the top (v = -1) to 1 at the base (v = 1)
        inside = (np.abs(v) <= 1) & (np.abs(u) <= (v + 1) / 2)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return inside.reshape(height, SUBSAMPLES, width, SUBSAMPLES).mean(axis=(1, 3))


def soft_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Σ min / Σ max of two coverage maps: 1 for identical maps, 0 for disjoint ones (and for two empty ones)."""
    union = np.maximum(a, b).sum()
    return float(np.minimum(a, b).sum() / union) if union > 0 else 0.0


# Per prototype: (variance of x / width², variance of y / height², centroid below the box middle / height).
# A uniform square has variance side²/12, a disc diameter²/16; the apex-up triangle's rows widen
# linearly, so its x variance is width²/24, its y variance height²/18 and its centroid height/6 low.
_MOMENTS = {"circle": (1 / 16, 1 / 16, 0.0), "square": (1 / 12, 1 / 12, 0.0), "triangle": (1 / 24, 1 / 18, 1 / 6)}
# A pixel's coverage is summed as if at its centre, which drops the spread within the pixel (1/12 px²).
_PIXEL_VARIANCE = 1 / 12


def fit_box(coverage: np.ndarray, shape: str) -> tuple[float, float, float, float]:
    """The box (centre x, centre y, width, height) in which `shape` has the coverage's mean and variance.

    Moments use every covered pixel, so the box stays sub-pixel exact under blur and a missing apex
    pixel; a box read from the extreme rows (shapes_oracle._geometry) cuts a triangle's apex off.
    """
    mass = coverage.sum()
    if mass <= 0:
        return (0.0, 0.0, 0.0, 0.0)
    ys, xs = np.arange(coverage.shape[0]) + 0.5, np.arange(coverage.shape[1]) + 0.5
    px, py = coverage.sum(axis=0) / mass, coverage.sum(axis=1) / mass  # (W,), (H,)
    mx, my = float(px @ xs), float(py @ ys)
    vx = float(px @ (xs - mx) ** 2) + _PIXEL_VARIANCE
    vy = float(py @ (ys - my) ** 2) + _PIXEL_VARIANCE
    kx, ky, drop = _MOMENTS[shape]
    width, height = (vx / kx) ** 0.5, (vy / ky) ** 0.5
    return (mx, my - drop * height, width, height)


def shape_fits(coverage: np.ndarray) -> dict[str, float]:
    """Soft IoU of an object's coverage (H, W) with each prototype, each fitted to it by its moments."""
    coverage = np.clip(coverage, 0.0, 1.0)  # a pixel brighter than the object's colour is still one pixel
    h, w = coverage.shape
    return {shape: soft_iou(coverage, prototype(shape, fit_box(coverage, shape), h, w)) for shape in PROTOTYPES}
