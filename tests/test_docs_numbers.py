"""The figures the README and docs quote from committed JSONs match those JSONs (tests/docs_numbers.py)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.docs_numbers import check_docs, check_text, lookup

ROOT = Path(__file__).resolve().parents[1]


def test_every_sourced_figure_in_the_docs_matches_its_json():
    count, bad = check_docs(ROOT)
    assert count >= 10, "the README and docs should source their headline figures from committed JSONs"
    assert not bad, "\n".join(map(str, bad))


def test_a_changed_json_value_fails_the_check(tmp_path):
    (tmp_path / "samples").mkdir()
    (tmp_path / "samples" / "s.json").write_text(json.dumps({"demo": {"all": 0.9875, "steps": 1994,
                                                                      "rows": [{"v": 0.5}]}}))
    text = ("all right in 0.988<!--samples/s.json:demo.all--> after 1,994<!--samples/s.json:demo.steps--> steps; "
            "first 0.50<!--samples/s.json:demo.rows.0.v-->")
    assert check_text(text, "doc.md", tmp_path) == (3, [])

    (tmp_path / "samples" / "s.json").write_text(json.dumps({"demo": {"all": 0.95, "steps": 1994,
                                                                      "rows": [{"v": 0.5}]}}))
    count, bad = check_text(text, "doc.md", tmp_path)
    assert count == 3 and [(b.quoted, b.key) for b in bad] == [("0.988", "demo.all")]
    assert "reads 0.950" in bad[0].problem


def test_the_real_docs_fail_when_a_committed_value_changes(tmp_path):
    """The same check on a copy of the repository's docs, with one quoted JSON value altered."""
    count, bad = check_docs(ROOT)
    assert count and not bad
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", copy / "docs", ignore=shutil.ignore_patterns("*.png"))
    shutil.copy(ROOT / "README.md", copy / "README.md")
    shutil.copytree(ROOT / "samples", copy / "samples", ignore=shutil.ignore_patterns("*.png", "*.html"))
    summary = copy / "samples" / "demo" / "summary.json"
    data = json.loads(summary.read_text())
    data["demo"]["oracle"]["all"] = 0.5
    summary.write_text(json.dumps(data))
    _, bad = check_docs(copy)
    assert any(b.key == "demo.oracle.all" for b in bad), "the README quotes the demo's all-attributes score"


def test_missing_keys_and_files_are_reported_not_raised(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"x": "text"}))
    text = "1.0<!--a.json:y--> 2<!--a.json:x--> 3<!--nope.json:x--> 4<!--../outside.json:x-->"
    count, bad = check_text(text, "d.md", tmp_path)
    assert count == 4
    assert [b.problem.split(" ")[0] for b in bad] == ["the", "the", "no", "no"]


def test_keys_that_hold_dots_are_found_whole():
    data = {"by_alpha": {"0.25": {"spearman": 0.9}, "1.0": {"spearman": 0.8}}, "rows": [{"a.b": 3}]}
    assert lookup(data, "by_alpha.0.25.spearman") == 0.9 and lookup(data, "by_alpha.1.0.spearman") == 0.8
    assert lookup(data, "rows.0.a.b") == 3
    with pytest.raises(KeyError, match="'0'"):
        lookup(data, "by_alpha.0.5.spearman")
