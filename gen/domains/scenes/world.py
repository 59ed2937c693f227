"""Scenes of 1–4 coloured shapes: layout, render, the combinations held out of training, and the data set.

Three kinds of scene teach the six tasks (grammar.py): one object (single object, colours, counting one), two
different shapes (two objects, colour attribution, position) and two to four copies of one coloured shape
(counting). Objects never touch, so each is one connected component for the oracle (oracle.py).
"""
from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from gen.domains import drawn
from gen.domains.scenes import geometry
from gen.domains.scenes.grammar import CONVERSE, RELATIONS, Claim, Group, pick_phrasing
from gen.domains.shapes.world import BACKGROUND, COLORS, SHAPES, draw_shape

SIDE = (0.21, 0.29)  # object side as a fraction of the canvas: 10–14 px at 48
GAP = 0.06  # least space between two objects' boxes, fraction of the side: 3 px at 48, so they never touch
SUPERSAMPLE = 4
KINDS = (("single", 0.25), ("pair", 0.45), ("count", 0.30))  # share of each kind of scene in a data set
HELD_FRACTION = 0.12  # share of each task's combinations kept out of training


@dataclass(frozen=True)
class Thing:
    """One object of a scene: colour, shape, centre (fractions of the side, y down) and side (fraction)."""

    color: str
    shape: str
    x: float
    y: float
    side: float

    def box(self, size: int) -> tuple[float, float, float, float]:
        """(centre x, centre y, width, height) in pixels."""
        return self.x * size, self.y * size, self.side * size, self.side * size


@dataclass(frozen=True)
class Held:
    """The combinations training never shows: colour–shape pairs alone, pairs of objects side by side,
    shape-level relations, and (count, colour, shape) triples."""

    singles: tuple[tuple[str, str], ...]  # (colour, shape) never alone in an image
    pairs: tuple[frozenset, ...]  # {(colour, shape), (colour, shape)} never together
    relations: tuple[tuple[str, str, str], ...]  # (shape, relation, shape) never drawn, nor its converse
    counts: tuple[tuple[int, str, str], ...]  # (count ≥ 2, colour, shape) never drawn

    def as_json(self) -> dict:
        return {"singles": [list(s) for s in self.singles], "pairs": [sorted(map(list, p)) for p in self.pairs],
                "relations": [list(r) for r in self.relations], "counts": [list(c) for c in self.counts]}

    @classmethod
    def from_json(cls, data: dict) -> "Held":
        return cls(tuple(tuple(s) for s in data["singles"]), tuple(frozenset(map(tuple, p)) for p in data["pairs"]),
                   tuple(tuple(r) for r in data["relations"]), tuple(tuple(c) for c in data["counts"]))

    def pair_held(self, a: tuple[str, str], b: tuple[str, str]) -> bool:
        return frozenset((a, b)) in self.pairs

    def relation_held(self, a: str, relation: str, b: str) -> bool:
        return (a, relation, b) in self.relations or (b, CONVERSE[relation], a) in self.relations

    def unseen(self, claim: Claim) -> bool:
        """Whether no training image showed what `claim` asks (single object and two objects never are)."""
        g = claim.groups
        if claim.task == "colors":
            return (g[0].color, g[0].shape) in self.singles
        if claim.task == "counting":
            return (g[0].count, g[0].color, g[0].shape) in self.counts or (
                g[0].count == 1 and (g[0].color, g[0].shape) in self.singles)
        if claim.task in ("color_attr", "position") and all(x.color for x in g):
            if self.pair_held((g[0].color, g[0].shape), (g[1].color, g[1].shape)):
                return True
        return claim.task == "position" and self.relation_held(g[0].shape, claim.relation, g[1].shape)


def colored_shapes() -> list[tuple[str, str]]:
    return list(itertools.product(COLORS, SHAPES))


@functools.lru_cache(maxsize=8)
def held_out(seed: int = 0) -> Held:
    """About HELD_FRACTION of each task's combinations, drawn with `seed`, so that every colour and shape stays in
    every kind of scene. Cached: a Held is immutable, and the scene methods and the benchmark ask for seed 0's on
    every call."""
    rng = np.random.default_rng([seed, 24])
    singles = colored_shapes()
    held_singles = _draw_covering(singles, rng, lambda kept: {c for c, _ in kept} == set(COLORS)
                                  and {s for _, s in kept} == set(SHAPES))
    pairs = [frozenset((a, b)) for a, b in itertools.combinations(singles, 2) if a[0] != b[0] and a[1] != b[1]]
    held_pairs = _draw_covering(pairs, rng, lambda kept: set().union(*kept) == set(singles))
    # A relation and its converse are the same picture: hold out one of each pair, two of the twelve.
    relations = [(a, r, b) for a, b in itertools.permutations(SHAPES, 2) for r in ("left of", "above")]
    held_relations = [relations[i] for i in sorted(rng.choice(len(relations), 2, replace=False))]
    counts = [(n, c, s) for n in (2, 3, 4) for c, s in singles]
    held_counts = _draw_covering(counts, rng, lambda kept: {(n, s) for n, _, s in kept} == {
        (n, s) for n in (2, 3, 4) for s in SHAPES} and {(n, c) for n, c, _ in kept} == {
        (n, c) for n in (2, 3, 4) for c in COLORS})
    return Held(tuple(held_singles), tuple(held_pairs), tuple(held_relations), tuple(held_counts))


def _draw_covering(items: list, rng: np.random.Generator, covered) -> list:
    """About HELD_FRACTION of `items`, in their order, such that `covered(the rest)` stays true."""
    target, held = max(1, round(HELD_FRACTION * len(items))), []
    for i in rng.permutation(len(items)):
        if len(held) == target:
            break
        if covered([x for x in items if x not in held and x != items[i]]):
            held.append(items[i])
    return [x for x in items if x in held]


def layout(count: int, rng: np.random.Generator, relation: str | None = None, tries: int = 500) -> list[tuple]:
    """`count` non-touching boxes (x, y, side) as fractions; with `relation`, two boxes whose first stands in
    that relation to the second beyond doubt (geometry.sure_relations) and in no other."""
    for _ in range(tries):
        sides = rng.uniform(*SIDE, size=count)
        boxes = [(rng.uniform(s / 2 + 0.02, 1 - s / 2 - 0.02), rng.uniform(s / 2 + 0.02, 1 - s / 2 - 0.02), s)
                 for s in sides]
        if any(geometry.too_close(a, b, GAP) for a, b in itertools.combinations(boxes, 2)):
            continue
        if relation is not None:
            a, b = ((x, y, s, s) for x, y, s in boxes)
            # Lenient by twice the oracle's margin: a box the oracle fits a tenth of a pixel off still reads one relation.
            if geometry.sure_relations(a, b) != {relation} or geometry.relations(
                    a, b, geometry.SHRINK - 2 * geometry.MARGIN_SHRINK, geometry.CUT - 2 * geometry.MARGIN_CUT) != {relation}:
                continue
        return boxes
    raise RuntimeError(f"no layout of {count} objects found in {tries} tries")  # SIDE and GAP leave plenty


def render(things: Sequence[Thing], size: int) -> Image.Image:
    """RGB image of the objects, antialiased by supersampling (BOX averaging: exact coverage, no ringing)."""
    big = size * SUPERSAMPLE
    canvas = Image.new("RGB", (big, big), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for t in things:
        half = t.side / 2
        x0, y0 = round((t.x - half) * big), round((t.y - half) * big)
        x1, y1 = round((t.x + half) * big) - 1, round((t.y + half) * big) - 1
        draw_shape(draw, t.shape, COLORS[t.color], (x0, y0, x1, y1))
    return canvas.resize((size, size), Image.Resampling.BOX)


def scene_of(kind: str, held: Held, rng: np.random.Generator) -> tuple[list[Thing], list[Claim]]:
    """A random scene of `kind` (single / pair / count) that avoids every held-out combination, and the claims
    that describe it (one per task it can teach)."""
    singles = colored_shapes()
    if kind == "single":
        options = [s for s in singles if s not in held.singles]
        color, shape = options[int(rng.integers(len(options)))]
        boxes = layout(1, rng)
        things = [Thing(color, shape, *boxes[0])]
        claims = [Claim("single_object", (Group(shape),)), Claim("colors", (Group(shape, color),)),
                  Claim("counting", (Group(shape, color, 1),))]
        return things, claims
    if kind == "count":
        options = [(n, c, s) for n in (2, 3, 4) for c, s in singles if (n, c, s) not in held.counts]
        n, color, shape = options[int(rng.integers(len(options)))]
        things = [Thing(color, shape, *box) for box in layout(n, rng)]
        return things, [Claim("counting", (Group(shape, color, n),))]
    if kind != "pair":
        raise ValueError(f"unknown kind of scene {kind!r}")
    while True:
        a, b = (singles[i] for i in rng.choice(len(singles), 2, replace=False))
        relation = list(RELATIONS)[int(rng.integers(len(RELATIONS)))]
        if a[0] != b[0] and a[1] != b[1] and not held.pair_held(a, b) and not held.relation_held(a[1], relation, b[1]):
            break
    box_a, box_b = layout(2, rng, relation)
    things = [Thing(*a, *box_a), Thing(*b, *box_b)]
    ga, gb = Group(a[1], a[0]), Group(b[1], b[0])
    order = (ga, gb) if rng.random() < 0.5 else (gb, ga)
    said = (ga, gb, relation) if rng.random() < 0.5 else (gb, ga, CONVERSE[relation])
    claims = [Claim("two_object", tuple(Group(g.shape) for g in order)), Claim("color_attr", order),
              Claim("position", said[:2], said[2])]
    return things, claims


def random_scene(size: int, held: Held, rng: np.random.Generator) -> tuple[Image.Image, list[Thing], list[Claim]]:
    names, shares = zip(*KINDS)
    kind = names[int(rng.choice(len(names), p=np.asarray(shares) / sum(shares)))]
    things, claims = scene_of(kind, held, rng)
    return render(things, size), things, claims


def make_dataset(out: str | Path, count: int, size: int = 48, seed: int = 0, val_fraction: float = 0.05) -> Path:
    """Write OUT/images/, OUT/heldout.json, OUT/info.json and, last, OUT/metadata.jsonl (drawn.write_set)."""
    held = held_out(seed)
    n_val = round(val_fraction * count)

    def row(index: int):
        def write(folder: Path) -> dict:
            rng = np.random.default_rng([seed, index])  # each row reproducible from (seed, index) alone
            image, things, claims = random_scene(size, held, rng)
            name = f"images/{index:06d}.png"
            image.save(folder / name)
            texts = [pick_phrasing(c, rng) for c in claims]
            return {"file_name": name, "text": texts, "objects": [asdict(t) for t in things],
                    "tasks": [c.task for c in claims], "split": "val" if index < n_val else "train"}
        return write

    info = {"domain": "scenes", "size": size, "seed": seed, "val_fraction": val_fraction, "colors": COLORS,
            "shapes": SHAPES, "background": BACKGROUND}
    extra = {"heldout.json": json.dumps(held.as_json(), indent=1)}
    return drawn.write_set(out, (row(i) for i in range(count)), count, info, extra, desc="scenes")


def ensure_dataset(folder: str | Path, count: int, size: int = 48, seed: int = 0) -> Path:
    return drawn.ensure(folder, count, size, seed, make_dataset, "scenes")


def read_held(data_dir: str | Path | None, seed: int = 0) -> Held:
    """The held-out combinations of the set in DATA_DIR, or without one those `seed` draws."""
    if data_dir is None:
        return held_out(seed)
    return Held.from_json(json.loads((Path(data_dir) / "heldout.json").read_text()))


def things_for(claim: Claim, rng: np.random.Generator) -> list[Thing]:
    """A scene showing exactly what `claim` asks and nothing more; colours it leaves open are drawn at random,
    each object a different colour."""
    groups = list(claim.groups)
    palette = [c for c in COLORS if c not in {g.color for g in groups}]
    rng.shuffle(palette)
    colors = [g.color or palette.pop() for g in groups]
    if claim.task == "counting":
        return [Thing(colors[0], groups[0].shape, *box) for box in layout(groups[0].count, rng)]
    boxes = layout(len(groups), rng, claim.relation)
    return [Thing(c, g.shape, *box) for c, g, box in zip(colors, groups, boxes)]
