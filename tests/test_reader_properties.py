"""The metadata readers over arbitrary input: every row is a record or a counted skip, and nothing else is raised
than the DataError the readers document for a file that cannot be used at all."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_reliability_inputs import solid

from gen.data import DataError, SkipLog, read_coco, read_folder
from gen.data.check import check_folder

# Few examples and no per-example deadline: the suite runs on 2 busy cores, and each example touches the disk.
# derandomize: CI sees the same examples every run, so a red build is reproducible; run with
# --hypothesis-seed=random (or a larger max_examples) to search further.
FAST = settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

# Text with everything JSON can carry, lone surrogates and control characters included.
TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=12)
NAMES = st.sampled_from(["a.png", "./a.png", "sub", "missing.png", "../outside.png", "/etc/hostname", "a.png\x00",
                         "\x1b[2J.png", "\ud800.png", "", "sub/../a.png"]) | TEXT | JSON
ROWS = st.fixed_dictionaries({"file_name": NAMES, "text": JSON}, optional={"split": JSON, "label": JSON})
NESTED = st.integers(1, 120_000).map(lambda depth: "[" * depth + "]" * depth)
# One line of metadata.jsonl: a plausible row, any JSON value, JSON nested past the parser's limit, or raw bytes.
LINES = (ROWS.map(json.dumps) | JSON.map(json.dumps) | NESTED).map(str.encode) | st.binary(max_size=64)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A data-set folder with one good image and a subfolder; each example rewrites only its metadata.jsonl."""
    root = tmp_path_factory.mktemp("ds")
    solid(root / "a.png")
    (root / "sub").mkdir()
    solid(root.parent / "outside.png")
    return root


def non_blank_lines(data: bytes) -> int:
    text = data.decode("utf-8", errors="replace")
    return sum(1 for line in text.split("\n") if line.removesuffix("\r").strip())


@FAST
@given(lines=st.lists(LINES, max_size=8).map(b"\n".join) | st.binary(max_size=512))
def test_every_metadata_line_is_a_record_or_a_counted_skip(folder, lines):
    (folder / "metadata.jsonl").write_bytes(lines)
    skips = SkipLog(warn=False)
    records = read_folder(folder, split=None, skips=skips)
    assert len(records) + sum(skips.counts.values()) == non_blank_lines(lines)
    assert all(r.path == (folder / "a.png").resolve() for r in records)  # the only regular file inside
    assert all(r.texts and all(isinstance(t, str) and t.strip() == t for t in r.texts) for r in records)
    report = check_folder(folder)  # gen check-data: the same rows, and it never raises either
    assert (report.total, report.usable) == (non_blank_lines(lines), len(records))


@FAST
@given(images=st.lists(st.fixed_dictionaries({"id": JSON, "file_name": NAMES}) | JSON, max_size=6),
       annotations=st.lists(st.fixed_dictionaries({"image_id": JSON, "caption": JSON}) | JSON, max_size=6))
def test_every_coco_image_is_a_record_or_a_counted_skip(folder, images, annotations):
    path = folder / "captions.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations}))
    skips = SkipLog(warn=False)
    records = read_coco(path, skips=skips)
    image_skips = [i for i in skips.items if not i["reason"].startswith("annotation")]
    assert len(records) + len(image_skips) == len(images)
    assert len(skips.items) - len(image_skips) == sum(not isinstance(a, dict) or "image_id" not in a
                                                      or not isinstance(a["image_id"], (int, str))
                                                      or isinstance(a["image_id"], bool) for a in annotations)


@FAST
@given(content=JSON.map(lambda value: json.dumps(value).encode()) | NESTED.map(str.encode) | st.binary(max_size=256))
def test_a_coco_file_is_read_or_refused_with_one_data_error(folder, content):
    path = folder / "any.json"
    path.write_bytes(content)
    try:
        records = read_coco(path, skips=SkipLog(warn=False))
    except DataError as err:
        assert str(err).startswith(f"{path}: ")  # one line that names the file
        return
    data = json.loads(content.decode("utf-8-sig"))  # read: so it was a JSON object with an "images" list
    assert isinstance(data, dict) and isinstance(data["images"], list) and len(records) <= len(data["images"])
