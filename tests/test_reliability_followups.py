"""Reliability odds and ends: the last readers of image files that bypassed gen.data.read_rgb, data notes in the
training summaries, caption describe/search arguments, and resumes whose config changed which weights train.
"""
from __future__ import annotations

import json
import logging
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import CAPTION_TINY, GEN_TINY, one_error_line
from PIL import Image

from caption.__main__ import main as caption_main
from caption.evaluation.score import score_folder
from caption.train import train as caption_train
from gen.__main__ import main as gen_main
from gen.domains.shapes.world import ShapeSpec, make_dataset, render
from gen.generator.train import train as gen_train
from gen.training.checkpoint import Checkpoints, CorruptCheckpoint

NOTE_16BIT = "16-bit greyscale scaled to 8 bits (÷257)"
TRAINERS = {"gen": (gen_train, GEN_TINY), "caption": (caption_train, CAPTION_TINY)}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("shapes") / "data", count=128, size=16, seed=0)


def grey16(path: Path, value: int = 65535 // 2) -> Path:
    """A real 16-bit greyscale PNG; PIL's own convert("RGB") turns every value above 255 white."""
    Image.fromarray(np.full((16, 16), value, dtype=np.uint16)).save(path)
    return path


def bomb(path: Path) -> Path:
    """A 48 KB PNG declaring 20000×20000 pixels (see test_reliability_inputs.bomb_png)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(b"\0" * 2501) for _ in range(20000)) + packer.flush()
    header = struct.pack(">IIBBBBB", 20000, 20000, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def write_rows(folder: Path, rows: list[dict]) -> None:
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


# ---------------------------------------------------------------- image readers


def test_followup_gen_oracle_counts_bad_images_as_skips(tmp_path, capsys):
    render([ShapeSpec("red", "circle", "left")], 32, np.random.default_rng(0)).save(tmp_path / "good.png")
    (tmp_path / "truncated.png").write_bytes((tmp_path / "good.png").read_bytes()[:60])
    bomb(tmp_path / "bomb.png")
    write_rows(tmp_path, [{"file_name": n, "text": "a red circle on the left"}
                          for n in ("good.png", "truncated.png", "bomb.png")])
    assert gen_main(["oracle", str(tmp_path)]) == 0  # was a traceback at the first bad image
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 1 and result["all"] == 1.0
    assert result["skipped"] == {"unreadable image (OSError)": 1, "decompression bomb": 1}


def test_followup_caption_score_reads_images_as_training_does(captioner_dir, tmp_path):
    """16-bit images are scaled (not turned white) and noted; a bomb is refused: gen.data.read_rgb's rules."""
    render([ShapeSpec("blue", "square", "top")], 32, np.random.default_rng(0)).save(tmp_path / "good.png")
    grey16(tmp_path / "grey.png")
    bomb(tmp_path / "bomb.png")
    write_rows(tmp_path, [{"file_name": "good.png", "text": "a blue square at the top"},
                          {"file_name": "grey.png", "text": "a grey square"},
                          {"file_name": "bomb.png", "text": "a bomb"}])
    summary = score_folder(captioner_dir, tmp_path, tmp_path / "scored", k=2)
    assert summary["table"]["images"] == 2 and summary["skipped_counts"] == {"decompression bomb": 1}
    assert summary["notes"] == {NOTE_16BIT: 1}
    assert [s["row"] for s in summary["skipped"]] == [3]


# ---------------------------------------------------------------- training summaries and the data check


@pytest.mark.parametrize("kind", ["gen", "caption"])
def test_followup_training_summary_holds_the_data_notes(kind, data, tmp_path, caplog):
    folder = tmp_path / "data"
    shutil.copytree(data, folder)
    grey16(folder / "images" / "grey.png")
    with (folder / "metadata.jsonl").open("a") as rows:
        rows.write(json.dumps({"file_name": "images/grey.png", "text": "a grey square"}) + "\n")
    train, config = TRAINERS[kind]
    out = tmp_path / "run"
    sets = ["data.source=folder", f"data.path={folder}", "train.max_steps=1", "train.batch_size=8"]
    with caplog.at_level(logging.INFO):
        train(config, out, sets)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["notes"] == {NOTE_16BIT: 1} and summary["skipped"] == {}
    # The data check's one-line summary is logged before training, by either trainer.
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("data: ")]
    assert logged and logged[0].endswith(f"items usable; warning: {NOTE_16BIT} 1"), logged


# ---------------------------------------------------------------- caption describe / search arguments


@pytest.mark.parametrize("args, named", [
    (["--beams", "0"], "--beams must be at least 1 (1: greedy), not 0"),
    (["--beams", "-3"], "--beams must be at least 1"),
    (["--top-p", "0"], "--top-p must be in (0, 1], not 0.0"),
    (["--top-p", "1.5"], "--top-p must be in (0, 1], not 1.5"),
    (["--top-p", "nan"], "--top-p must be in (0, 1], not nan"),
])
def test_followup_describe_decoding_arguments_are_checked(args, named, tmp_path, capsys):
    """Checked before the model is loaded: this model folder does not even exist."""
    assert caption_main(["describe", str(tmp_path / "nope"), str(tmp_path / "x.png"), *args]) == 2
    assert named in one_error_line(capsys)


def test_followup_describe_accepts_the_edges(captioner_dir, tmp_path, capsys):
    image = render([ShapeSpec("red", "circle", "left")], 32, np.random.default_rng(0))
    image.save(tmp_path / "x.png")
    for args in (["--beams", "1"], ["--top-p", "1"]):
        assert caption_main(["describe", str(captioner_dir), str(tmp_path / "x.png"), *args]) == 0
    assert capsys.readouterr().out.count("x.png: ") == 2


def test_followup_search_without_readable_images_is_one_line(captioner_dir, tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    assert caption_main(["search", str(captioner_dir), str(images), "a red circle"]) == 2
    no_files = "no .bmp, .gif, .jpeg, .jpg, .png, .webp files"
    assert one_error_line(capsys) == f"error: {images}: no readable images ({no_files})"
    (images / "broken.png").write_bytes(b"not a png")
    assert caption_main(["search", str(captioner_dir), str(images), "a red circle"]) == 2
    assert "no readable images (skipped: {'unreadable image (UnidentifiedImageError)': 1})" in one_error_line(capsys)


# ---------------------------------------------------------------- resumes that change which weights train


@pytest.mark.parametrize("change, found", [
    ("text.freeze=true", "(its optimizer state covers 228 weight tensors in 1 learning-rate group; this config "
                         "trains 212 weight tensors in 1 learning-rate group)"),
    ("text.lr_scale=0.5", "this config trains 16 + 212 weight tensors in 2 learning-rate groups)"),
])
def test_followup_resume_that_changes_the_trained_weights_is_one_line_and_changes_nothing(change, found, data,
                                                                                          tmp_path, capsys):
    out = tmp_path / "run"
    sets = [f"data.path={data}", "train.max_steps=2", "train.ckpt_every=1", "train.keep_last=0", "train.batch_size=8"]
    gen_train(GEN_TINY, out, sets)
    config = (out / "config.yaml").read_text()
    older = Checkpoints(out).dir / "checkpoint-00000001"
    with pytest.raises(CorruptCheckpoint, match="resume with the config the run was started with"):
        gen_train(GEN_TINY, out, [*sets, change, "train.max_steps=3"], resume=str(older))
    argv = ["train", str(GEN_TINY), "--out", str(out), "--resume", "latest",
            *[a for s in [*sets, change] for a in ("--set", s)]]
    assert gen_main(argv) == 2
    line = one_error_line(capsys)
    assert f"checkpoint {out}/checkpoints/checkpoint-00000002 was trained with other weights frozen or grouped" in line
    assert found in line and "--overwrite" in line
    # Refused before anything changed: config.yaml, and no checkpoint moved aside.
    assert (out / "config.yaml").read_text() == config
    assert [s for s, _ in Checkpoints(out).all()] == [1, 2]
    assert not [p for p in Checkpoints(out).dir.iterdir() if p.name.startswith("abandoned-")]
