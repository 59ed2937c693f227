"""Scenes captions edited into ones that say something else: the bound attributes swapped, the relation flipped,
the count changed, one colour or shape changed. The edits a judge must notice to be trusted on binding.
"""
from __future__ import annotations

from dataclasses import replace

from gen.domains.scenes.grammar import CONVERSE, NUMBERS, PREFIXES, Claim, Group, parse, phrase
from gen.domains.shapes.world import COLORS, SHAPES


def _prefix(text: str) -> str:
    lowered = text.lower().replace("there are ", "there is ", 1)
    return next((p for p in sorted(PREFIXES, key=len, reverse=True) if p and lowered.startswith(p)), "")


def edits(claim: Claim) -> list[tuple[str, Claim]]:
    """(kind of edit, edited claim) for every hard negative of `claim`; none of them says the same thing."""
    g = claim.groups
    out: list[tuple[str, Claim]] = []
    # The colours trade objects; two objects of one colour (a position caption may say so) trade nothing.
    if claim.task in ("color_attr", "position") and g[0].color and g[1].color and g[0].color != g[1].color:
        out.append(("swap colours", replace(claim, groups=(replace(g[0], color=g[1].color),
                                                           replace(g[1], color=g[0].color)))))
    if claim.task == "position":
        out.append(("flip relation", replace(claim, relation=CONVERSE[claim.relation])))
        out += [("change relation", replace(claim, relation=r)) for r in CONVERSE
                if r not in (claim.relation, CONVERSE[claim.relation])]
    if claim.task == "counting":
        out += [("change count", replace(claim, groups=(replace(g[0], count=n),)))
                for n in range(1, len(NUMBERS) + 1) if n != g[0].count]
    for i, group in enumerate(g):  # one object's colour or shape changed
        if group.color is not None:
            taken = {x.color for x in g}
            out += [("change colour", _with(claim, i, replace(group, color=c))) for c in COLORS if c not in taken]
        taken = {x.shape for x in g}
        out += [("change shape", _with(claim, i, replace(group, shape=s))) for s in SHAPES if s not in taken]
    return out


def _with(claim: Claim, index: int, group: Group) -> Claim:
    groups = list(claim.groups)
    groups[index] = group
    return replace(claim, groups=tuple(groups))


def hard_negatives(text: str) -> list[str]:
    """Every edit of `text`'s claim, in its phrasing (empty if it is not a scenes caption)."""
    claim = parse(text)
    if claim is None:
        return []
    prefix = _prefix(text)
    return [phrase(edited, prefix) for _, edited in edits(claim)]


def same_claim(a: Claim | None, b: Claim | None) -> bool:
    """Whether two claims ask the same: objects joined by "and" in any order, a relation said from either side."""
    if a is None or b is None or a.task != b.task:
        return False
    if a.task == "position":
        return a == b or (a.groups == b.groups[::-1] and a.relation == CONVERSE[b.relation])
    return sorted(map(repr, a.groups)) == sorted(map(repr, b.groups))
