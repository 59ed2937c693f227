"""Pixel oracle for the shapes data set: find the object, then read colour, shape and position.

Numpy only (no scipy), and tolerant of what a diffusion model adds to the clean renders:
noise, blur and a few stray pixels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

# A pixel is foreground when it is this far (RGB distance) from the background; every
# palette colour is > 170 away, so this admits antialiased edges but not sampling noise.
FOREGROUND_DISTANCE = 60.0
# Coverage below this is treated as noise when measuring the box (see `_geometry`).
NOISE_FLOOR = 0.15
# Objects at least this many pixels across measure their box ignoring the single most
# covered pixel per row / column, so a stray pixel stuck to an edge does not widen it;
# smaller ones cannot spare a pixel (a 5-pixel triangle would lose its apex).
ROBUST_EXTENT = 8.0
# Shape rules on `Geometry`: an apex-up triangle has 3/4 of its area below the middle of
# its box (balance 0.5; circle and square 0); a disc fills pi/4 of its box, a square all of it.
TRIANGLE_BALANCE = 0.15
SQUARE_FILL = 0.88
# How much darker or brighter than its palette entry an object may be (see nearest_color).
COLOR_GAIN = (0.6, 1.25)
# Offsets from the image centre (fractions of the side) below this count as "center"; the
# renders sit at 0 or 0.25 (+- jitter), so 0.125 splits the difference.
CENTER_DEAD_ZONE = 0.125


@dataclass(frozen=True)
class Geometry:
    """Sub-pixel measurements of one object, in pixels unless noted."""

    width: float
    height: float
    area: float
    box_x: float  # middle of the box, from the column / row coverage profiles
    box_y: float
    balance: float  # (area below box_y - area above) / area
    rgb: tuple[int, int, int]

    @property
    def fill(self) -> float:
        """Fraction of the bounding box the object covers."""
        return self.area / max(self.width * self.height, 1e-6)


def to_array(image) -> np.ndarray:
    """HxWx3 float array in 0..255 from a PIL image, a uint8 array, or a float array in 0..1."""
    if hasattr(image, "convert"):
        image = image.convert("RGB")
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {arr.shape}")
    # Float images are taken as 0..1, as diffusers pipelines return them with output_type="np".
    scale = 255.0 if np.issubdtype(arr.dtype, np.floating) else 1.0
    return arr.astype(np.float64) * scale


def largest_blob(mask: np.ndarray) -> np.ndarray:
    """Largest 8-connected component of a boolean mask (empty mask -> empty mask)."""
    if not mask.any():
        return mask
    # Label propagation: each pixel repeatedly takes the largest label in its 3x3
    # neighbourhood until nothing changes; vectorised, so fast on small images.
    labels = np.where(mask, np.arange(1, mask.size + 1).reshape(mask.shape), 0)
    while True:
        grown = _max3x3(labels) * mask
        if np.array_equal(grown, labels):
            break
        labels = grown
    ids, counts = np.unique(labels[mask], return_counts=True)
    return labels == ids[np.argmax(counts)]


def _max3x3(values: np.ndarray) -> np.ndarray:
    """Maximum over each pixel's 3x3 neighbourhood (zero padding)."""
    padded = np.pad(values, 1)
    h, w = values.shape
    shifts = [padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]
    return np.max(shifts, axis=0)


def measure(arr: np.ndarray, background: tuple[int, int, int]) -> Geometry | None:
    """Geometry of the largest foreground blob, or None when there is no foreground."""
    offset = arr - np.asarray(background, dtype=np.float64)  # (H, W, 3)
    distance = np.linalg.norm(offset, axis=2)  # (H, W)
    blob = largest_blob(distance > FOREGROUND_DISTANCE)
    if not blob.any():
        return None
    # The colour comes from the interior only: antialiased or blurred edges are mixed
    # with the background and would pull a plain median towards it.
    inner = blob & (distance >= 0.7 * np.percentile(distance[blob], 90))
    rgb = np.median(arr[inner], axis=0)  # (3,)
    # Coverage per pixel = projection onto the object colour, so a half-covered edge
    # pixel counts 0.5; this keeps sizes sub-pixel and unchanged by blur.
    axis = rgb - np.asarray(background, dtype=np.float64)
    alpha = np.maximum(offset @ axis / max(axis @ axis, 1e-6), 0.0)  # (H, W)
    alpha *= _max3x3(blob.astype(np.int64)) > 0  # the blob plus its edge ring
    return _geometry(alpha, tuple(int(round(v)) for v in rgb))


def _geometry(alpha: np.ndarray, rgb: tuple[int, int, int]) -> Geometry:
    """Box size and middle from coverage profiles; area and balance from the coverage."""
    # The box comes from maxima, which noise pushes up: so they read a ramp from
    # NOISE_FLOOR to 1 - NOISE_FLOOR (symmetric about 0.5, so edges stay in place). The
    # area sums the coverage as measured, where noise averages out.
    ramp = np.clip((alpha - NOISE_FLOOR) / (1 - 2 * NOISE_FLOOR), 0.0, 1.0)
    cols, rows = ramp.max(axis=0), ramp.max(axis=1)  # (W,), (H,)
    if min(cols.sum(), rows.sum()) >= ROBUST_EXTENT:
        cols, rows = np.sort(ramp, axis=0)[-2], np.sort(ramp, axis=1)[:, -2]
    width, height, area = cols.sum(), rows.sum(), alpha.sum()
    centres_x = np.arange(alpha.shape[1]) + 0.5
    centres_y = np.arange(alpha.shape[0]) + 0.5
    box_x = float(cols @ centres_x / max(width, 1e-6))
    box_y = float(rows @ centres_y / max(height, 1e-6))
    side = np.clip(centres_y - box_y, -0.5, 0.5) * 2  # -1 above the middle, +1 below
    balance = float(alpha.sum(axis=1) @ side / max(area, 1e-6))
    return Geometry(float(width), float(height), float(area), box_x, box_y, balance, rgb)


def nearest_color(
    rgb: tuple[int, int, int],
    palette: Mapping[str, tuple[int, int, int]],
    background: tuple[int, int, int],
) -> str:
    """Palette name closest to `rgb` once each colour may be dimmed or brightened a little."""
    names = list(palette)
    bg = np.asarray(background, dtype=np.float64)
    colours = np.asarray([palette[n] for n in names], dtype=np.float64) - bg  # (K, 3)
    target = np.asarray(rgb, dtype=np.float64) - bg  # (3,)
    # A generated object is often a shade darker or lighter than its palette colour
    # (darkened yellow is nearer orange in plain RGB); fit that gain, within limits.
    gain = np.clip(colours @ target / np.sum(colours**2, axis=1), *COLOR_GAIN)  # (K,)
    residual = np.linalg.norm(target - gain[:, None] * colours, axis=1)  # (K,)
    return names[int(np.argmin(residual))]


def classify_shape(geo: Geometry) -> str:
    """Triangle by its bottom-heavy area, then circle vs square by how much of the box it fills."""
    if geo.balance > TRIANGLE_BALANCE:
        return "triangle"
    return "square" if geo.fill >= SQUARE_FILL else "circle"


def classify_position(geo: Geometry, height: int, width: int) -> str:
    """Whichever offset from the image centre dominates, with a dead zone for "center"."""
    dx = geo.box_x / width - 0.5
    dy = geo.box_y / height - 0.5
    if max(abs(dx), abs(dy)) < CENTER_DEAD_ZONE:
        return "center"
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "top" if dy < 0 else "bottom"


def read_scene(
    image, palette: Mapping[str, tuple[int, int, int]], background: tuple[int, int, int]
) -> dict[str, str] | None:
    """Colour, shape and position of the single object in `image`, or None if it is empty."""
    arr = to_array(image)
    geo = measure(arr, background)
    if geo is None:
        return None
    return {
        "color": nearest_color(geo.rgb, palette, background),
        "shape": classify_shape(geo),
        "position": classify_position(geo, arr.shape[0], arr.shape[1]),
    }
