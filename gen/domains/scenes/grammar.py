"""The scenes caption grammar: GenEval's six tasks as claims, their phrasings, and the parser back to a claim.

A claim is what a prompt asks of an image, in GenEval's terms (Ghosh et al. 2023): groups of objects, each a
shape with an optional colour and a count, either at least that many (every task but counting) or exactly
that many (counting), and for the position task a relation between the first group and the second. Other
objects in the image are allowed, as GenEval allows them.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from gen.core.english import article
from gen.domains.shapes.world import COLORS, SHAPES

TASKS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
TASK_NAMES = {"single_object": "single object", "two_object": "two objects", "counting": "counting",
              "colors": "colours", "position": "position", "color_attr": "colour attribution"}
NUMBERS: tuple[str, ...] = ("one", "two", "three", "four")
# Relation words, read as "A <relation> B"; each has its converse, the same picture said from B.
RELATIONS: dict[str, str] = {"left of": "to the left of", "right of": "to the right of", "above": "above",
                             "below": "below"}
CONVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
# Ways to open a caption: the same claim with or without them ("there is" becomes "there are" before a number
# above one).
PREFIXES: tuple[str, ...] = ("", "there is ", "an image of ", "a picture of ")
PLURALS = {shape: shape + "s" for shape in SHAPES}


@dataclass(frozen=True)
class Group:
    """Objects a claim asks for: `count` of `shape` (in `color`, when it names one)."""

    shape: str
    color: str | None = None
    count: int = 1

    def __post_init__(self) -> None:
        if self.shape not in SHAPES or (self.color is not None and self.color not in COLORS):
            raise ValueError(f"unknown shape or colour in {self}")
        if not 1 <= self.count <= len(NUMBERS):
            raise ValueError(f"count must be 1..{len(NUMBERS)}, not {self.count}")


@dataclass(frozen=True)
class Claim:
    """What a prompt asks: its task, its groups, and for the position task the relation of group 0 to group 1."""

    task: str
    groups: tuple[Group, ...]
    relation: str | None = None

    @property
    def exact(self) -> bool:
        """Counting asks for exactly `count`; every other task for at least it (GenEval's include/exclude)."""
        return self.task == "counting"


def _noun(group: Group, counted: bool) -> str:
    """'a red circle', 'three green triangles', 'a circle'."""
    words = [group.color] if group.color else []
    if counted:
        shape = PLURALS[group.shape] if group.count > 1 else group.shape
        return " ".join([NUMBERS[group.count - 1], *words, shape])
    first = (group.color or group.shape)
    return " ".join([article(first), *words, group.shape])


def phrase(claim: Claim, prefix: str = "") -> str:
    """The claim in words, after `prefix` (one of PREFIXES)."""
    if claim.task == "counting":
        body = _noun(claim.groups[0], counted=True)
        if prefix == "there is " and claim.groups[0].count > 1:
            prefix = "there are "
    elif claim.task == "position":
        a, b = (_noun(g, counted=False) for g in claim.groups)
        body = f"{a} {RELATIONS[claim.relation]} {b}"
    else:
        body = " and ".join(_noun(g, counted=False) for g in claim.groups)
    return prefix + body


def canonical(claim: Claim) -> str:
    """The one fixed phrasing evaluation prompts use."""
    return phrase(claim)


def phrasings(claim: Claim) -> list[str]:
    return [phrase(claim, p) for p in PREFIXES]


def pick_phrasing(claim: Claim, rng: np.random.Generator) -> str:
    return phrase(claim, PREFIXES[int(rng.integers(len(PREFIXES)))])


_COLOR = "|".join(COLORS)
_SHAPE = "|".join(SHAPES)
_OBJECT = re.compile(rf"^(?:(a|an)|({'|'.join(NUMBERS)})) (?:({_COLOR}) )?({_SHAPE})(s?)$")
_PREFIX = re.compile(r"^(there is |there are |an image of |a picture of |a photo of )")
_RELATION = re.compile(r" (to the left of|to the right of|left of|right of|above|below) ")
_RELATION_NAMES = {"to the left of": "left of", "left of": "left of", "to the right of": "right of",
                   "right of": "right of", "above": "above", "below": "below"}


def _object(text: str) -> tuple[Group, bool] | None:
    """An object phrase as a group, and whether it was counted with a number word; None if it is not one."""
    m = _OBJECT.match(text)
    if m is None:
        return None
    art, number, color, shape, plural = m.groups()
    count = 1 if art else NUMBERS.index(number) + 1
    if bool(plural) != (count > 1) or (art and art != article(color or shape)):
        return None  # "two circle", "one circles", "an red circle": not the grammar
    return Group(shape, color, count), number is not None


def parse(text: str) -> Claim | None:
    """The claim a caption makes, or None when it is not in the grammar."""
    text = " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())
    text = _PREFIX.sub("", text, count=1)
    if (rel := _RELATION.search(text)) is not None:
        parts, relation = [text[: rel.start()], text[rel.end():]], _RELATION_NAMES[rel.group(1)]
    else:
        parts, relation = text.split(" and "), None
    objects = [_object(p) for p in parts]
    if not objects or len(objects) > 2 or any(o is None for o in objects):
        return None
    groups = tuple(g for g, _ in objects)
    counted = [c for _, c in objects]
    if len(groups) == 1:
        g = groups[0]
        task = "counting" if counted[0] else "colors" if g.color else "single_object"
        return Claim(task, groups)
    if any(counted) or any(g.count != 1 for g in groups) or groups[0].shape == groups[1].shape:
        return None  # two objects are two different shapes, one of each, as GenEval's two-object prompts
    if relation is not None:
        return Claim("position", groups, relation)
    colored = [g.color is not None for g in groups]
    if colored == [True, True] and groups[0].color != groups[1].color:
        return Claim("color_attr", groups)
    return Claim("two_object", groups) if colored == [False, False] else None
