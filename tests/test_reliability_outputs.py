"""Outputs: an earlier result is never replaced or mixed without --overwrite, and JSON never holds NaN.

Covers `gen sample` / `caption search --html` into used outputs, and `caption score` with the demo's summary.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from caption.__main__ import main as caption_main
from caption.evaluation.score import score_folder
from caption.search import search
from gen.__main__ import main as gen_main
from gen.core.outputs import OutputExists
from gen.data import read_folder
from gen.domains.shapes.world import ShapeSpec, phrasings, render
from gen.generator.sample import MANIFEST, sample_to_folder

PROMPTS = ["a red circle on the left", "a blue square at the top", "a green triangle in the center"]


def strict_json(text: str):
    """json.loads that fails on NaN / Infinity, as most non-Python readers do."""
    def refuse(name: str):
        raise ValueError(f"{name} in JSON")
    return json.loads(text, parse_constant=refuse)


def listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---------------------------------------------------------------- gen sample, search --html


def test_sample_refuses_a_non_empty_out(tiny_pipe, tmp_path):
    out = tmp_path / "s"
    sample_to_folder(tiny_pipe, PROMPTS, out, num_per_prompt=2, steps=2)
    before = {name: (out / name).read_bytes() for name in listing(out)}
    with pytest.raises(OutputExists, match=f"--out {out} is not empty; pass --overwrite"):
        sample_to_folder(tiny_pipe, PROMPTS[:1], out, steps=2)
    assert {name: (out / name).read_bytes() for name in listing(out)} == before
    # The CLI refuses before it loads any model (this folder holds none).
    assert gen_main(["sample", str(tmp_path / "no-model"), "--prompt", "x", "--out", str(out)]) == 2


def test_sample_overwrite_replaces_only_what_it_wrote(tiny_pipe, tmp_path):
    out = tmp_path / "s"
    sample_to_folder(tiny_pipe, PROMPTS, out, num_per_prompt=2, steps=2)
    assert len(read_folder(out)) == 6
    (out / "prompts.txt").write_text("\n".join(PROMPTS))  # the user's files stay
    render([ShapeSpec("red", "circle", "left")], 16, np.random.default_rng(0)).save(out / "mine.png")
    for derived in ("scores.jsonl", "summary.json", "report.html"):  # caption score's, not gen sample's: kept
        (out / derived).write_text("{}")
    sample_to_folder(tiny_pipe, PROMPTS[1:2], out, num_per_prompt=1, steps=2, seed=7, overwrite=True)
    assert listing(out) == [MANIFEST, "00000-seed7.png", "grid.png", "metadata.jsonl", "mine.png", "prompts.txt",
                            "report.html", "scores.jsonl", "summary.json"]
    rows = [strict_json(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert rows == [{"file_name": "00000-seed7.png", "text": PROMPTS[1], "seed": 7, "steps": 2, "guidance": 3.0,
                     "scheduler": "DPMSolverMultistepScheduler"}]
    assert [r.texts for r in read_folder(out)] == [[PROMPTS[1]]]


def test_overwrite_never_deletes_outside_the_folder(tiny_pipe, tmp_path):
    """The manifest is data: a line naming ../x.png or a subfolder must not make --overwrite delete it."""
    out, outside = tmp_path / "s", tmp_path / "keep.png"
    out.mkdir()
    (out / "sub").mkdir()
    for path in (outside, out / "sub" / "keep.png"):
        path.write_bytes(b"png")
    (out / MANIFEST).write_text("../keep.png\nsub/keep.png\nsub\n")
    sample_to_folder(tiny_pipe, PROMPTS[:1], out, steps=2, overwrite=True)
    assert outside.is_file() and (out / "sub" / "keep.png").is_file()


def test_search_html_is_not_replaced_without_overwrite(captioner_dir, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, spec in enumerate([ShapeSpec("red", "circle", "left"), ShapeSpec("blue", "square", "top")]):
        render([spec], 16, np.random.default_rng(i)).save(folder / f"{i}.png")
    strip = tmp_path / "strip.html"
    strip.write_text("an earlier strip")
    with pytest.raises(OutputExists, match="strip.html.*--overwrite"):
        search(tmp_path / "no-model", folder, "a red circle on the left", html=str(strip))  # before loading
    assert strip.read_text() == "an earlier strip"
    hits = search(captioner_dir, folder, "a red circle on the left", top=2, html=str(strip), overwrite=True)
    assert strip.read_text().count('class="hit"') == 2 and len(hits) == 2
    with pytest.raises(IsADirectoryError):
        search(captioner_dir, folder, "a red circle", html=str(folder))


# ---------------------------------------------------------------- caption score, the demo's summary


def _samples(folder) -> None:
    folder.mkdir(parents=True)
    specs = [ShapeSpec("red", "circle", "left"), ShapeSpec("blue", "square", "top")]
    rows = []
    for i, spec in enumerate(specs):
        render([spec], 16, np.random.default_rng(i)).save(folder / f"{i}.png")
        rows.append({"file_name": f"{i}.png", "text": phrasings([spec])[0]})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_score_refuses_then_keeps_the_demo_section(captioner_dir, tmp_path, capsys):
    folder = tmp_path / "demo"
    _samples(folder)
    demo = {"seed": 0, "oracle": {"all": 1.0}, "timing": {"total_min": 18.9}}
    (folder / "summary.json").write_text(json.dumps({"demo": demo, "table": {"images": 99}}))
    with pytest.raises(OutputExists, match="summary.json.*caption score.*--overwrite"):
        score_folder(captioner_dir, folder, k=2)
    assert caption_main(["score", str(captioner_dir), str(folder)]) == 2
    assert "--overwrite" in capsys.readouterr().err

    summary = score_folder(captioner_dir, folder, k=2, overwrite=True, domain="shapes")
    stored = strict_json((folder / "summary.json").read_text())  # no NaN: undefined values are null
    assert stored["demo"] == demo  # kept
    assert stored["table"]["images"] == 2  # replaced
    assert stored == summary
    # Every image passes the oracle, so AUROC against it is undefined: null, not NaN.
    assert stored["oracle"]["all"] == 1.0 and stored["table"]["auroc_judge_vs_oracle"] is None
    for line in (folder / "scores.jsonl").read_text().splitlines():
        strict_json(line)
    assert "demo.seed" not in (folder / "report.html").read_text()  # the report shows the scores only
