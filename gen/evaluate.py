"""Oracle accuracy of generated shapes images: what fraction shows the colour, shape and position asked for."""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from .data import SkipLog, read_folder
from .shapes import ATTRIBUTES, check, parse_caption


def oracle_accuracy(samples_dir: str | Path) -> dict[str, float]:
    """Per-attribute and all-attribute accuracy over the shapes prompts of a samples folder."""
    hits = {a: 0 for a in (*ATTRIBUTES, "all")}
    n = 0
    for rec in read_folder(samples_dir, split=None, skips=SkipLog()):
        prompt = rec.texts[0]
        if len(parse_caption(prompt) or {}) != len(ATTRIBUTES):
            continue
        with Image.open(rec.path) as im:
            verdict = check(im.convert("RGB"), prompt)
        for a in ATTRIBUTES:
            hits[a] += verdict[a]
        hits["all"] += all(verdict.values())
        n += 1
    return {**{a: hits[a] / n if n else float("nan") for a in hits}, "n": n}
