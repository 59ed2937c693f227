"""A training start that fails on its data is one `error:` line and exit status 2, and leaves nothing behind that
makes the corrected rerun look like "an earlier run": the corrected run then starts and trains."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import CAPTION_TINY, GEN_TINY, one_error_line

from caption.__main__ import main as caption_main
from gen.__main__ import main as gen_main
from gen.domains.shapes.world import ShapeSpec, render
from gen.training.rundir import USED_MARKERS

MAINS = {"gen": (gen_main, GEN_TINY), "caption": (caption_main, CAPTION_TINY)}
CHEAP = ["train.batch_size=4", "train.max_steps=1"]  # the corrected run: one step


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Eight labelled shapes images with metadata.jsonl."""
    root = tmp_path_factory.mktemp("data")
    rows, rng = [], np.random.default_rng(0)
    for i, (colour, shape) in enumerate([(c, s) for c in ("red", "blue") for s in ("circle", "square")] * 2):
        render([ShapeSpec(colour, shape, "left")], 16, rng).save(root / f"{i}.png")
        rows.append({"file_name": f"{i}.png", "text": f"a {colour} {shape} on the left", "label": shape})
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def train(trainer: str, out: Path, *overrides: str) -> int:
    main, config = MAINS[trainer]
    return main(["train", str(config), "--out", str(out), *[a for o in overrides for a in ("--set", o)]])


def assert_corrected_run_starts(trainer: str, out: Path, folder: Path, capsys) -> None:
    assert not [name for name in USED_MARKERS if (out / name).exists()]
    assert not (out / ".lock").exists() and not (out / "config.yaml").exists()
    assert train(trainer, out, "data.source=folder", f"data.path={folder}", *CHEAP) == 0, capsys.readouterr().err
    assert (out / "model" / "config.json").is_file() or (out / "model" / "model_index.json").is_file()


@pytest.mark.parametrize("trainer", ["gen", "caption"])
def test_label_no_row_has_is_one_error_line_and_the_folder_stays_reusable(trainer, folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(trainer, out, "data.source=folder", f"data.path={folder}", "data.labels=[zebra]", *CHEAP) == 2
    assert "data.labels names 1 label(s) no row has, e.g. ['zebra']" in one_error_line(capsys)
    assert_corrected_run_starts(trainer, out, folder, capsys)


def test_batch_larger_than_the_data_set_is_one_error_line(folder, tmp_path, capsys):
    out = tmp_path / "run"
    assert train("gen", out, "data.source=folder", f"data.path={folder}", *CHEAP, "train.batch_size=100000") == 2
    assert "the data set has 8 items, fewer than one batch of 100000" in one_error_line(capsys)
    assert not (out / "logs").exists() and not (out / "tokenizer").exists()
    assert_corrected_run_starts("gen", out, folder, capsys)


def test_data_set_empty_after_skips_is_one_error_line(folder, tmp_path, capsys):
    """A metadata.jsonl whose one row is nested too deep to parse, and a row naming a missing image: both skipped,
    leaving no data."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "metadata.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n"
                                         + json.dumps({"file_name": "gone.png", "text": "a red circle"}) + "\n")
    out = tmp_path / "run"
    assert train("gen", out, "data.source=folder", f"data.path={data}", *CHEAP) == 2
    message = one_error_line(capsys)
    assert "the data set has no usable items (2 rows skipped:" in message
    assert_corrected_run_starts("gen", out, folder, capsys)


def test_coco_file_that_is_not_utf8_is_one_error_line(folder, tmp_path, capsys):
    coco = tmp_path / "captions.json"
    coco.write_bytes(b'{"images": [{"id": 1, "file_name": "0.png"}], "annotations": [{"image_id": 1, "caption": "\xff"}]}')
    out = tmp_path / "run"
    assert train("caption", out, "data.source=coco", f"data.path={coco}", *CHEAP) == 2
    assert f"{coco}: not UTF-8 (bad byte at offset" in one_error_line(capsys)
    assert_corrected_run_starts("caption", out, folder, capsys)


def test_hf_folder_with_a_loading_script_is_refused_unrun(folder, tmp_path, capsys):
    data = tmp_path / "hf"
    data.mkdir()
    mark = tmp_path / "ran"
    (data / "hf.py").write_text(f"open({str(mark)!r}, 'w')\n")
    (data / "train.csv").write_text("image,text\nx,a red circle\n")
    out = tmp_path / "run"
    assert train("gen", out, "data.source=hf", f"data.path={data}", *CHEAP) == 2
    assert f"data.path {data} holds a loading script (hf.py)" in one_error_line(capsys)
    assert not mark.exists()
    assert_corrected_run_starts("gen", out, folder, capsys)


@pytest.mark.parametrize("column, named", [
    ("text", "column 'text' is Value('int64'), not text"),
    ("image", "column 'image' is Value('string'), not images"),
])
def test_hf_column_of_the_wrong_type_is_one_error_line(column, named, folder, tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    png = (folder / "0.png").read_bytes()
    columns = {"image": [png] * 8, "text": ["a red circle on the left"] * 8}
    columns[column] = [3] * 8 if column == "text" else ["0.png"] * 8
    data = tmp_path / "hf"
    datasets.Dataset.from_dict(columns).save_to_disk(str(data))
    out = tmp_path / "run"
    assert train("gen", out, "data.source=hf", f"data.path={data}", *CHEAP) == 2
    assert named in one_error_line(capsys)
    assert_corrected_run_starts("gen", out, folder, capsys)


def test_unet_section_diffusers_refuses_is_one_error_line_and_its_tokenizer_is_removed(folder, tmp_path, capsys):
    """The UNet is built after the tokenizer is saved: the failed start takes that tokenizer away again."""
    out = tmp_path / "run"
    assert train("gen", out, "data.source=folder", f"data.path={folder}", "unet.block_out_channels=[16]", *CHEAP) == 2
    message = one_error_line(capsys)
    assert "the unet section cannot build a UNet2DConditionModel" in message and "block_out_channels" in message
    assert not (out / "tokenizer").exists()
    assert_corrected_run_starts("gen", out, folder, capsys)
