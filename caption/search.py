"""`caption search`: text → image retrieval over a folder, ranked by log p(query | image).

The text prior log p(query) is the same for every image, so the debiased score ranks images exactly
as the likelihood does; it is still reported, since it is comparable across queries.
"""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from gen.cli import UserError
from gen.data import UNREADABLE
from gen.outputs import refuse_existing

from .judge import Judge
from .report import write_strip

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}


def search(model_dir: str | Path, images_dir: str | Path, query: str, top: int = 5, html: str | None = None,
           alpha: float | None = None, overwrite: bool = False) -> list[tuple[str, float]]:
    """The `top` (file name, debiased score) pairs, best first; unreadable files are skipped.

    An existing `html` file is refused unless `overwrite`, before any work is done.
    """
    if not query.strip():
        raise UserError('the query is empty; pass the text to look for, e.g. "a blue square at the top"')
    if top < 1:
        raise UserError(f"--top must be at least 1, not {top}")
    if html:
        if Path(html).is_dir():
            raise IsADirectoryError(f"--html {html} is a folder; pass a file name such as strip.html")
        if not overwrite:
            refuse_existing([Path(html)], "caption search --html")
    judge = Judge(model_dir, alpha)
    root = Path(images_dir)
    names, images, pixels = [], [], []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        try:
            with Image.open(path) as im:
                image = im.convert("RGB")
        except UNREADABLE:
            continue
        names.append(str(path.relative_to(root)))
        images.append(image)
        pixels.append(judge.pil_to_pixels(image))
    if not pixels:
        raise ValueError(f"{images_dir}: no readable images")
    tokens = judge.encode(torch.stack(pixels))
    scores = judge.debiased(tokens, [query] * len(names)).tolist()
    order = sorted(range(len(names)), key=lambda i: -scores[i])[:top]
    if html:
        write_strip(html, [(images[i], names[i], scores[i]) for i in order], query)
    return [(names[i], scores[i]) for i in order]
