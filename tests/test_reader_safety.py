"""Hostile data sets: image paths that leave the data set, rows that break the JSON parser, text that drives the
terminal, prompts of a megabyte, and `datasets` caches left in the home folder."""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_reliability_inputs import BLUE, RED, solid, write_rows

import gen
from gen.core.config import DataConfig
from gen.data import DataError, ImageCaptionDataset, SkipLog, read_coco, read_folder, read_records
from gen.data.check import check_folder, run
from gen.data.tokenizer import tokenize

NESTED = "[" * 100_000 + "]" * 100_000  # valid JSON that no recursive parser can read
TERMINAL = "\x1b]0;TITLE\x07\x1b[2J"  # sets the terminal's title, then clears the screen
# The checkout whose `gen` this test imported: the subprocesses below run that same code.
GEN_ROOT = Path(gen.__file__).resolve().parent.parent


# --- data.source=hf: image cells that name files ---------------------------------------------------------------

def hf_config(path: Path) -> DataConfig:
    return DataConfig(source="hf", path=str(path), resolution=4)


def path_cells(datasets, cells: list[dict], byte_type: str = "binary"):
    """A `datasets` Dataset whose image column is a plain {"bytes", "path"} struct: no Image feature, so
    save_to_disk stores the paths as given instead of embedding the files."""
    features = datasets.Features({"image": {"bytes": datasets.Value(byte_type), "path": datasets.Value("string")},
                                  "text": datasets.Value("string")})
    return datasets.Dataset.from_dict({"image": cells, "text": [f"row {i}" for i in range(len(cells))]},
                                      features=features)


@pytest.fixture
def hostile_paths(tmp_path, monkeypatch):
    """A secret PNG beside the data-set folder, one inside it, and a working folder from which "../secret.png"
    would reach the secret."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    secret = solid(tmp_path / "secret.png", RED)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cells = [{"bytes": None, "path": str(secret)}, {"bytes": None, "path": "../secret.png"},
             {"bytes": None, "path": "inside.png"}]
    return datasets, path_cells(datasets, cells)


@pytest.mark.parametrize("layout", ["save_to_disk", "parquet"])
def test_hf_image_paths_resolve_inside_the_data_set_folder_only(hostile_paths, tmp_path, layout):
    datasets, ds = hostile_paths
    folder = tmp_path / "ds"
    if layout == "save_to_disk":
        ds.save_to_disk(folder)
        source = folder
    else:
        folder.mkdir()
        source = folder / "rows.parquet"
        ds.to_parquet(str(source))
    solid(folder / "inside.png", BLUE)
    skips = SkipLog()
    records = read_records(hf_config(source), skips=skips)
    assert skips.summary() == {"image path is outside the data-set folder": 2}
    assert [i["file_name"] for i in skips.items] == [str(tmp_path / "secret.png"), "../secret.png"]
    # the relative path is read from the data set's folder, not from the working folder
    assert [(r.path, r.texts) for r in records] == [(folder / "inside.png", ["row 2"])]
    pixels = ImageCaptionDataset(records, resolution=4, preload=True, skips=skips)[0]["pixel_values"]
    assert pixels[:, 0, 0].tolist() == [-1.0, -1.0, 1.0]  # blue: the file inside, not the red secret


def test_hf_image_bytes_that_hold_text_are_never_opened_as_a_path(hostile_paths, tmp_path):
    datasets, _ = hostile_paths
    secret = str(tmp_path / "secret.png")
    path_cells(datasets, [{"bytes": secret, "path": None}], byte_type="string").save_to_disk(tmp_path / "ds")
    skips = SkipLog()
    assert read_records(hf_config(tmp_path / "ds"), skips=skips) == []
    assert skips.summary() == {"row has no image": 1}


def test_hf_source_writes_no_cache_into_the_home_folder(tmp_path):
    """A fresh interpreter with HF_HOME and HF_DATASETS_CACHE pointed at empty folders: after reading a parquet
    file, a folder of parquet files and a save_to_disk folder (and decoding their images), both stay empty."""
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    rows = datasets.Dataset.from_dict(
        {"image": [Image.new("RGB", (4, 4), RED), Image.new("RGB", (4, 4), BLUE)], "text": ["red", "blue"]},
        features=datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")}))
    (tmp_path / "files").mkdir()
    rows.to_parquet(str(tmp_path / "one.parquet"))
    rows.to_parquet(str(tmp_path / "files" / "train-00000-of-00001.parquet"))
    rows.save_to_disk(tmp_path / "saved")
    home, cache = tmp_path / "hf-home", tmp_path / "hf-datasets-cache"
    home.mkdir()
    cache.mkdir()
    script = textwrap.dedent("""
        import json, sys
        from gen.core.config import DataConfig
        from gen.data import ImageCaptionDataset, read_records

        found = {}
        for path in sys.argv[1:]:
            records = read_records(DataConfig(source="hf", path=path, resolution=4))
            ds = ImageCaptionDataset(records, resolution=4, preload=True)
            found[path] = [(r.texts[0], ds[i]["pixel_values"][:, 0, 0].tolist()) for i, r in enumerate(records)]
        print(json.dumps(found))
    """)
    sources = [str(tmp_path / "one.parquet"), str(tmp_path / "files"), str(tmp_path / "saved")]
    env = os.environ | {"HF_HOME": str(home), "HF_DATASETS_CACHE": str(cache), "PYTHONPATH": str(GEN_ROOT)}
    out = subprocess.run([sys.executable, "-c", script, *sources], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    expected = [["red", [1.0, -1.0, -1.0]], ["blue", [-1.0, -1.0, 1.0]]]
    assert json.loads(out.stdout.splitlines()[-1]) == {s: expected for s in sources}
    assert sorted(str(p.relative_to(tmp_path)) for p in [*home.rglob("*"), *cache.rglob("*")]) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["files", "hf-datasets-cache", "hf-home", "one.parquet",
                                                          "saved"]


# --- rows nested too deep for the JSON parser -----------------------------------------------------------------

@pytest.fixture
def nested_row(tmp_path) -> Path:
    root = tmp_path / "ds"
    solid(root / "a.png")
    solid(root / "b.png", BLUE)
    lines = [json.dumps({"file_name": "a.png", "text": "red"}), NESTED, json.dumps({"file_name": "b.png", "text": "blue"})]
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


def test_a_row_nested_too_deep_is_a_counted_skip_for_every_reader(nested_row, capsys):
    skips = SkipLog()
    assert [r.texts for r in read_folder(nested_row, skips=skips)] == [["red"], ["blue"]]
    assert skips.items == [{"file_name": "metadata.jsonl line 2", "reason": "row is nested too deep to read", "row": 2}]
    # training reads through read_records, gen check-data through check_folder
    assert len(read_records(DataConfig(source="folder", path=str(nested_row), split=None))) == 2
    report = check_folder(nested_row)
    assert (report.total, report.usable) == (3, 2)
    assert [(p.row, p.reason) for p in report.problems] == [(2, "row is nested too deep to read")]
    assert run(nested_row) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (f"{nested_row}: 2 of 3 rows usable; "
                                                        "error: row is nested too deep to read 1")


def test_coco_file_nested_too_deep_or_with_a_huge_integer_is_one_data_error(tmp_path):
    nested = tmp_path / "nested.json"
    nested.write_text('{"images": ' + NESTED + "}")
    with pytest.raises(DataError, match=r"nested\.json: JSON nested too deep to read"):
        read_coco(nested)
    huge = tmp_path / "huge.json"
    huge.write_text('{"images": [], "annotations": [{"image_id": ' + "9" * 5000 + "}]}")
    with pytest.raises(DataError, match=r"huge\.json: not usable JSON \(Exceeds the limit"):
        read_coco(huge)


# --- terminal control characters in what the readers print ----------------------------------------------------

def test_printable_escapes_control_characters_and_lone_surrogates():
    from gen.core.terminal import excerpt, printable  # here, not at the top: the other tests need only the readers

    assert printable(TERMINAL) == "\\x1b]0;TITLE\\x07\\x1b[2J"
    assert printable("a\nb\tc\x7f\x85\x9f\ud800") == "a\\x0ab\\x09c\\x7f\\x85\\x9f\\ud800"
    assert printable("héllo ☃ 猫 — ok") == "héllo ☃ 猫 — ok"  # printable text is left alone
    assert excerpt("short\x1b") == "short\\x1b" and excerpt("x" * 81) == "x" * 80 + "… (81 characters)"


def test_check_data_escapes_control_characters_in_every_line(tmp_path):
    root = tmp_path / "ds"
    solid(root / "good.png")
    rows = [{"file_name": "good.png", "text": "fine"},
            {"file_name": TERMINAL + ".png", "text": "retitles the terminal"},
            {"file_name": "forged.png\n     row 9  error    good.png: missing file", "text": "two lines"},
            {"file_name": "\ud800.png", "text": "a lone surrogate: print() cannot encode it"}]
    (root / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))  # ASCII: \ud800 as an escape
    out = subprocess.run([sys.executable, "-m", "gen", "check-data", str(root)], cwd=GEN_ROOT, capture_output=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    text = out.stdout.decode("utf-8")
    assert "\x1b" not in text and "\x07" not in text
    lines = text.splitlines()
    assert len(lines) == 4  # three problems and the summary: the newline in a file name forged no line
    assert lines[0].split()[:3] == ["row", "2", "error"]
    assert lines[0].endswith("  \\x1b]0;TITLE\\x07\\x1b[2J.png: missing file")
    assert lines[1].endswith("  forged.png\\x0a     row 9  error    good.png: missing file: missing file")
    assert "  \\ud800.png: " in lines[2] and lines[3].startswith(f"{root}: 1 of 4 rows usable")


def test_reader_skip_warnings_escape_control_characters(tmp_path, caplog):
    write_rows(tmp_path, [{"file_name": TERMINAL + ".png", "text": "x"}])
    with caplog.at_level(logging.WARNING, logger="gen.data.records"):
        assert read_folder(tmp_path) == []
    assert caplog.messages == ["skipped \\x1b]0;TITLE\\x07\\x1b[2J.png (row 1): missing file"]


# --- long prompts ---------------------------------------------------------------------------------------------

def test_a_megabyte_prompt_is_truncated_with_a_short_warning(tokenizer, caplog):
    prompt = "a red circle at the top left " * 36_000 + "and a unique tail"  # about 1 MB
    with caplog.at_level(logging.WARNING, logger="gen.data.tokenizer"):
        ids, mask = tokenize(tokenizer, [prompt], max_length=24)
    assert ids.shape == (1, 24) and mask.sum().item() == 24
    assert caplog.messages == [f"prompt longer than 24 tokens, truncated: {prompt[:80]}… ({len(prompt):,} characters)"]


def test_a_one_line_error_escapes_control_characters_it_quotes(capsys):
    from gen.core.cli import run_cli
    from gen.core.errors import UserError

    def fail(_args):
        raise UserError("bad name 'x\x1b]0;TITLE\x07\x1b[2J' in the data set")

    assert run_cli(argparse.ArgumentParser(), fail, []) == 2
    err = capsys.readouterr().err
    assert err == "error: bad name 'x\\x1b]0;TITLE\\x07\\x1b[2J' in the data set\n"


def test_a_bare_carriage_return_does_not_end_a_metadata_line(tmp_path):
    (tmp_path / "metadata.jsonl").write_bytes(b'not json\rstill the same line\n{"file_name": "a.png"')
    skips = SkipLog(warn=False)
    assert read_folder(tmp_path, split=None, skips=skips) == []
    assert sum(skips.counts.values()) == 2  # two lines, both unusable: JSON Lines ends a line at "\n" only
