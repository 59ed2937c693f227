"""Shapes data set: the pixel oracle against the renders' labels, caption grammar, make_dataset."""

import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

from gen.domains.shapes.world import (
    ATTRIBUTES,
    BACKGROUND,
    COLORS,
    POSITIONS,
    SHAPES,
    ShapeSpec,
    all_combinations,
    analyse,
    caption,
    check,
    heldout_combinations,
    make_dataset,
    parse_caption,
    phrasings,
    render,
)


def oracle_accuracy(size: int, count: int, seed: int, corrupt=None) -> dict[str, float]:
    """Per-attribute share of fresh renders whose oracle reading matches the rendered spec."""
    rng = np.random.default_rng(seed)
    combos = all_combinations()
    hits = dict.fromkeys(ATTRIBUTES, 0)
    for i in range(count):
        spec = combos[i % len(combos)]
        image = render([spec], size, rng)
        reading = analyse(corrupt(image, rng) if corrupt else image) or {}
        for attribute in ATTRIBUTES:
            hits[attribute] += reading.get(attribute) == getattr(spec, attribute)
    return {attribute: n / count for attribute, n in hits.items()}


def blur_and_noise(image: Image.Image, rng: np.random.Generator) -> np.ndarray:
    """Roughly what a small diffusion model returns: soft edges, noise, a few stray pixels."""
    arr = np.asarray(image.filter(ImageFilter.GaussianBlur(0.8)), dtype=np.float64)
    arr = arr + rng.normal(0, 10, arr.shape)
    for y, x in rng.integers(0, arr.shape[0], (3, 2)):
        arr[y, x] = rng.uniform(0, 255, 3)
    return np.clip(arr, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- vocabulary


def test_palette_is_well_separated():
    rgb = np.array(list(COLORS.values()), dtype=float)
    pairwise = np.linalg.norm(rgb[:, None] - rgb[None], axis=2) + np.eye(len(rgb)) * 1e9
    assert len(COLORS) >= 7
    assert pairwise.min() > 80
    assert np.linalg.norm(rgb - np.array(BACKGROUND), axis=1).min() > 150


def test_all_combinations_is_the_full_product_in_a_fixed_order():
    combos = all_combinations()
    assert len(combos) == len(set(combos)) == len(COLORS) * len(SHAPES) * len(POSITIONS)
    assert combos == all_combinations()
    assert combos[0] == ShapeSpec(next(iter(COLORS)), SHAPES[0], POSITIONS[0])
    assert combos[0].as_dict() == {"color": "red", "shape": "circle", "position": "left"}


def test_shape_spec_rejects_unknown_values():
    with pytest.raises(ValueError):
        ShapeSpec("magenta", "circle", "left")
    with pytest.raises(ValueError):
        ShapeSpec("red", "circle", "upper left")


def test_heldout_is_a_tenth_and_leaves_every_value_in_training():
    combos = all_combinations()
    held = heldout_combinations(seed=0)
    assert len(held) == round(0.1 * len(combos)) == len(set(held))
    assert set(held) <= set(combos)
    assert held == heldout_combinations(seed=0)
    assert held != heldout_combinations(seed=1)
    training = [c for c in combos if c not in held]
    assert {c.color for c in training} == set(COLORS)
    assert {c.shape for c in training} == set(SHAPES)
    assert {c.position for c in training} == set(POSITIONS)


def test_heldout_never_removes_a_value_even_when_asked_for_most():
    combos = all_combinations()
    held = heldout_combinations(seed=3, fraction=0.9)
    training = [c for c in combos if c not in held]
    assert {c.color for c in training} == set(COLORS)
    assert {c.position for c in training} == set(POSITIONS)


# ---------------------------------------------------------------- captions


def test_parse_caption_round_trips_every_phrasing_of_every_combination():
    for spec in all_combinations():
        texts = phrasings([spec])
        assert len(texts) >= 4 and len(set(texts)) == len(texts)
        for text in texts:
            assert text == text.lower()
            assert parse_caption(text) == spec.as_dict(), text


def test_caption_draws_from_phrasings():
    spec = ShapeSpec("orange", "triangle", "center")
    rng = np.random.default_rng(0)
    drawn = {caption([spec], rng) for _ in range(100)}
    assert drawn == set(phrasings([spec]))
    assert "an orange triangle in the center" in drawn


def test_parse_caption_tolerates_case_punctuation_and_extra_words():
    assert parse_caption("Look: there's a BIG Blue square, smack in the MIDDLE!") == {
        "color": "blue",
        "shape": "square",
        "position": "center",
    }
    assert parse_caption("circles at the top") == {"shape": "circle", "position": "top"}
    assert parse_caption("something purple") == {"color": "purple"}
    assert parse_caption("a picture of nothing much") is None
    assert parse_caption("") is None


# ---------------------------------------------------------------- render + oracle


def test_render_keeps_the_object_inside_a_plain_background():
    rng = np.random.default_rng(0)
    for spec in all_combinations()[:: len(POSITIONS) + 1]:
        arr = np.asarray(render([spec], 32, rng))
        assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8
        border = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
        assert (border == BACKGROUND).all()
        assert (arr != BACKGROUND).any(axis=2).mean() > 0.05


def test_two_objects_render_and_phrase_together():
    objects = [ShapeSpec("red", "circle", "left"), ShapeSpec("blue", "square", "right")]
    arr = np.asarray(render(objects, 32, np.random.default_rng(0))).astype(int)
    for spec, half in zip(objects, (arr[:, :16], arr[:, 16:])):
        near = np.abs(half - COLORS[spec.color]).max(axis=2) < 10
        assert near.sum() > 30
    assert phrasings(objects)[0] == "a red circle on the left and a blue square on the right"


def test_render_is_deterministic_given_the_generator():
    spec = [ShapeSpec("cyan", "circle", "left")]
    a = render(spec, 32, np.random.default_rng(7))
    b = render(spec, 32, np.random.default_rng(7))
    c = render(spec, 32, np.random.default_rng(8))
    assert a.tobytes() == b.tobytes() != c.tobytes()


@pytest.mark.parametrize("size, count", [(32, 1200), (64, 300)])
def test_oracle_reads_clean_renders(size, count):
    accuracy = oracle_accuracy(size, count, seed=size)
    assert min(accuracy.values()) >= 0.995, accuracy


def test_oracle_survives_blur_noise_and_stray_pixels():
    accuracy = oracle_accuracy(32, 360, seed=5, corrupt=blur_and_noise)
    assert min(accuracy.values()) >= 0.97, accuracy


@pytest.mark.parametrize("gain", [0.7, 1.1])
def test_oracle_names_dimmed_or_brightened_colours(gain):
    rng = np.random.default_rng(0)
    for color in COLORS:
        arr = np.asarray(render([ShapeSpec(color, "square", "center")], 32, rng), dtype=float)
        shaded = np.clip(BACKGROUND + (arr - BACKGROUND) * gain, 0, 255).astype(np.uint8)
        assert analyse(shaded)["color"] == color


def test_oracle_accuracy_can_fail():
    # Flip every image left-right: colour and shape still hold, left/right must not.
    def mirror(image, rng):
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    accuracy = oracle_accuracy(32, 240, seed=1, corrupt=mirror)
    assert accuracy["color"] >= 0.995 and accuracy["shape"] >= 0.995
    assert accuracy["position"] == pytest.approx(0.6, abs=0.01)  # top, bottom, center survive


def test_analyse_accepts_arrays_and_sees_nothing_in_a_blank_image():
    image = render([ShapeSpec("green", "square", "bottom")], 32, np.random.default_rng(0))
    expected = {"color": "green", "shape": "square", "position": "bottom"}
    assert analyse(image) == expected
    assert analyse(np.asarray(image)) == expected
    assert analyse(np.asarray(image) / 255.0) == expected
    blank = np.full((32, 32, 3), BACKGROUND, dtype=np.uint8)
    assert analyse(blank) is None


def test_check_flags_exactly_the_wrong_attribute():
    image = render([ShapeSpec("red", "circle", "left")], 32, np.random.default_rng(0))
    assert check(image, "a red circle on the left") == dict.fromkeys(ATTRIBUTES, True)
    wrong_colour = check(image, "a blue circle on the left")
    assert wrong_colour == {"color": False, "shape": True, "position": True}
    assert check(image, "there is a red triangle on the left") == {
        "color": True,
        "shape": False,
        "position": True,
    }
    wrong_place = check(image, "a red circle at the top")
    assert wrong_place == {"color": True, "shape": True, "position": False}
    assert check(image, "something red") == {"color": True}
    assert check(image, "nothing to see") == {}
    blank = Image.new("RGB", (32, 32), BACKGROUND)
    assert check(blank, "a red circle on the left") == dict.fromkeys(ATTRIBUTES, False)


# ---------------------------------------------------------------- make_dataset


def read_rows(root):
    return [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]


def test_make_dataset_writes_rows_images_and_side_files(tmp_path):
    root = make_dataset(tmp_path / "ds", count=400, size=32, seed=0)
    rows = read_rows(root)
    held = {ShapeSpec(**c) for c in json.loads((root / "heldout.json").read_text())}
    info = json.loads((root / "info.json").read_text())
    assert held == set(heldout_combinations(0))
    assert info["count"] == 400 and info["size"] == 32 and info["seed"] == 0
    assert list(info["colors"]) == list(COLORS) and info["shapes"] == list(SHAPES)

    assert len(rows) == 400
    assert [r["file_name"] for r in rows] == [f"images/{i:06d}.png" for i in range(400)]
    splits = [r["split"] for r in rows]
    assert splits.count("unseen") == 20
    assert splits.count("val") == round(0.05 * 380) and set(splits) == {"train", "val", "unseen"}
    for row in rows:
        spec = ShapeSpec(row["color"], row["shape"], row["position"])
        assert (spec in held) == (row["split"] == "unseen")
        assert 2 <= len(row["text"]) <= 3 and len(set(row["text"])) == len(row["text"])
        assert all(parse_caption(t) == spec.as_dict() for t in row["text"])
    unseen = {(r["color"], r["shape"], r["position"]) for r in rows if r["split"] == "unseen"}
    assert len(unseen) == len(held)  # spread over all held-out combinations

    for row in rows[:50]:
        image = Image.open(root / row["file_name"])
        assert image.size == (32, 32) and image.mode == "RGB"
        assert all(check(image, row["text"][0]).values())


def test_make_dataset_is_deterministic_given_the_seed(tmp_path):
    a = make_dataset(tmp_path / "a", count=60, seed=3)
    b = make_dataset(tmp_path / "b", count=60, seed=3)
    c = make_dataset(tmp_path / "c", count=60, seed=4)
    assert read_rows(a) == read_rows(b) != read_rows(c)
    for name in ("000000.png", "000059.png"):
        assert (a / "images" / name).read_bytes() == (b / "images" / name).read_bytes()


def test_oracle_cli_scores_a_folder(tmp_path, capsys):
    from gen.__main__ import main as gen_main

    root = make_dataset(tmp_path / "ds", count=60, size=32, seed=0)
    assert gen_main(["oracle", str(root)]) == 0
    clean = json.loads(capsys.readouterr().out)
    assert clean["n"] == 60 and clean["color"] == clean["shape"] == clean["position"] == 1.0
    for row in read_rows(root):  # mirrored: every left/right caption is now wrong
        path = root / row["file_name"]
        Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path)
    gen_main(["oracle", str(root)])
    mirrored = json.loads(capsys.readouterr().out)
    sides = sum(r["position"] in ("left", "right") for r in read_rows(root)) / 60
    assert mirrored["color"] == 1.0 and mirrored["position"] == pytest.approx(1 - sides)
