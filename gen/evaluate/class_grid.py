"""per_class_grid.png for `gen evaluate --real`: one row per class, each image framed by the classifier's reading.

`gen sample`'s grid.png lays the images out in prompt order, ceil(sqrt(n)) to a row; with one prompt per class
and that many images per prompt it is already one row per class, so a bare per-class grid was the same picture
byte for byte. This one adds what only the evaluation knows: how the images were chosen (a line above the rows),
each row's class and its score (read right / images), and a frame per image, green where the classifier read the
asked class and red where it did not.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from PIL import Image, ImageDraw, ImageFont

RIGHT, WRONG, EMPTY = (42, 157, 58), (221, 51, 51), (232, 232, 232)  # frame colours; EMPTY: a class with fewer images
TEXT = (34, 34, 34)
FRAME = 2  # px of frame around each image
GAP = 2  # px between cells, rows and the edges


def class_grid(pixels: torch.Tensor, wanted: Sequence[int], got: Sequence[int], classes: Sequence[str], path: Path,
               title: str = "", per_row: int = 10) -> dict[int, tuple[int, int]]:
    """Draw up to PER_ROW images of each class (uint8 PIXELS (N, 3, S, S), asked class WANTED, read class GOT) in
    class order under TITLE; return each drawn image's index → the top-left corner of its frame."""
    if not len(pixels):
        return {}
    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line = max(measure.textbbox((0, 0), "Ag/0", font=font)[3], 1)  # text height in px
    labels = []
    for k, name in enumerate(classes):
        mine = [i for i, w in enumerate(wanted) if w == k]
        labels.append(f"{name} {sum(got[i] == k for i in mine)}/{len(mine)}")
    label_width = max(int(measure.textlength(s, font=font)) for s in labels)
    cell = pixels.shape[-1] + 2 * FRAME
    row = max(cell, line)
    top = line + 2 * GAP if title else 0
    width = max(2 * GAP + label_width + per_row * (cell + GAP), int(measure.textlength(title, font=font)) + 2 * GAP)
    canvas = Image.new("RGB", (width, top + GAP + len(classes) * (row + GAP)), "white")
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((GAP, GAP), title, fill=TEXT, font=font)
    corners: dict[int, tuple[int, int]] = {}
    for k, label in enumerate(labels):
        y = top + GAP + k * (row + GAP)
        draw.text((GAP, y + (row - line) // 2), label, fill=TEXT, font=font)
        mine = [i for i, w in enumerate(wanted) if w == k][:per_row]
        for j in range(per_row):
            x = 2 * GAP + label_width + j * (cell + GAP)
            if j >= len(mine):
                draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=EMPTY)
                continue
            i = mine[j]
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=RIGHT if got[i] == k else WRONG)
            canvas.paste(Image.fromarray(pixels[i].permute(1, 2, 0).numpy()), (x + FRAME, y + FRAME))
            corners[i] = (x, y)
    canvas.save(path)
    return corners
