"""Domains (gen/domains/): how a folder's domain is found, what each offers, and that `caption score` on a
plain folder never reads its prompts as shapes captions."""
from __future__ import annotations

import json

import numpy as np
import pytest

from caption.evaluation.score import score_folder
from gen import domains
from gen.core.errors import UserError
from gen.domains.shapes.world import ShapeSpec, make_dataset, render
from gen.generator.sample import sample_model, sample_to_folder

PROMPTS = ["a red circle on the left", "a blue square at the top"]


def shapes_folder(folder, declared: str | None = None):
    """Two clean renders with their shapes prompts; info.json declares `declared` when given."""
    folder.mkdir(parents=True)
    for i, spec in enumerate([ShapeSpec("red", "circle", "left"), ShapeSpec("blue", "square", "top")]):
        render([spec], 32, np.random.default_rng(i)).save(folder / f"{i}.png")
    (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"{i}.png", "text": p}) + "\n"
                                                   for i, p in enumerate(PROMPTS)))
    if declared is not None:
        domains.declare(folder, declared)
    return folder


def test_plain_offers_nothing_and_compares_text_only():
    image = render([ShapeSpec("red", "circle", "left")], 32, np.random.default_rng(0))
    assert domains.PLAIN.oracle(image, PROMPTS[0]) is None
    assert domains.PLAIN.hard_negatives(PROMPTS[0]) == [] and domains.PLAIN.variants(PROMPTS[0]) == {}
    assert domains.PLAIN.same_caption("A red circle, on the left!", "a red circle on the left")
    # Shapes compares what the captions state; plain only their words.
    other = "there is a red circle on the left of the image"
    assert domains.SHAPES.same_caption(other, PROMPTS[0]) and not domains.PLAIN.same_caption(other, PROMPTS[0])
    assert domains.SHAPES.oracle(image, PROMPTS[0]).overall == "right"
    assert domains.SHAPES.oracle(image, "a red circle") is None  # states no position: nothing to check
    assert len(domains.SHAPES.hard_negatives(PROMPTS[0])) == 13


def test_resolution_order(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    assert domains.resolve(None, folder)[0] is domains.PLAIN  # undeclared
    domains.declare(folder, "shapes")
    assert json.loads((folder / "info.json").read_text()) == {"domain": "shapes"}
    assert domains.resolve(None, folder)[0] is domains.SHAPES  # declared
    assert domains.resolve("plain", folder)[0] is domains.PLAIN  # explicit beats declared
    with pytest.raises(UserError, match="unknown domain 'photos'.*plain, shapes"):
        domains.resolve("photos", folder)
    (folder / "info.json").write_text("not json")
    assert domains.resolve(None, folder)[0] is domains.PLAIN
    assert domains.declared(make_dataset(tmp_path / "shapes", count=4, size=16)) == "shapes"  # make-shapes declares


def test_a_models_domain_comes_from_its_saved_data_config(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    assert domains.of_model(model) == "plain"  # no saved config
    (model / "roundtrip_config.yaml").write_text("data:\n  source: shapes\n")
    assert domains.of_model(model) == "shapes"
    data = tmp_path / "data"
    data.mkdir()
    (model / "roundtrip_config.yaml").write_text(f"data:\n  source: folder\n  path: {data}\n")
    assert domains.of_model(model) == "plain"
    domains.declare(data, "shapes")  # a make-shapes folder trained on as data.source=folder
    assert domains.of_model(model) == "shapes"


def test_gen_sample_declares_its_generators_domain(gen_run, tiny_pipe, tmp_path):
    out = sample_model(gen_run / "model", PROMPTS[:1], tmp_path / "s", steps=1)  # configs/gen/tiny.yaml: shapes
    assert domains.declared(out) == "shapes"
    plain = sample_to_folder(tiny_pipe, PROMPTS[:1], tmp_path / "p", steps=1, domain="plain")
    assert domains.declared(plain) == "plain"
    assert not (sample_to_folder(tiny_pipe, PROMPTS[:1], tmp_path / "n", steps=1) / "info.json").exists()


def test_score_in_a_plain_folder_never_reads_prompts_as_shapes(captioner_dir, tmp_path):
    folder = shapes_folder(tmp_path / "plain", declared="plain")
    summary = score_folder(captioner_dir, folder, k=20)
    rows = [json.loads(line) for line in (folder / "scores.jsonl").read_text().splitlines()]
    assert summary["domain"] == "plain"
    for row in rows:  # clean renders the shapes oracle would pass: a plain folder gets no oracle at all
        assert not {"oracle", "oracle_overall", "oracle_pass", "shape_margin", "p_right"} & set(row)
        assert row["candidates"] == 2  # no one-word hard negatives: only the other prompt
    assert not {"oracle", "calibration", "auroc_vs_oracle"} & set(summary)
    assert [item["key"] for item in summary["headline"]] == ["r_precision@1", "skipped"]
    assert "oracle:" not in (folder / "report.html").read_text()


def test_score_in_a_shapes_folder_checks_prompts(captioner_dir, tmp_path):
    for name, explicit in (("declared", None), ("undeclared", "shapes")):
        folder = shapes_folder(tmp_path / name, declared="shapes" if explicit is None else None)
        summary = score_folder(captioner_dir, folder, k=20, domain=explicit)
        rows = [json.loads(line) for line in (folder / "scores.jsonl").read_text().splitlines()]
        assert summary["domain"] == "shapes" and summary["oracle"]["all"] == 1.0
        assert [r["oracle_pass"] for r in rows] == [True, True]
        assert all(r["candidates"] == 1 + 13 + 1 for r in rows)  # hard negatives, then the other prompt
