"""`gen check-data`: every problem of a data set with its row, a summary, and the loader's own checks."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image
from test_reliability_inputs import bomb_png, deadline, solid

from gen.data import DataError, ImageCaptionDataset, SkipLog, read_folder
from gen.data.check import Problem, check_folder, format_summary, run


@pytest.fixture
def broken(tmp_path) -> Path:
    """One row of every kind of problem; the comment is its line in metadata.jsonl (line 6 is blank)."""
    root = tmp_path / "ds"
    solid(root / "good.png")
    solid(root / "sub" / "b.png")
    full = solid(root / "full.png", size=(64, 64))
    (root / "truncated.png").write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    (root / "corrupt.png").write_text("a text file named .png")
    bomb_png(root / "bomb.png", 20000, 20000)
    Image.fromarray(np.full((8, 8), 30000, dtype=np.uint16)).save(root / "deep.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.new("RGB", (8, 4), (0, 200, 0)).save(root / "rotated.jpg", exif=exif)
    secret = solid(tmp_path / "secret.png")
    os.mkfifo(tmp_path / "outside_fifo")
    os.mkfifo(root / "inside_fifo.png")
    (root / "fifo_link.png").symlink_to(tmp_path / "outside_fifo")
    (root / "secret_link.png").symlink_to(secret)
    rows = [
        {"file_name": "good.png", "text": "fine"},  # 1
        "{not json",  # 2
        {"text": "no file name"},  # 3
        {"file_name": str(secret), "text": "absolute"},  # 4
        {"file_name": "../secret.png", "text": "dot-dot"},  # 5
        {"file_name": "secret_link.png", "text": "symlink out"},  # 7
        {"file_name": "fifo_link.png", "text": "symlink to a FIFO outside"},  # 8
        {"file_name": "inside_fifo.png", "text": "a FIFO"},  # 9
        {"file_name": "sub", "text": "a folder"},  # 10
        {"file_name": "missing.png", "text": "gone"},  # 11
        {"file_name": "sub/b.png", "text": "  "},  # 12
        {"file_name": "truncated.png", "text": "half a file"},  # 13
        {"file_name": "corrupt.png", "text": "not a png"},  # 14
        {"file_name": "bomb.png", "text": "400 M pixels"},  # 15
        {"file_name": "deep.png", "text": "16-bit"},  # 16
        {"file_name": "rotated.jpg", "text": "sideways"},  # 17
        {"file_name": "./good.png", "text": "the same file again"},  # 18
        {"file_name": "sub/b.png", "text": "fine too"},  # 19
    ]
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    (root / "metadata.jsonl").write_text("\n".join(lines[:5]) + "\n\n" + "\n".join(lines[5:]) + "\n")
    return root


def test_check_folder_lists_every_problem_with_its_row(broken):
    with deadline(20):  # opening either FIFO would hang here
        report = check_folder(broken)
    found = [(p.row, p.level, p.reason) for p in report.problems]
    assert found == [
        (2, "error", "row is not valid JSON"),
        (3, "error", "row has no file_name"),
        (4, "error", "file_name is outside the data-set folder"),
        (5, "error", "file_name is outside the data-set folder"),
        (7, "error", "file_name is outside the data-set folder"),  # row 6 is blank: lines keep their numbers
        (8, "error", "file_name is outside the data-set folder"),
        (9, "error", "not a regular file"),
        (10, "error", "not a regular file"),
        (11, "error", "missing file"),
        (12, "error", "empty caption"),
        (13, "error", "unreadable image (OSError)"),
        (14, "error", "unreadable image (UnidentifiedImageError)"),
        (15, "error", "decompression bomb"),
        (16, "warning", "16-bit greyscale scaled to 8 bits (÷257)"),
        (17, "info", "EXIF-rotated: turned upright when loading"),
        (18, "warning", "duplicate file_name"),
    ]
    assert [p.file_name for p in report.problems][10:] == ["truncated.png", "corrupt.png", "bomb.png", "deep.png",
                                                           "rotated.jpg", "good.png"]
    assert report.problems[-1].detail == "same file as row 1"
    assert "truncated" in report.problems[10].detail and report.problems[12].detail == "declares 400000000 pixels, over 89478485"
    assert (report.total, report.usable) == (18, 5)  # good, deep, rotated, ./good, sub/b
    summary = format_summary(report)
    assert summary.startswith(f"{broken}: 5 of 18 rows usable; error: file_name is outside the data-set folder 4, ")
    assert "decompression bomb 1" in summary and "warning: " in summary and "info: EXIF-rotated" in summary


def test_the_loader_skips_exactly_what_check_data_reports(broken):
    skips = SkipLog(warn=False)
    with deadline(20):
        ds = ImageCaptionDataset(read_folder(broken, skips=skips), resolution=8, preload=True, skips=skips)
    report = check_folder(broken)
    errors = sorted((p.row, p.reason) for p in report.problems if p.level == "error")
    assert sorted((i["row"], i["reason"]) for i in skips.items) == errors
    assert ds.usable() == report.usable and skips.notes == {"16-bit greyscale scaled to 8 bits (÷257)": 1}
    assert format_summary(skips, ds.usable()).startswith("data: 5 items usable; skipped: file_name is outside")
    assert format_summary(SkipLog(), 3) == "data: 3 items usable; no problems found"


def test_cli_prints_rows_and_summary_and_returns_quickly(broken, tmp_path):
    start = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "gen", "check-data", str(broken)], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - start < 60  # mostly interpreter start-up; a FIFO opened would be for ever
    lines = out.stdout.splitlines()
    assert len(lines) == 17 and lines[-1].startswith(f"{broken}: 5 of 18 rows usable")
    assert lines[0].split() == ["row", "2", "error", "metadata.jsonl", "line", "2:", "row", "is", "not", "valid", "JSON"]
    assert any(line.split()[:3] == ["row", "15", "error"] and "bomb.png: decompression bomb" in line for line in lines)


def test_nothing_usable_is_the_only_failure(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "metadata.jsonl").write_text('{"file_name": "gone.png", "text": "x"}\n')
    assert run(empty) == 1 and "0 of 1 rows usable; error: missing file 1" in capsys.readouterr().out
    assert run(tmp_path / "nowhere") == 1 and capsys.readouterr().out.startswith("error: ")
    solid(empty / "gone.png")
    assert run(empty) == 0 and "1 of 1 rows usable; no problems found" in capsys.readouterr().out


def test_metadata_jsonl_that_is_a_fifo_is_refused_not_opened(tmp_path):
    os.mkfifo(tmp_path / "metadata.jsonl")
    with deadline(10), pytest.raises(DataError, match="not a regular file"):
        read_folder(tmp_path)


def test_problem_defaults_to_an_error():
    assert Problem(3, "a.png", "missing file").level == "error"


def test_devices_are_refused_not_read(tmp_path):
    """A device reads for ever (/dev/zero) or has side effects: refused by stat, inside the folder or behind a link."""
    try:
        os.mknod(tmp_path / "zero.png", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # the /dev/zero device
    except (PermissionError, OSError):
        pytest.skip("creating a device node needs root (CAP_MKNOD)")
    (tmp_path / "dev_link.png").symlink_to("/dev/zero")
    rows = [{"file_name": "zero.png", "text": "device"}, {"file_name": "dev_link.png", "text": "link to a device"}]
    (tmp_path / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with deadline(20):
        report = check_folder(tmp_path)
    assert [(p.row, p.reason) for p in report.problems] == [(1, "not a regular file"),
                                                           (2, "file_name is outside the data-set folder")]
