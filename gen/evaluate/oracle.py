"""Oracle accuracy of generated images: what fraction shows every attribute its prompt asks for, by the pixel
oracle of the images' domain (gen/domains/); and the oracle's own false-alarm rate on clean renders."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from gen import domains
from gen.core.errors import UserError
from gen.data import SkipLog, read_folder, read_record_rgb
from gen.domains import RIGHT, UNSURE, VERDICTS, Domain

ALL = "all"  # the key of every-attribute-right beside the per-attribute ones


def oracle_domain(samples_dir: str | Path, name: str | None = None) -> Domain:
    """The domain whose oracle checks SAMPLES_DIR: `name`, else the one its info.json declares, else shapes (folders
    written before they declared one: domains.undeclared_oracle); a domain without an oracle is a UserError."""
    if name is None and domains.declared(samples_dir) is None:
        domain = domains.undeclared_oracle()
    else:
        domain = domains.resolve(name, samples_dir)[0]
    if not domain.has_oracle:
        raise UserError(f"the {domain.name} domain has no pixel oracle: there is nothing to check {samples_dir} with")
    return domain


def oracle_accuracy(samples_dir: str | Path, domain: str | None = None) -> dict[str, Any]:
    """Per-attribute and all-attribute accuracy over the prompts of a samples folder the domain's oracle can check.

    By the strict oracle: an attribute it is unsure of counts as not right, and `unsure` holds the share of images
    it was unsure of, per attribute and overall. An image that cannot be read is skipped and counted by reason
    under "skipped", never a crash. `domain`: see oracle_domain.
    """
    world = oracle_domain(samples_dir, domain)
    hits = {a: 0 for a in (*world.attributes, ALL)}
    unsure = dict.fromkeys(hits, 0)
    n = 0
    skips = SkipLog()
    for rec in read_folder(samples_dir, split=None, skips=skips):
        image = read_record_rgb(rec, skips)  # None: unreadable, counted in skips
        verdict = None if image is None else world.oracle(image, rec.texts[0])  # None: a prompt it cannot check
        if verdict is None:
            continue
        for a in world.attributes:
            hits[a] += verdict.attributes[a] == RIGHT
            unsure[a] += verdict.attributes[a] == UNSURE
        hits[ALL] += verdict.right
        unsure[ALL] += verdict.overall == UNSURE
        n += 1
    share = lambda counts: {a: counts[a] / n if n else float("nan") for a in counts}  # noqa: E731
    return {**share(hits), "n": n, "unsure": share(unsure), "skipped": skips.summary()}


def renders_verdicts(domain: Domain, count: int, size: int = 32, seed: int = 1) -> dict[str, Any]:
    """Share of right / wrong / unsure per attribute and overall on `count` clean renders of the domain (every
    combination in turn). A render shows exactly what its caption says, so every wrong or unsure verdict is the
    oracle's own error. The default seed is not the demo's training set (seed 0), so the images are fresh."""
    tally: Counter = Counter()
    for image, text in domains.scenes(domain, "render scenes for its oracle").renders(count, size, seed):
        verdict = domain.oracle(image, text)
        if verdict is None:
            raise UserError(f"the {domain.name} oracle cannot check its own render's caption {text!r}")
        tally.update((a, v) for a, v in verdict.attributes.items())
        tally[ALL, verdict.overall] += 1
    return {"count": count, "size": size, "seed": seed,
            **{a: {v: tally[a, v] / count for v in VERDICTS} for a in (*domain.attributes, ALL)}}
