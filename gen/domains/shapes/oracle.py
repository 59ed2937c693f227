"""Pixel oracle for the shapes data set: find the object, then read colour, shape and position.

Numpy only (scipy is not a dependency), and tolerant of what a diffusion model adds to the clean
renders: noise, blur and a few stray pixels. `read_object` also returns the evidence behind each
reading (palette distances, prototype fits, offsets, blob count), from which gen/domains/shapes/verdict.py
decides whether the reading is sure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from gen.domains.shapes.prototypes import shape_fits

# A pixel is foreground when it is this far (RGB distance) from the background; every
# palette colour is > 170 away, so this admits antialiased edges but not sampling noise.
FOREGROUND_DISTANCE = 60.0
# Coverage below this is treated as noise when measuring the box (see `_geometry`).
NOISE_FLOOR = 0.15
# Objects at least this many pixels across measure their box ignoring the single most
# covered pixel per row / column, so a stray pixel stuck to an edge does not widen it;
# smaller ones cannot spare a pixel (a 5-pixel triangle would lose its apex).
ROBUST_EXTENT = 8.0
# A foreground component counts as an object when it has at least this many pixels and this share of
# the largest one's; smaller ones are the stray pixels of sampling noise.
MIN_BLOB_PIXELS = 3
BLOB_SHARE = 0.2
# How much darker or brighter than its palette entry an object may be (see color_distances).
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
    rgb: tuple[int, int, int]


class Measured(NamedTuple):
    """The largest foreground blob: its geometry, its coverage map (H, W) and how many blobs count."""

    geometry: Geometry
    coverage: np.ndarray
    blobs: int


@dataclass(frozen=True)
class Reading:
    """What the oracle reads in one image, with the evidence for how sure each reading is."""

    color: str
    shape: str
    position: str
    blobs: int  # foreground components large enough to be an object (1 for a clean render)
    color_distances: dict[str, float]  # per palette colour, the RGB residual after the gain fit
    shape_fits: dict[str, float]  # per shape, soft IoU with its prototype (gen/domains/shapes/prototypes.py)
    offset: tuple[float, float]  # (dx, dy) of the box middle from the image centre, fractions of the side

    def values(self) -> dict[str, str]:
        return {"color": self.color, "shape": self.shape, "position": self.position}


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


def blobs(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a boolean mask, largest first (empty mask -> [])."""
    if not mask.any():
        return []
    # Label propagation: each pixel repeatedly takes the largest label in its 3x3
    # neighbourhood until nothing changes; vectorised, so fast on small images.
    labels = np.where(mask, np.arange(1, mask.size + 1).reshape(mask.shape), 0)
    while True:
        grown = _max3x3(labels) * mask
        if np.array_equal(grown, labels):
            break
        labels = grown
    ids, counts = np.unique(labels[mask], return_counts=True)
    return [labels == ids[i] for i in np.argsort(-counts, kind="stable")]


def count_objects(components: list[np.ndarray]) -> int:
    """How many components are large enough to be an object rather than stray pixels."""
    if not components:
        return 0
    floor = max(MIN_BLOB_PIXELS, BLOB_SHARE * components[0].sum())
    return sum(1 for c in components if c.sum() >= floor)


def _max3x3(values: np.ndarray) -> np.ndarray:
    """Maximum over each pixel's 3x3 neighbourhood (zero padding)."""
    padded = np.pad(values, 1)
    h, w = values.shape
    shifts = [padded[dy : dy + h, dx : dx + w] for dy in range(3) for dx in range(3)]
    return np.max(shifts, axis=0)


def measure(arr: np.ndarray, background: tuple[int, int, int]) -> Measured | None:
    """Geometry and coverage of the largest foreground blob, or None when there is no foreground."""
    offset = arr - np.asarray(background, dtype=np.float64)  # (H, W, 3)
    distance = np.linalg.norm(offset, axis=2)  # (H, W)
    components = blobs(distance > FOREGROUND_DISTANCE)
    if not components:
        return None
    blob = components[0]
    # The colour comes from the interior only: antialiased or blurred edges are mixed
    # with the background and would pull a plain median towards it.
    inner = blob & (distance >= 0.7 * np.percentile(distance[blob], 90))
    rgb = np.median(arr[inner], axis=0)  # (3,)
    # Coverage per pixel = projection onto the object colour, so a half-covered edge
    # pixel counts 0.5; this keeps sizes sub-pixel and unchanged by blur.
    axis = rgb - np.asarray(background, dtype=np.float64)
    alpha = np.maximum(offset @ axis / max(axis @ axis, 1e-6), 0.0)  # (H, W)
    alpha *= _max3x3(blob.astype(np.int64)) > 0  # the blob plus its edge ring
    geometry = _geometry(alpha, tuple(int(round(v)) for v in rgb))
    return Measured(geometry, alpha, count_objects(components))


def _geometry(alpha: np.ndarray, rgb: tuple[int, int, int]) -> Geometry:
    """Box size and middle from coverage profiles; area from the coverage."""
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
    return Geometry(float(width), float(height), float(area), box_x, box_y, rgb)


def color_distances(
    rgb: tuple[int, int, int],
    palette: Mapping[str, tuple[int, int, int]],
    background: tuple[int, int, int],
) -> dict[str, float]:
    """Per palette name, how far `rgb` is from it once each colour may be dimmed or brightened a little."""
    names = list(palette)
    bg = np.asarray(background, dtype=np.float64)
    colours = np.asarray([palette[n] for n in names], dtype=np.float64) - bg  # (K, 3)
    target = np.asarray(rgb, dtype=np.float64) - bg  # (3,)
    # A generated object is often a shade darker or lighter than its palette colour
    # (darkened yellow is nearer orange in plain RGB); fit that gain, within limits.
    gain = np.clip(colours @ target / np.sum(colours**2, axis=1), *COLOR_GAIN)  # (K,)
    residual = np.linalg.norm(target - gain[:, None] * colours, axis=1)  # (K,)
    return dict(zip(names, residual.tolist()))


def offset_of(geo: Geometry, height: int, width: int) -> tuple[float, float]:
    """(dx, dy) of the box middle from the image centre, as fractions of the side (y down)."""
    return geo.box_x / width - 0.5, geo.box_y / height - 0.5


def position_at(dx: float, dy: float) -> str:
    """Whichever offset from the image centre dominates, with a dead zone for "center"."""
    if max(abs(dx), abs(dy)) < CENTER_DEAD_ZONE:
        return "center"
    if abs(dx) >= abs(dy):
        return "left" if dx < 0 else "right"
    return "top" if dy < 0 else "bottom"


def read_object(
    image, palette: Mapping[str, tuple[int, int, int]], background: tuple[int, int, int]
) -> Reading | None:
    """The largest object's colour, shape (best-fitting prototype) and position with their evidence;
    None if the image is empty."""
    arr = to_array(image)
    found = measure(arr, background)
    if found is None:
        return None
    geo = found.geometry
    distances = color_distances(geo.rgb, palette, background)
    fits = shape_fits(found.coverage)
    offset = offset_of(geo, arr.shape[0], arr.shape[1])
    return Reading(color=min(distances, key=distances.get), shape=max(fits, key=fits.get),
                   position=position_at(*offset), blobs=found.blobs, color_distances=distances,
                   shape_fits=fits, offset=offset)


def read_scene(
    image, palette: Mapping[str, tuple[int, int, int]], background: tuple[int, int, int]
) -> dict[str, str] | None:
    """Colour, shape and position of the single object in `image`, or None if it is empty."""
    reading = read_object(image, palette, background)
    return None if reading is None else reading.values()
