"""Shapes captions edited one attribute word at a time: hard negatives, error ladders, per-attribute variants.

This is the shapes grammar's own knowledge (moved here from caption/judge/negatives.py), so the shapes domain
(gen/domains/) can offer it and generic scoring code never needs to know how a shapes caption is built.
"""
from __future__ import annotations

import re

import numpy as np

from gen.core.english import article
from gen.domains.shapes.world import ATTRIBUTES, COLORS, PLACE_PHRASES, POSITIONS, SHAPES, parse_caption

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
        new = re.sub(rf"\b(a|an) {value}\b", f"{article(value)} {value}", new, count=1)
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


def same_attributes(candidate: str, reference: str) -> bool | None:
    """Whether two captions state the same colour, shape and position in any phrasing; None when `reference`
    does not state all three (then only its text can be compared)."""
    ref = parse_caption(reference)
    if ref is None or len(ref) != len(VALUES):
        return None
    return parse_caption(candidate) == ref


def variants(prompt: str) -> dict[str, list[tuple[str, str]]]:
    """Per stated attribute, (value, caption) for the prompt's own value first, then every other value."""
    stated = parse_caption(prompt) or {}
    out: dict[str, list[tuple[str, str]]] = {}
    for attribute in ATTRIBUTES:
        if attribute not in stated:
            continue
        options = [(stated[attribute], prompt)]
        options += [(v, text) for v in VALUES[attribute] if (text := swap(prompt, attribute, v)) is not None]
        if len(options) > 1:
            out[attribute] = options
    return out
