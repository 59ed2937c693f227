"""Opening image files safely: regular files only, no decompression bombs, upright, 8-bit RGB.

Every reader of image files (the training data and `caption describe`/`search` through gen.data.read_rgb,
`gen check-data` directly) goes through `open_image` and `decode_rgb`, so a bad file is refused the same way
everywhere and a good one decodes to the same pixels.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import stat
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# PIL's own default for Image.MAX_IMAGE_PIXELS (it warns above it and refuses above twice it). Kept as
# our constant so code that sets the global to None cannot switch the check off.
MAX_PIXELS = 89_478_485
EXIF_ORIENTATION = 0x0112
HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")

# What PIL raises on a bad image file; ImageRejected is a ValueError, so it is caught here too.
UNREADABLE = (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError)


class ImageRejected(ValueError):
    """A file refused before any pixel is decoded. `reason` is the category that skips are counted by."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def require_regular_file(path: str | Path) -> None:
    """Refuse FIFOs, devices, sockets and folders by stat alone: opening a FIFO blocks for ever, a device may never end."""
    mode = os.stat(path).st_mode  # follows symlinks as open() would; FileNotFoundError when missing
    if not stat.S_ISREG(mode):
        raise ImageRejected("not a regular file", stat.filemode(mode))


@contextlib.contextmanager
def open_image(path: str | Path | bytes) -> Iterator[Image.Image]:
    """The image at `path` (or encoded in `bytes`) with only its header read; refuses non-regular files and
    more than MAX_PIXELS pixels."""
    if not isinstance(path, bytes):
        require_regular_file(path)
    with warnings.catch_warnings():
        # PIL only warns between MAX and 2×MAX pixels and would then decode: make that a refusal too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(path) if isinstance(path, bytes) else path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            declared = re.search(r"\((\d+) pixels\)", str(err))  # PIL says only "Image size (N pixels) exceeds..."
            raise ImageRejected("decompression bomb", f"declares {declared[1] if declared else 'too many'} pixels, "
                                f"over {MAX_PIXELS}") from None
    with image:
        width, height = image.size
        if width * height > MAX_PIXELS:  # the declared size, from the header: nothing decoded yet
            raise ImageRejected("decompression bomb", f"declares {width}×{height} pixels, over {MAX_PIXELS}")
        yield image


def to_8bit(image: Image.Image) -> tuple[Image.Image, str | None]:
    """16-bit and float greyscale → 8-bit "L" by their range, and a note saying so; PIL's own convert() clips them
    to white or black. Other modes pass through with no note."""
    if image.mode not in HIGH_DEPTH_MODES:
        return image, None
    values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0)
    if image.mode != "F":
        values, note = values / 257.0, "16-bit greyscale scaled to 8 bits (÷257)"  # 65535 → 255; PIL reads some as "I"
    elif values.max(initial=0.0) <= 1.0:
        values, note = values * 255.0, "float image read as [0, 1] and scaled to 8 bits"
    else:  # above 1: most likely saved as [0, 255]; anything outside is clipped
        note = "float image with values above 1: read as [0, 255] and clipped"
    return Image.fromarray(np.clip(values, 0, 255).round().astype(np.uint8), "L"), note


def decode_rgb(image: Image.Image) -> tuple[Image.Image, str | None]:
    """Decode an opened image to 8-bit RGB, upright by its EXIF orientation (a sideways phone photo's "left" is
    the viewer's left), with `to_8bit`'s note."""
    image, note = to_8bit(ImageOps.exif_transpose(image))
    return image.convert("RGB"), note


def skip_reason(err: Exception) -> str:
    """The reason an unreadable image is counted under: a refusal's own reason, else the exception's type."""
    return err.reason if isinstance(err, ImageRejected) else f"unreadable image ({type(err).__name__})"
