"""Generic code reaches a data world only through the Domain protocol: what it may ask, and what it never names."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from caption.evaluation.meta_eval import build_ladders
from caption.evaluation.oracle_agreement import agreement_report
from gen import domains
from gen.core.config import ConfigError, DataConfig, GenConfig, GenerateConfig, load, save, to_dict
from gen.core.errors import UserError
from gen.data import read_records
from gen.evaluate.oracle import oracle_accuracy, renders_verdicts

ROOT = Path(__file__).resolve().parent.parent
SHAPES = domains.get("shapes")
# Generic modules: none of them may spell out the shapes world's attributes (they come from Domain.attributes).
GENERIC = ["gen/evaluate/oracle.py", "gen/data/dataset.py", "gen/core/config.py", "caption/train.py",
           *(f"caption/evaluation/{n}.py" for n in ("score", "oracle_agreement", "best_of_n", "meta_eval",
                                                   "meta_eval_generated", "tasks", "geneval")),
           "gen/evaluate/geneval.py", "gen/evaluate/geneval_command.py",
           *(f"caption/judge/{n}.py" for n in ("attribute_probs", "negatives", "labels", "scorer"))]


@pytest.mark.parametrize("path", GENERIC)
def test_a_generic_module_names_no_attribute_of_a_world(path):
    strings = [n.value for n in ast.walk(ast.parse((ROOT / path).read_text())) if isinstance(n, ast.Constant)
               and isinstance(n.value, str)]
    assert [s for s in strings if s in ("color", "shape", "position") or "colour" in s.lower()] == []


def test_the_plain_world_draws_no_scenes_and_the_error_names_those_that_do():
    assert domains.generating() == ["shapes", "scenes"]
    assert domains.draws_scenes(SHAPES) and not domains.draws_scenes(domains.PLAIN)
    with pytest.raises(UserError, match=r"the plain domain cannot render scenes: .*\(domains that do: shapes, scenes\)"):
        domains.scenes(domains.PLAIN, "render scenes")
    with pytest.raises(UserError, match="the plain domain cannot render"):
        renders_verdicts(domains.PLAIN, 4)


def test_a_scene_is_captioned_with_what_it_shows():
    image, text, key = SHAPES.scene(32, np.random.default_rng(7))
    assert SHAPES.stated(text) == key.as_dict() and image.size == (32, 32)
    assert SHAPES.oracle(image, text).right
    assert SHAPES.stated("a photo of a cat") == {} and domains.PLAIN.stated("a red circle on the left") == {}


def test_renders_verdicts_counts_each_attribute_of_the_domain():
    rates = renders_verdicts(SHAPES, 18, size=32, seed=1)
    assert (rates["count"], rates["size"], rates["seed"]) == (18, 32, 1)
    assert set(rates) - {"count", "size", "seed"} == {*SHAPES.attributes, "all"}
    for attribute in (*SHAPES.attributes, "all"):
        assert sum(rates[attribute].values()) == pytest.approx(1.0)
        assert rates[attribute]["right"] == 1.0  # 18 clean renders: the oracle calls every one right


def test_error_ladders_change_one_two_and_every_attribute_of_the_domain():
    images, texts, n_correct, wrong_attr, (owner, keys) = build_ladders(2, 16, 0, SHAPES)
    assert len(images) == len(keys) == 2 and images[0].size == (16, 16)
    first = [(t, n, a) for t, n, a, i in zip(texts, n_correct, wrong_attr, owner) if i == 0]
    assert [n for _, n, _ in first] == [3, 2, 2, 2, 1, 0]
    assert [a for _, _, a in first] == [None, *SHAPES.attributes, None, None]
    assert SHAPES.stated(first[0][0]) == keys[0].as_dict()
    with pytest.raises(UserError, match="plain domain cannot"):
        build_ladders(2, 16, 0, domains.PLAIN)


def test_oracle_accuracy_refuses_a_folder_whose_domain_has_no_oracle(tmp_path):
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": "a cat"}) + "\n")
    domains.declare(tmp_path, "plain")
    with pytest.raises(UserError, match="the plain domain has no pixel oracle"):
        oracle_accuracy(tmp_path)
    assert oracle_accuracy(tmp_path, "shapes")["n"] == 0  # named explicitly, the shapes oracle reads it


def test_agreement_report_takes_its_attributes_and_margin_from_the_domain():
    row = {"stated": {"size": "big"}, "verdict": {"size": "right"}, "overall": "right",
           "plausible": {"size": ["big"]}, "shape_margin": 0.3, "prob": {"size": 0.9}, "prob_all": 0.9,
           "reading": {"size": "big"}, "debiased": 1.0}
    report = agreement_report([row, row | {"prob": {"size": 0.2}, "prob_all": 0.2, "shape_margin": 0.1}])
    assert set(report) == {"size", "all", "spearman_shape_margin"}
    assert report["size"]["oracle_right"]["value"] == 1.0 and report["size"]["agreement"]["value"] == 1.0
    assert report["spearman_shape_margin"]["n"] == 0  # no margin attribute: nothing to correlate
    with_margin = agreement_report([row, row | {"prob": {"size": 0.2}, "prob_all": 0.2, "shape_margin": 0.1}],
                                   ("size",), "size")
    assert with_margin["spearman_shape_margin"]["n"] == 2


# ---------------------------------------------------------------- data.generate and its old spellings


def test_a_saved_config_with_the_old_shapes_keys_still_loads(tmp_path):
    old = tmp_path / "roundtrip_config.yaml"
    old.write_text(yaml.safe_dump({"data": {"source": "shapes", "shapes_count": 300, "shapes_seed": 4}}))
    cfg = load(GenConfig, old, ["data.shapes_seed=5"])
    assert cfg.data.generate == GenerateConfig(count=300, seed=5)
    save(cfg, tmp_path / "again.yaml")
    stored = yaml.safe_load((tmp_path / "again.yaml").read_text())["data"]
    assert stored["generate"] == {"count": 300, "seed": 5} and "shapes_count" not in stored
    assert load(GenConfig, tmp_path / "again.yaml").data.generate == GenerateConfig(300, 5)


def test_an_old_key_given_beside_its_new_name_is_refused_unless_they_agree(tmp_path):
    both = tmp_path / "both.yaml"
    both.write_text(yaml.safe_dump({"data": {"source": "shapes", "shapes_count": 300, "generate": {"count": 40}}}))
    with pytest.raises(ConfigError, match="data.shapes_count .* and data.generate.count are both given"):
        load(GenConfig, both)
    new = tmp_path / "new.yaml"
    new.write_text(yaml.safe_dump({"data": {"source": "shapes", "generate": {"count": 300}}}))
    cfg = load(GenConfig, new, ["data.shapes_count=40"])  # an override under the old name sets the new one
    assert cfg.data.generate == GenerateConfig(count=40, seed=0)
    assert to_dict(DataConfig())["generate"] == {"count": 2000, "seed": 0}


def test_a_source_naming_a_domain_writes_its_data_from_data_generate(tmp_path):
    cfg = DataConfig(source="shapes", path=str(tmp_path / "data"), resolution=8, generate=GenerateConfig(12, 3))
    assert len(read_records(cfg, all_splits=True)) == 12
    info = json.loads((tmp_path / "data" / "info.json").read_text())
    assert (info["domain"], info["count"], info["size"], info["seed"]) == ("shapes", 12, 8, 3)
    with pytest.raises(ValueError, match="data.source must be folder, coco, hf, shapes or scenes, not 'plain'"):
        read_records(DataConfig(source="plain"))
