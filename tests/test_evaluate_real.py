"""gen evaluate --real: Fréchet distance by hand, and CAS / per-class accuracy / outputs on a tiny real set whose
classes (red, green, blue noisy squares) a ResNet-18 learns in seconds."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gen.core.outputs import OutputExists
from gen.data.records import Record
from gen.evaluate.class_grid import EMPTY, FRAME, RIGHT, WRONG, class_grid
from gen.evaluate.classifier import ClassifierConfig
from gen.data import caption_labels
from gen.evaluate.real import evaluate_samples, frechet_distance

COLORS = {"red": (220, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 220)}
CFG = ClassifierConfig(resolution=8, epochs=8, batch_size=12, lr=3e-3, shift=1)


def square(path: Path, color: str, seed: int) -> None:
    noise = np.random.default_rng(seed).integers(-25, 26, size=(8, 8, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(np.array(COLORS[color]) + noise, 0, 255).astype(np.uint8)).save(path)


def write_jsonl(folder: Path, rows: list[dict]) -> None:
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def real_dir(tmp_path) -> Path:
    root, rows = tmp_path / "real", []
    for c, color in enumerate(COLORS):
        for i in range(16):
            name = f"images/{color}{i}.png"
            square(root / name, color, seed=100 * c + i)
            rows.append({"file_name": name, "text": [f"a {color} thing", color], "label": color,
                         "split": "test" if i < 4 else "train"})
    write_jsonl(root, rows)
    return root


@pytest.fixture
def samples_dir(tmp_path) -> Path:
    """What `gen sample` writes: 3 "red" prompts (one drawn blue), 2 blue, one row labelled green with a prompt
    the real set lacks, one unknown prompt."""
    root = tmp_path / "samples"
    plan = [("a red thing", "red", None), ("a red thing", "red", None), ("red", "blue", None),
            ("a blue thing", "blue", None), ("A Blue  thing", "blue", None), ("anything", "green", "green"),
            ("a purple thing", "red", None)]
    rows = []
    for k, (prompt, drawn, label) in enumerate(plan):
        square(root / f"{k:05d}-seed{k}.png", drawn, seed=1000 + k)
        rows.append({"file_name": f"{k:05d}-seed{k}.png", "text": prompt, "seed": k} | ({"label": label} if label else {}))
    write_jsonl(root, rows)
    return root


def test_frechet_distance_by_hand():
    # 1-D: means 0 and 3, sample variances 2 and 8: 9 + 2 + 8 - 2·√16 = 11
    assert frechet_distance(np.array([[-1.0], [1.0]]), np.array([[1.0], [5.0]])) == pytest.approx(11.0)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 4)), rng.normal(size=(40, 4)) @ rng.normal(size=(4, 4)) + 1
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    scipy_linalg = pytest.importorskip("scipy.linalg")
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy_linalg.sqrtm(ca @ cb).real
    expected = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * root)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_caption_table_drops_phrasings_two_labels_share():
    recs = [Record(Path("a"), ["a cat", "an animal"], {"label": "cat"}), Record(Path("b"), ["A dog", "an animal"],
            {"label": "dog"}), Record(Path("c"), ["no label"], {})]
    assert caption_labels(recs) == {"a cat": "cat", "a dog": "dog"}


def test_cas_per_class_fd_and_outputs(real_dir, samples_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("ROUNDTRIP_CACHE", str(tmp_path / "cache"))
    summary = evaluate_samples(samples_dir, real_dir, cfg=CFG)
    assert summary["real_accuracy"] == 1.0  # 12 real test squares, trivially separable
    assert summary["n_generated"] == 6 and summary["unknown_prompts"] == {"a purple thing": 1}
    assert summary["cas"] == pytest.approx(5 / 6)  # the red prompt drawn blue is the one miss
    assert summary["per_class"]["red"] == {"n": 3, "correct": 2, "accuracy": pytest.approx(2 / 3)}
    assert summary["per_class"]["green"]["accuracy"] == 1.0 and summary["per_class"]["blue"]["n"] == 2
    assert summary["n_floor"] == 6 and summary["fd"] > 0 and summary["fd_floor"] > 0
    assert summary["classifier"]["cached"] is False and summary["classifier"]["train_images"] == 36
    written = json.loads((samples_dir / "evaluation.json").read_text())
    assert written["cas"] == summary["cas"] and set(written) >= {"cas", "real_accuracy", "fd", "fd_floor", "per_class"}
    # Per image (for `caption score`'s judge-vs-classifier agreement): the one miss is the red prompt drawn blue.
    assert [(p["file_name"], p["label"], p["predicted"]) for p in written["predictions"]] == [
        ("00000-seed0.png", "red", "red"), ("00001-seed1.png", "red", "red"), ("00002-seed2.png", "red", "blue"),
        ("00003-seed3.png", "blue", "blue"), ("00004-seed4.png", "blue", "blue"), ("00005-seed5.png", "green", "green")]
    grid = Image.open(samples_dir / "per_class_grid.png").convert("RGB")
    assert grid.getpixel((0, 0)) == (255, 255, 255) and grid.height > 3 * (8 + 2 * FRAME)  # a title, 3 class rows
    page = (samples_dir / "evaluation.html").read_text()
    assert page.count("<img") == 6 and 'title="read as blue"' in page

    with pytest.raises(OutputExists, match="--overwrite"):
        evaluate_samples(samples_dir, real_dir, cfg=CFG)
    again = evaluate_samples(samples_dir, real_dir, overwrite=True, cfg=CFG)
    assert again["classifier"]["cached"] is True  # the cached classifier reused: same weights, same numbers
    assert (again["cas"], again["fd"]) == (summary["cas"], pytest.approx(summary["fd"]))


def test_per_class_grid_frames_each_image_by_its_reading(tmp_path):
    """Rows in class order, each image in a green frame (read as asked) or a red one (not), empty cells grey: a
    picture grid.png cannot be, even when both lay the images out one class to a row."""
    rng = np.random.default_rng(0)
    pixels = torch.from_numpy(rng.integers(0, 256, size=(4, 3, 8, 8), dtype=np.uint8))
    wanted, got = [0, 0, 2, 2], [0, 1, 2, 2]  # image 1 asked for class 0, read as class 1; class 1 has no images
    corners = class_grid(pixels, wanted, got, ["red", "green", "blue"], tmp_path / "g.png", title="best of 8",
                         per_row=3)
    grid = Image.open(tmp_path / "g.png").convert("RGB")
    assert list(corners) == [0, 1, 2, 3]
    (x0, y0), (x1, y1), (x2, y2) = corners[0], corners[1], corners[2]
    assert y0 == y1 < y2 and x0 < x1 and x2 == x0  # class 0's two images in one row; class 2 two rows down
    assert grid.getpixel((x0, y0)) == RIGHT and grid.getpixel((x1, y1)) == WRONG and grid.getpixel((x2, y2)) == RIGHT
    assert grid.getpixel((x1 + FRAME, y1 + FRAME)) == tuple(pixels[1, :, 0, 0].tolist())  # the image itself, unscaled
    assert grid.getpixel((x0, (y0 + y2) // 2 + FRAME)) == EMPTY  # class 1's row: empty cells
    assert class_grid(pixels[:0], [], [], ["red"], tmp_path / "none.png") == {} and not (tmp_path / "none.png").exists()


def test_real_set_without_labels_is_a_user_error(tmp_path, samples_dir):
    from gen.core.errors import UserError

    root = tmp_path / "plain"
    square(root / "a.png", "red", 0)
    write_jsonl(root, [{"file_name": "a.png", "text": "a red thing"}])
    with pytest.raises(UserError, match="at least two classes"):
        evaluate_samples(samples_dir, root, cfg=CFG)
