"""A grid of images with a label under each one: what the prompt asked, and what the judge said.

Small images (32-64 px) are scaled up with nearest-neighbour, so the pixels the model drew stay visible, and
the labels are wrapped to the tile width. Pillow's built-in font is used, so nothing is read from the system.
"""
from __future__ import annotations

import textwrap
from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
FAINT = (90, 90, 90)
GOOD, BAD = (0, 120, 40), (190, 20, 20)


def labelled_grid(images: Sequence[Image.Image], labels: Sequence[str], notes: Sequence[str] | None = None,
                  good: Sequence[bool | None] | None = None, columns: int = 8, tile: int = 128, font_size: int = 13,
                  lines: int = 3) -> Image.Image:
    """One RGB image: IMAGES in rows of COLUMNS, each scaled to TILE px, LABELS and NOTES under them; a note is
    green where GOOD is true, red where false, grey where None or not given.

    A label longer than LINES wrapped lines ends in an ellipsis rather than running into the next row."""
    if len(labels) != len(images) or (notes is not None and len(notes) != len(images)):
        raise ValueError(f"{len(images)} images need as many labels (got {len(labels)}) and notes")
    if not images:
        raise ValueError("no images to put in a grid")
    font = ImageFont.load_default(size=font_size)
    line_h = font_size + 3
    chars = max(8, int(tile / (font_size * 0.55)))  # the built-in font's average advance is about 0.55 em
    text_h = line_h * (lines + (1 if notes is not None else 0)) + 6
    columns = min(columns, len(images))
    rows = -(-len(images) // columns)
    pad = 6
    sheet = Image.new("RGB", (columns * (tile + pad) + pad, rows * (tile + text_h + pad) + pad), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i, image in enumerate(images):
        x = pad + (i % columns) * (tile + pad)
        y = pad + (i // columns) * (tile + text_h + pad)
        sheet.paste(image.convert("RGB").resize((tile, tile), Image.NEAREST), (x, y))
        wrapped = textwrap.wrap(labels[i], chars) or [""]
        if len(wrapped) > lines:
            wrapped = wrapped[:lines]
            wrapped[-1] = wrapped[-1][:chars - 1] + "…"
        for k, line in enumerate(wrapped):
            draw.text((x, y + tile + 3 + k * line_h), line, fill=INK, font=font)
        if notes is not None:
            verdict = good[i] if good is not None else None
            colour = FAINT if verdict is None else GOOD if verdict else BAD
            draw.text((x, y + tile + 3 + lines * line_h), notes[i][:chars], fill=colour, font=font)
    return sheet
