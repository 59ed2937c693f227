"""Captions that differ from a shapes caption in chosen attributes: hard negatives and error ladders."""
from __future__ import annotations

import re

import numpy as np

from gen.shapes import COLORS, PLACE_PHRASES, POSITIONS, SHAPES, parse_caption

VALUES = {"color": tuple(COLORS), "shape": SHAPES, "position": POSITIONS}


def swap(text: str, attribute: str, value: str) -> str | None:
    """`text` with its `attribute` word replaced by `value`; None when the caption does not state it."""
    attrs = parse_caption(text) or {}
    old = attrs.get(attribute)
    if old is None or old == value:
        return None
    if attribute == "position" and PLACE_PHRASES[old] in text:  # "on the left" → "at the top", not "on the top"
        new = text.replace(PLACE_PHRASES[old], PLACE_PHRASES[value], 1)
    else:
        new = re.sub(rf"\b{re.escape(old)}\b", value, text, count=1)
    if attribute == "color":  # keep the article right: "an orange" ↔ "a red"
        vowel = value[0] in "aeiou"
        new = re.sub(rf"\b(a|an) {value}\b", ("an " if vowel else "a ") + value, new, count=1)
    parsed = parse_caption(new) or {}
    return new if parsed.get(attribute) == value else None


def hard_negatives(text: str) -> list[str]:
    """Every caption one attribute word away from `text` (empty if it is not a shapes caption)."""
    out = []
    for attribute, values in VALUES.items():
        for value in values:
            neg = swap(text, attribute, value)
            if neg is not None:
                out.append(neg)
    return out


def corrupt(text: str, attributes: list[str], rng: np.random.Generator) -> str | None:
    """`text` with each listed attribute changed to a random other value."""
    for attribute in attributes:
        current = (parse_caption(text) or {}).get(attribute)
        choices = [v for v in VALUES[attribute] if v != current]
        text = swap(text, attribute, choices[int(rng.integers(len(choices)))]) if text else None
        if text is None:
            return None
    return text


def same_caption(candidate: str, reference: str) -> bool:
    """Shapes captions match when they state the same attributes in any phrasing; others by normalised text."""
    ref = parse_caption(reference)
    if ref is not None and len(ref) == len(VALUES):
        return parse_caption(candidate) == ref
    norm = lambda s: " ".join(re.sub(r"[^\w\s]", " ", s.lower()).split())  # noqa: E731
    return norm(candidate) == norm(reference)


def distractors(prompt: str, pool: list[str], k: int, rng: np.random.Generator) -> list[str]:
    """Up to k wrong captions: every one-attribute hard negative, then other prompts that mean something else."""
    hard = hard_negatives(prompt)
    if len(hard) >= k:
        return [hard[i] for i in sorted(rng.choice(len(hard), k, replace=False))]
    others = sorted({p for p in pool if not same_caption(p, prompt)} - set(hard))
    take = min(k - len(hard), len(others))
    return hard + [others[i] for i in sorted(rng.choice(len(others), take, replace=False))] if take else hard
