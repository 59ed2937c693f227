"""Oracle accuracy of generated shapes images: what fraction shows the colour, shape and position asked for."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from gen.data import SkipLog, read_folder, read_record_rgb
from gen.domains.shapes.world import ATTRIBUTES, RIGHT, UNSURE, check_strict, parse_caption


def oracle_accuracy(samples_dir: str | Path) -> dict[str, Any]:
    """Per-attribute and all-attribute accuracy over the shapes prompts of a samples folder.

    By the strict oracle (gen/domains/shapes/verdict.py): an attribute it is unsure of counts as not right, and
    `unsure` holds the share of images it was unsure of, per attribute and overall. An image that cannot
    be read is skipped and counted by reason under "skipped", never a crash.
    """
    hits = {a: 0 for a in (*ATTRIBUTES, "all")}
    unsure = dict.fromkeys(hits, 0)
    n = 0
    skips = SkipLog()
    for rec in read_folder(samples_dir, split=None, skips=skips):
        prompt = rec.texts[0]
        if len(parse_caption(prompt) or {}) != len(ATTRIBUTES):
            continue
        image = read_record_rgb(rec, skips)  # None: unreadable, counted in skips
        if image is None:
            continue
        verdict = check_strict(image, prompt)
        for a in ATTRIBUTES:
            hits[a] += verdict.attributes[a] == RIGHT
            unsure[a] += verdict.attributes[a] == UNSURE
        hits["all"] += verdict.overall == RIGHT
        unsure["all"] += verdict.overall == UNSURE
        n += 1
    share = lambda counts: {a: counts[a] / n if n else float("nan") for a in counts}  # noqa: E731
    return {**share(hits), "n": n, "unsure": share(unsure), "skipped": skips.summary()}
