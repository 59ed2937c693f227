"""`caption search`: text → image retrieval over a folder, ranked by log p(query | image).

The text prior log p(query) is the same for every image, so the debiased score ranks images exactly
as the likelihood does; it is still reported, since it is comparable across queries.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from PIL import Image

from caption.judge.judge import Judge
from caption.report.page import write_strip
from gen.core.errors import UserError
from gen.core.outputs import refuse_existing
from gen.data import UNREADABLE, SkipLog, read_rgb, resolve_inside, skip_reason

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif"}
log = logging.getLogger(__name__)


def read_folder_images(root: Path, skips: SkipLog) -> list[tuple[str, Image.Image]]:
    """(relative name, RGB image) for each image file under `root`, by name. As in the data loader, a file whose
    real path lies outside `root` (a symlink out) is refused, and FIFOs, devices and decompression bombs are
    skipped before anything is decoded; every skip is counted in `skips`."""
    found = []
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.is_dir()):
        name = str(path.relative_to(root))
        inside = resolve_inside(root, name)
        if inside is None:
            skips.skip(name, "file is outside the images folder")
            continue
        try:
            found.append((name, read_rgb(inside, skips)))
        except UNREADABLE as err:
            skips.skip(name, skip_reason(err))
    if skips.counts:
        log.warning("%s: skipped %d files: %s", root, sum(skips.counts.values()), skips.summary())
    return found


def search(model_dir: str | Path, images_dir: str | Path, query: str, top: int = 5, html: str | None = None,
           alpha: float | None = None, overwrite: bool = False, device: str | None = None) -> list[tuple[str, float]]:
    """The `top` (file name, debiased score) pairs, best first; unreadable files are skipped.

    An existing `html` file is refused unless `overwrite`, before any work is done.
    """
    if not query.strip():
        raise UserError('the query is empty; pass the text to look for, e.g. "a blue square at the top"')
    if top < 1:
        raise UserError(f"--top must be at least 1, not {top}")
    if html:
        if Path(html).is_dir():
            raise IsADirectoryError(f"--out {html} is a folder; pass a file name such as strip.html")
        if not overwrite:
            refuse_existing([Path(html)], "caption search --out")
    judge = Judge(model_dir, alpha, device)
    root = Path(images_dir)
    skips = SkipLog()
    found = read_folder_images(root, skips)
    names, images = [n for n, _ in found], [im for _, im in found]
    pixels = [judge.pil_to_pixels(image) for image in images]
    if not pixels:
        why = f"skipped: {skips.summary()}" if skips.counts else f"no {', '.join(sorted(IMAGE_SUFFIXES))} files"
        raise UserError(f"{images_dir}: no readable images ({why})")
    tokens = judge.encode(torch.stack(pixels))
    scores = judge.debiased(tokens, [query] * len(names)).tolist()
    order = sorted(range(len(names)), key=lambda i: -scores[i])[:top]
    if html:
        write_strip(html, [(images[i], names[i], scores[i]) for i in order], query)
    return [(names[i], scores[i]) for i in order]
