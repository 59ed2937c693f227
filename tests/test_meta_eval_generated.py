"""The judge against the strict oracle on generated images: statistics by hand, then the command on tiny models."""
from __future__ import annotations

import json

import numpy as np
import pytest

from gen import domains

from caption.__main__ import main as caption_main
from caption.evaluation.meta_eval_generated import Level, best_of_n, meta_eval_generated
from caption.evaluation.metrics import bootstrap_stat
from caption.evaluation.oracle_agreement import agreement_report
from caption.judge.calibration import expected_calibration_error, reliability
from gen.domains.shapes.world import check_strict
from gen.generator.checkpoint_pipeline import load_generator

# ---------------------------------------------------------------- calibration and bootstrap


def test_reliability_and_ece_by_hand():
    probs = [0.05, 0.15, 0.95, 0.9, 1.0, 0.55]
    right = [False, False, True, False, True, True]
    table = reliability(probs, right, bins=10)
    assert [row["n"] for row in table] == [1, 1, 0, 0, 0, 1, 0, 0, 0, 3]
    assert table[9]["mean_prob"] == pytest.approx(0.95) and table[9]["right_rate"] == pytest.approx(2 / 3)
    assert table[2]["mean_prob"] is None
    # |0 - .05| + |0 - .15| + |1 - .55| + 3 |2/3 - .95|, over 6
    assert expected_calibration_error(probs, right) == pytest.approx((0.05 + 0.15 + 0.45 + 3 * (0.95 - 2 / 3)) / 6)
    assert expected_calibration_error([1.0, 0.0], [True, False]) == 0.0
    assert expected_calibration_error([], []) is None


def test_bootstrap_stat_brackets_the_value_and_skips_undefined_draws():
    x = np.arange(20, dtype=float)
    found = bootstrap_stat(lambda i: float(x[i].mean()), 20)
    assert found["value"] == pytest.approx(9.5) and found["low"] < 9.5 < found["high"] and found["n"] == 20
    assert bootstrap_stat(lambda i: None, 5) == {"value": None, "low": None, "high": None, "n": 5}
    assert bootstrap_stat(lambda i: 1.0, 0)["value"] is None


# ---------------------------------------------------------------- the judge against the oracle


def row(verdict: dict, prob: dict, reading: dict, margin: float | None = 0.1, debiased: float = 0.0) -> dict:
    stated = {"color": "red", "shape": "circle", "position": "left"}
    overall = "wrong" if "wrong" in verdict.values() else "unsure" if "unsure" in verdict.values() else "right"
    plausible = {a: [stated[a]] if v == "right" else ["blue", "square", "top"][i:i + 1] if v == "wrong"
                 else [stated[a], ["blue", "square", "top"][i]] for i, (a, v) in enumerate(verdict.items())}
    return {"stated": stated, "verdict": verdict, "overall": overall, "plausible": plausible, "shape_margin": margin,
            "prob": prob, "prob_all": float(np.prod(list(prob.values()))), "reading": reading, "debiased": debiased}


R = {"color": "red", "shape": "circle", "position": "left"}


def test_agreement_report_by_hand():
    rows = [
        row(dict(color="right", shape="right", position="right"), dict(color=.9, shape=.8, position=.9), R, 0.2, 3),
        row(dict(color="right", shape="wrong", position="right"), dict(color=.9, shape=.3, position=.9),
            R | {"shape": "square"}, -0.2, 1),
        row(dict(color="wrong", shape="right", position="right"), dict(color=.2, shape=.7, position=.8),
            R | {"color": "blue"}, 0.15, 0),
        row(dict(color="right", shape="unsure", position="right"), dict(color=.8, shape=.5, position=.9), R, 0.0, 2),
        row(dict(color="right", shape="wrong", position="right"), dict(color=.9, shape=.6, position=.9), R, -0.1, 2),
    ]
    report = agreement_report(rows, margin_attribute="shape")
    shape = report["shape"]
    assert shape["images"] == 5 and shape["unsure_rate"]["value"] == pytest.approx(0.2)
    assert shape["oracle_right"]["value"] == pytest.approx(0.4)
    # Sure images: right (.8, .7), wrong (.3, .6): 4 pairs, all ordered → AUROC 1.
    assert shape["auroc"]["value"] == pytest.approx(1.0) and shape["auroc"]["n"] == 4
    # The judge reads circle on the last wrong image: 3 of 4 agree.
    assert shape["agreement"]["value"] == pytest.approx(0.75)
    assert shape["ece"]["value"] == pytest.approx(expected_calibration_error([.8, .3, .7, .6], [1, 0, 1, 0]))
    assert report["color"]["auroc"]["value"] == pytest.approx(1.0)
    assert report["position"]["auroc"]["value"] is None  # all right: no negatives
    everything = report["all"]
    assert everything["oracle_right"]["value"] == pytest.approx(0.2) and everything["unsure_rate"]["value"] == 0.2
    assert everything["auroc_debiased"]["value"] == pytest.approx(1.0)  # 3 beats 1, 0, 2
    # Ranks of shape probability (.8 .3 .7 .5 .6): 5 1 4 2 3; of margin (.2 -.2 .15 0 -.1): 5 1 4 3 2.
    assert report["spearman_shape_margin"]["value"] == pytest.approx(1 - 6 * 2 / (5 * 24))


def test_best_of_n_by_hand():
    probs = [0.1, 0.9, 0.2, 0.3, 0.8, 0.7, 0.6, 0.5]
    right = [False, True, False, False, True, True, False, False]
    rows = [{"prob_all": p, "debiased": -p, "overall": "right" if r else "wrong"} for p, r in zip(probs, right)]
    table = best_of_n(rows, per_prompt=4)
    assert set(table) == {"1", "2", "4"}
    assert table["1"]["judge_prob"]["value"] == pytest.approx(3 / 8) == table["1"]["random"]["value"]
    # Prompt 1 (0.1 0.9 0.2 0.3; right: 0.9): prob keeps it in the 3 of 6 pairs that hold it; debiased (−p)
    # keeps it in none. Prompt 2 (0.8 0.7 0.6 0.5; right: 0.8, 0.7): prob keeps a right one in all 5 pairs
    # that hold one; debiased in 1 (the pair of both).
    assert table["2"]["judge_prob"]["value"] == pytest.approx((3 / 6 + 5 / 6) / 2)
    assert table["2"]["judge_debiased"]["value"] == pytest.approx((0 + 1 / 6) / 2)
    assert table["2"]["random"]["value"] == pytest.approx((1 / 4 + 2 / 4) / 2) and table["2"]["random"]["n"] == 2
    assert table["2"]["oracle_ceiling"]["value"] == pytest.approx((3 / 6 + 5 / 6) / 2)
    assert table["2"]["lift_judge_prob"]["value"] == pytest.approx((3 / 6 + 5 / 6) / 2 - 3 / 8)
    assert table["4"]["judge_prob"]["value"] == pytest.approx(1.0)


def test_best_of_n_ties_are_a_random_pick():
    right = [True, False, False, True, False, False]
    rows = [{"prob_all": 0.5, "debiased": float("nan"), "overall": "right" if r else "wrong"} for r in right]
    table = best_of_n(rows, per_prompt=6, counts=(2, 4))
    for n in ("2", "4"):
        assert table[n]["judge_prob"]["value"] == pytest.approx(2 / 6) == table[n]["judge_debiased"]["value"]
        assert table[n]["lift_judge_prob"]["value"] == pytest.approx(0.0)


# ---------------------------------------------------------------- generators of several qualities


def test_the_last_checkpoints_ema_is_the_exported_model(gen_run):
    model = load_generator(gen_run / "model", device="cpu")
    last = sorted((gen_run / "checkpoints").iterdir())[-1]
    ema = load_generator(gen_run / "model", last, device="cpu")
    raw = load_generator(gen_run / "model", last, ema=False, device="cpu")
    for a, b in zip(model.unet.parameters(), ema.unet.parameters()):
        assert (a == b).all()
    assert any((a != c).any() for a, c in zip(model.unet.parameters(), raw.unet.parameters()))
    with pytest.raises(FileNotFoundError, match="not a checkpoint folder"):
        load_generator(gen_run / "model", gen_run)
    assert Level(last, 3).label == f"{last.name}@3" and Level(None, 20).label == "model@20"


def test_meta_eval_generated_on_tiny_models(gen_run, captioner_dir, tmp_path):
    first = sorted((gen_run / "checkpoints").iterdir())[0]
    prompts = ["a red circle on the left", "a blue square at the top", "a green triangle in the center"]
    report = meta_eval_generated(captioner_dir, gen_run / "model", prompts, [first], steps=(1, 2), per_prompt=2,
                                 seed=3, out=tmp_path / "me.json", device="cpu")
    assert [lv["label"] for lv in report["levels"]] == [f"{first.name}@1", f"{first.name}@2", "model@1", "model@2"]
    assert len(report["images"]) == 4 * 6 and all(lv["images"] == 6 for lv in report["levels"])
    first_level = report["images"][:6]
    assert [r["seed"] for r in first_level] == [3, 4, 5, 6, 7, 8]
    assert [r["prompt"] for r in first_level] == [p for p in prompts for _ in range(2)]
    for r in report["images"]:
        assert 0 <= r["prob_all"] <= 1 and set(r["verdict"]) == {"color", "shape", "position"}
    j = report["judge_vs_oracle"]
    assert j["all"]["images"] == 24 and set(j) == {"color", "shape", "position", "all", "spearman_shape_margin"}
    assert set(report["best_of_n"][f"{first.name}@1"]) == {"1", "2"}
    stored = json.loads((tmp_path / "me.json").read_text())
    assert stored["levels"] == report["levels"]


def test_meta_eval_generated_cli(gen_run, captioner_dir, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle on the left\na blue square at the top\n")
    assert caption_main(["meta-eval", str(captioner_dir), "--generated", str(gen_run / "model"), "--steps", "2",
                         "--num-per-prompt", "1", "--prompts", str(prompts), "--out", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "| model@2 |" in out and "Spearman" in out
    assert "The judge's probabilities average over each image alone." in out  # the tiny captioner has no warps
    stored = json.loads((tmp_path / "r.json").read_text())
    assert stored["prompts"] == 2 and stored["views"] == {"count": 0, "warp": 0.0}
    assert caption_main(["meta-eval", str(captioner_dir), "--generated", str(gen_run / "model"),
                         "--steps", "two"]) == 2


def test_verdicts_in_the_report_are_the_oracles(gen_run, captioner_dir):
    from caption.evaluation.meta_eval_generated import judged_rows
    from caption.judge.judge import Judge

    pipe = load_generator(gen_run / "model", device="cpu")
    images = pipe(["a red circle on the left"] * 2, num_inference_steps=2).images
    rows = judged_rows(Judge(captioner_dir, device="cpu"), images, ["a red circle on the left"] * 2, domains.SHAPES)
    for image, r in zip(images, rows):
        verdict = check_strict(image, "a red circle on the left")
        assert r["verdict"] == verdict.attributes and r["shape_margin"] == verdict.shape_margin


def test_sample_folders_are_levels_of_their_own(captioner_dir, tmp_path):
    from gen.domains.shapes.world import ShapeSpec, render

    folder = tmp_path / "made-earlier"
    folder.mkdir()
    specs = [ShapeSpec("red", "circle", "left")] * 2 + [ShapeSpec("blue", "square", "top")] * 2
    rows = []
    for i, spec in enumerate(specs):
        render([spec], 32, np.random.default_rng(i)).save(folder / f"{i}.png")
        rows.append({"file_name": f"{i}.png", "text": f"a {spec.color} {spec.shape} on the left", "seed": 10 + i})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = meta_eval_generated(captioner_dir, None, sample_dirs=[folder], device="cpu")
    (level,) = report["levels"]
    assert level["label"] == "made-earlier" and level["folder"] == str(folder) and level["images"] == 4
    assert level["oracle_right"]["position"] == 0.5 and level["oracle_right"]["all"] == 0.5
    assert [r["seed"] for r in report["images"]] == [10, 11, 12, 13]
    assert set(report["best_of_n"]["made-earlier"]) == {"1", "2"}  # two images per prompt in a row
    assert caption_main(["meta-eval", str(captioner_dir), "--samples", str(folder), "--checkpoints", "x"]) == 2
