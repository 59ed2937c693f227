"""The scenes world: its caption grammar, the strict oracle on clean renders, hard negatives, the held-out
combinations of a data set, and the committed benchmark prompts."""

import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from gen.domains import RIGHT, UNSURE, WRONG, get
from gen.domains.scenes import geometry, negatives, oracle, prompts, world
from gen.domains.scenes.grammar import PREFIXES, TASKS, Claim, Group, parse, phrase
from gen.domains.scenes.world import Thing
from gen.domains.shapes.world import BACKGROUND, COLORS

SIZE = 48
RENDERS = 200  # clean renders per task
SCENES = get("scenes")


@pytest.fixture
def read_once(monkeypatch):
    """The oracle reads each image once per test: a render's hard negatives ask about the same pixels, and
    reading them (find_objects), not judging the claim, is nearly all of a verdict's time."""
    real, readings = oracle.find_objects, {}

    def cached(image):
        key = np.asarray(image).tobytes()
        if key not in readings:
            readings[key] = real(image)
        return readings[key]

    monkeypatch.setattr(oracle, "find_objects", cached)


def spread(claims: list[Claim], count: int) -> list[Claim]:
    """`count` claims spread evenly over `claims` (each repeated when there are fewer)."""
    return [claims[int(j)] for j in np.linspace(0, len(claims), count, endpoint=False)]


def clean_render(claim: Claim, seed: int, index: int) -> Image.Image:
    return world.render(world.things_for(claim, np.random.default_rng([seed, index])), SIZE)


def judged(image, claim: Claim) -> str:
    return oracle.verdict(image, claim).attributes[claim.task]


def recolored(image: Image.Image, old: tuple[int, int, int], new: tuple[float, float, float]) -> Image.Image:
    """`image` with each pixel's coverage by the `old` colour redrawn in `new` (antialiased edges kept)."""
    arr = np.asarray(image, dtype=np.float64)
    bg, axis = np.asarray(BACKGROUND, dtype=np.float64), np.asarray(old, dtype=np.float64) - BACKGROUND
    cover = np.clip((arr - bg) @ axis / (axis @ axis), 0, 1)[..., None]  # (H, W, 1)
    return Image.fromarray(np.round(bg + cover * (np.asarray(new) - bg)).astype(np.uint8))


# ---------------------------------------------------------------- grammar


@pytest.mark.parametrize(("task", "count"), [("single_object", 3), ("two_object", 6), ("counting", 4 * 24),
                                             ("colors", 24), ("position", 4 * 336), ("color_attr", 24 * 7 * 2)])
def test_every_claim_in_every_phrasing_parses_back_to_itself(task, count):
    # 8 colours x 3 shapes = 24 coloured shapes; colour attribution pairs one with any of the 7 other colours
    # on either of the 2 other shapes, and position asks each such pair in 4 relations.
    claims = prompts._claims(task)
    assert len(claims) == len(set(claims)) == count
    for claim in claims:
        assert claim.task == task
        for prefix in PREFIXES:
            text = phrase(claim, prefix)
            assert parse(text) == claim, text
            assert parse(text.upper() + ".") == claim, text  # case and punctuation say nothing
    assert len({phrase(c) for c in claims}) == count


def test_phrase_writes_articles_plurals_and_relations():
    assert phrase(Claim("counting", (Group("circle", "red", 2),)), "there is ") == "there are two red circles"
    assert phrase(Claim("counting", (Group("circle", "red", 1),)), "there is ") == "there is one red circle"
    assert phrase(Claim("colors", (Group("square", "orange"),)), "an image of ") == "an image of an orange square"
    assert phrase(Claim("two_object", (Group("triangle"), Group("circle")))) == "a triangle and a circle"
    assert phrase(Claim("position", (Group("circle", "red"), Group("square", "blue")), "left of"),
                  "a picture of ") == "a picture of a red circle to the left of a blue square"
    assert parse("a photo of three white triangles") == Claim("counting", (Group("triangle", "white", 3),))
    assert parse("a circle left of a square") == Claim("position", (Group("circle"), Group("square")), "left of")


@pytest.mark.parametrize("text", [
    "two circle", "one circles", "an red circle", "a orange circle", "a circle and a circle",
    "a red circle and a square", "a red circle and a red square", "a magenta circle", "a red hexagon",
    "a circle and a square and a triangle", "two circles and a square", "a circle to the left of two squares",
    "a red circle to the left of a blue circle", "a red circle beside a blue square", "five circles", "circle", "",
])
def test_captions_outside_the_grammar_parse_to_none(text):
    assert parse(text) is None
    assert SCENES.task(text) is None
    assert SCENES.oracle(Image.new("RGB", (SIZE, SIZE), BACKGROUND), text) is None


def test_same_caption_allows_either_order_and_either_side_of_a_relation():
    same = SCENES.same_caption
    assert same("a red circle to the left of a blue square", "a blue square to the right of a red circle")
    assert same("a red circle above a blue square", "there is a blue square below a red circle")
    assert same("a red circle and a blue square", "a blue square and a red circle")
    assert same("a circle and a square", "an image of a square and a circle")
    assert not same("a red circle to the left of a blue square", "a blue circle to the left of a red square")
    assert not same("a red circle to the left of a blue square", "a blue square to the left of a red circle")
    assert not same("a red circle and a blue square", "a blue circle and a red square")
    assert not same("a red circle", "one red circle")  # colours and counting are different tasks
    assert not same("a red circle", "two circle")


# ---------------------------------------------------------------- hard negatives


@pytest.mark.parametrize("task", TASKS)
def test_every_edit_says_something_else_and_parses_back(task):
    for claim in prompts._claims(task):
        edited = [e for _, e in negatives.edits(claim)]
        assert edited and len(set(edited)) == len(edited), claim
        for e in edited:
            assert e.task == task and parse(phrase(e)) == e
            assert not negatives.same_claim(claim, e), (claim, e)


def test_edits_of_a_caption_the_prompts_never_pose():
    # A captioner may say two objects share a colour, or name no colour; no edit may repeat the caption.
    for text in ("a red circle to the left of a red square", "a circle above a blue square", "a circle below a square"):
        claim = parse(text)
        kinds = [kind for kind, _ in negatives.edits(claim)]
        assert "swap colours" not in kinds and kinds.count("flip relation") == 1
        assert not any(negatives.same_claim(claim, e) for _, e in negatives.edits(claim)), text


def test_hard_negatives_keep_the_phrasing():
    found = SCENES.hard_negatives("there are two red circles")
    assert "there is one red circle" in found and "there are three red circles" in found
    assert "there are two blue circles" in found and "there are two red squares" in found
    assert len(found) == 3 + 7 + 2  # other counts, other colours, other shapes
    found = SCENES.hard_negatives("A picture of a red circle to the left of a blue square")
    assert found[:2] == ["a picture of a blue circle to the left of a red square",
                         "a picture of a red circle to the right of a blue square"]
    assert SCENES.hard_negatives("two circle") == []


# ---------------------------------------------------------------- the oracle on clean renders


@pytest.mark.parametrize("task", TASKS)
def test_clean_renders_are_right_and_their_hard_negatives_are_not(task, read_once):
    claims = spread(prompts._claims(task), RENDERS)
    verdicts, negative_verdicts = Counter(), Counter()
    for index, claim in enumerate(claims):
        image = clean_render(claim, 1, index)
        verdicts[judged(image, claim)] += 1
        negative_verdicts.update((kind, judged(image, e)) for kind, e in negatives.edits(claim))
    assert verdicts[RIGHT] / RENDERS >= 0.995 and verdicts[WRONG] == 0, verdicts
    negatives_judged = sum(negative_verdicts.values())
    assert negatives_judged >= 2 * RENDERS
    assert not any(verdict == RIGHT for _, verdict in negative_verdicts), negative_verdicts
    # A relation drawn near the lenient reading's edge can read as plausible from the oracle's fitted boxes:
    # such a negative is unsure, which the strict score already counts against it.
    wrong = sum(n for (_, verdict), n in negative_verdicts.items() if verdict == WRONG)
    assert wrong / negatives_judged >= 0.995, negative_verdicts


def test_domain_renders_are_right_under_the_domains_oracle():
    for image, prompt in SCENES.renders(12, SIZE, seed=3):
        assert image.size == (SIZE, SIZE)
        assert SCENES.oracle(image, prompt).attributes == {SCENES.task(prompt): RIGHT}, prompt


# ---------------------------------------------------------------- the oracle is strict


@pytest.mark.parametrize("task", TASKS)
def test_a_blank_image_is_wrong_for_every_task(task):
    blank = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    assert oracle.find_objects(blank) == []
    for claim in spread(prompts._claims(task), 6):
        assert judged(blank, claim) == WRONG, claim


@pytest.mark.parametrize(("text", "colors"), [
    ("two red circles", ("red", "red")), ("two red squares", ("red", "red")),
    ("two blue triangles", ("blue", "blue")), ("a circle and a square", ("red", "blue")),
    ("a square and a triangle", ("green", "yellow")), ("a triangle and a circle", ("white", "purple")),
])
@pytest.mark.parametrize("side", [0.21, 0.25, 0.29])
def test_two_objects_that_touch_are_not_two(text, colors, side):
    claim = parse(text)
    shapes = [g.shape for g in claim.groups] * (2 // len(claim.groups))

    def drawn(apart: float) -> Image.Image:
        """The two objects side by side, their centres `apart` sides apart."""
        return world.render([Thing(c, s, 0.5 + sign * apart * side / 2, 0.5, side)
                             for c, s, sign in zip(colors, shapes, (-1, 1))], SIZE)

    touching = drawn(0.7)  # overlapping a little: an apex-up triangle's box edge leaves a gap at mid-height
    assert len(oracle.find_objects(touching)) == 1
    assert judged(touching, claim) != RIGHT
    apart = drawn(1.5)  # half a side between the boxes
    assert len(oracle.find_objects(apart)) == 2 and judged(apart, claim) == RIGHT


@pytest.mark.parametrize("task", TASKS)
def test_a_few_stray_pixels_change_no_verdict(task, read_once):
    rng = np.random.default_rng(5)
    for index, claim in enumerate(spread(prompts._claims(task), 8)):
        image = clean_render(claim, 2, index)
        noisy = np.asarray(image).copy()
        for y, x in rng.integers(0, SIZE, (4, 2)):
            noisy[y, x] = rng.integers(0, 256, 3)
        assert not np.array_equal(noisy, np.asarray(image))
        for asked in [claim] + [e for _, e in negatives.edits(claim)]:
            assert judged(noisy, asked) == judged(image, asked), (claim, asked)


@pytest.mark.parametrize(("near", "far"), [("red", "orange"), ("blue", "purple"), ("green", "cyan")])
def test_a_colour_between_two_palette_colours_is_unsure(near, far):
    between = (np.asarray(COLORS[near], dtype=np.float64) + COLORS[far]) / 2
    image = recolored(clean_render(Claim("colors", (Group("circle", near),)), 4, 0), COLORS[near], between)
    for color in COLORS:
        expected = UNSURE if color in (near, far) else WRONG
        assert judged(image, Claim("colors", (Group("circle", color),))) == expected, color
    assert judged(image, Claim("single_object", (Group("circle"),))) == RIGHT  # the shape is still plain


# ---------------------------------------------------------------- the data set keeps its held-out combinations


def test_a_data_set_never_shows_a_held_out_combination_and_its_captions_are_right(tmp_path, read_once):
    folder = world.make_dataset(tmp_path / "scenes", count=400, size=SIZE, seed=0)
    held = world.held_out(0)
    assert world.read_held(folder) == held
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 400 and sum(r["split"] == "val" for r in rows) == 20
    kinds = Counter()
    for row in rows:
        things = [Thing(**o) for o in row["objects"]]
        pairs = [(a, b) for i, a in enumerate(things) for b in things[i + 1:]]
        assert not any(geometry.too_close((a.x, a.y, a.side), (b.x, b.y, b.side), world.GAP) for a, b in pairs)
        if len(things) == 1:
            kinds["single"] += 1
            assert row["tasks"] == ["single_object", "colors", "counting"]
            assert (things[0].color, things[0].shape) not in held.singles
        elif things[0].shape != things[1].shape:
            kinds["pair"] += 1
            a, b = things
            assert row["tasks"] == ["two_object", "color_attr", "position"] and a.color != b.color
            assert not held.pair_held((a.color, a.shape), (b.color, b.shape))
            relations = geometry.sure_relations(a.box(SIZE), b.box(SIZE))
            assert len(relations) == 1
            assert not held.relation_held(a.shape, relations.pop(), b.shape)
        else:
            kinds["count"] += 1
            assert row["tasks"] == ["counting"] and 2 <= len(things) <= 4
            assert len({(t.color, t.shape) for t in things}) == 1
            assert (len(things), things[0].color, things[0].shape) not in held.counts
        image = Image.open(folder / row["file_name"])
        for text, task in zip(row["text"], row["tasks"], strict=True):
            claim = parse(text)
            assert claim is not None and claim.task == task and not held.unseen(claim), text
            assert judged(image, claim) == RIGHT, (row["file_name"], text)
    assert min(kinds.values()) >= 50 and len(kinds) == 3, kinds


# ---------------------------------------------------------------- the committed benchmark prompts


def test_the_committed_prompt_file_is_what_build_writes(tmp_path):
    written = prompts.write(tmp_path / "prompts.jsonl", seed=0)
    assert prompts.PROMPT_FILE.read_text() == written.read_text()
    rows = prompts.load()
    assert rows == prompts.build()
    assert len(rows) >= 300 and len({r["prompt"] for r in rows}) == len(rows)
    assert {r["task"] for r in rows} == set(TASKS)


def test_every_unseen_prompt_is_unseen_and_every_seen_one_seen():
    held, rows = world.held_out(0), prompts.load()
    for task in TASKS:
        filed = [r for r in rows if r["task"] == task]
        unseen = [r for r in filed if r["unseen"]]
        assert bool(unseen) == (task not in ("single_object", "two_object")), task
        assert len(unseen) < len(filed), task  # and seen prompts beside them
    for row in rows:
        assert held.unseen(parse(row["prompt"])) == row["unseen"], row
