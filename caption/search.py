"""`caption search`: text → image retrieval over a folder, ranked by log p(query | image).

The text prior log p(query) is the same for every image, so the debiased score ranks images exactly
as the likelihood does; it is still reported, since it is comparable across queries.
"""
from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from gen.data import UNREADABLE

from .judge import Judge
from .report import write_strip

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}


def search(model_dir: str | Path, images_dir: str | Path, query: str, top: int = 5, html: str | None = None,
           alpha: float | None = None) -> list[tuple[str, float]]:
    """The `top` (file name, debiased score) pairs, best first; unreadable files are skipped."""
    if not query.strip():
        raise ValueError("the query is empty")
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
