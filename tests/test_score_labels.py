"""Label-aware scoring (caption/judge/labels.py): one prompt per class, distractors of other classes only, the judge's
zero-shot accuracy, labels from a real data set, and agreement with `gen evaluate`'s classifier."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import one_error_line
from PIL import Image

from caption.__main__ import main as caption_main
from caption.evaluation.score import score_folder

COLORS = {"red": (220, 40, 40), "green": (40, 190, 60), "blue": (40, 80, 230)}
# Per class two phrasings as first caption; the first is the more common one, so it is the class prompt.
FIRST = {c: [f"a {c} square on the left", f"a {c} square at the top"] for c in COLORS}


def square(path, color: str, seed: int) -> None:
    noise = np.random.default_rng(seed).integers(-20, 21, size=(16, 16, 3))
    Image.fromarray(np.clip(np.array(COLORS[color]) + noise, 0, 255).astype(np.uint8)).save(path)


def real_folder(folder):
    """What `gen prepare` writes: per class 3 test rows (first captions 1:2, the minority one first) and 1 train row."""
    folder.mkdir(parents=True)
    rows = []
    for c, color in enumerate(COLORS):
        for i, (first, split) in enumerate(zip([1, 0, 0, 0], ["test", "test", "test", "train"])):
            name = f"{color}{i}.png"
            square(folder / name, color, 10 * c + i)
            rows.append({"file_name": name, "text": [FIRST[color][first], color], "label": color, "split": split})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def scored(folder):
    return [json.loads(line) for line in (folder / "scores.jsonl").read_text().splitlines()]


def readings(judge, folder, rows, prompts, alpha: float) -> list[int]:
    """The class each image's debiased score ranks first (α = 0: the log-likelihood), from the judge directly."""
    pixels = torch.stack([judge.load(folder / r["file_name"]) for r in rows])
    tokens = judge.encode(pixels)
    c = len(prompts)
    scores = judge.debiased(tokens.repeat_interleave(c, 0), prompts * len(rows), alpha=alpha).view(len(rows), c)
    return scores.argmax(dim=1).tolist()


def test_labelled_rows_rank_one_prompt_per_class(captioner_dir, judge, tmp_path):
    folder = real_folder(tmp_path / "real")
    # α = 1: the tiny judge's debiased and log-likelihood readings differ, so the test sees which one ranks.
    summary = score_folder(captioner_dir, folder, tmp_path / "out", alpha=1.0, k=20, split="test")
    rows = scored(tmp_path / "out")
    labels = summary["labels"]
    assert summary["table"]["images"] == 9  # the test split only
    assert labels["classes"] == 3 and labels["class_prompts"] == {c: FIRST[c][0] for c in sorted(COLORS)}
    classes = sorted(COLORS)
    expected = readings(judge, folder, rows, [FIRST[c][0] for c in classes], alpha=0.0)  # log p (caption/judge/labels.py)
    assert expected != readings(judge, folder, rows, [FIRST[c][0] for c in classes], alpha=1.0)
    assert [r["judge_label"] for r in rows] == [classes[k] for k in expected]
    assert [r["label"] for r in rows] == [c for c in COLORS for _ in range(3)]
    assert labels["judge_accuracy"]["value"] == pytest.approx(np.mean([r["label_rank"] == 0 for r in rows]))
    assert labels["judge_accuracy"]["value"] == labels["by_score"]["logp"] and labels["score"] == "logp"
    assert labels["judge_accuracy"]["low"] <= labels["judge_accuracy"]["value"] <= labels["judge_accuracy"]["high"]
    for c in COLORS:
        mine = [r["label_rank"] == 0 for r in rows if r["label"] == c]
        assert labels["per_class"][c]["value"] == pytest.approx(np.mean(mine)) and labels["per_class"][c]["n"] == 3
    by_prompt = {p: c for c in COLORS for p in FIRST[c]}
    for row in rows:
        # Distractors: the 4 prompts of the two other classes, never the own class's other phrasing.
        assert row["candidates"] == 1 + 4
        assert by_prompt[row["best_distractor"]] != row["label"]
    assert summary["headline"][1]["key"] == "judge_accuracy"
    assert "judge: class accuracy" in (tmp_path / "out" / "report.html").read_text()


def test_labels_from_a_real_set_and_agreement_with_the_classifier(captioner_dir, tmp_path):
    real = real_folder(tmp_path / "real")
    samples = tmp_path / "samples"  # what `gen sample` writes: prompts, no labels
    samples.mkdir()
    plan = [("a red square at the top", "red"), ("Green", "green"), ("a blue square on the left", "blue"),
            ("a purple square", "red")]
    rows = []
    for k, (prompt, drawn) in enumerate(plan):
        square(samples / f"{k:05d}-seed{k}.png", drawn, 100 + k)
        rows.append({"file_name": f"{k:05d}-seed{k}.png", "text": prompt, "seed": k})
    (samples / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    readings = ["red", "blue", "blue"]  # what a classifier read (the purple prompt has no label: not judged)
    (samples / "evaluation.json").write_text(json.dumps({"cas": 0.5, "predictions": [
        {"file_name": r["file_name"], "label": lab, "predicted": p}
        for r, lab, p in zip(rows, ["red", "green", "blue"], readings)]}))

    summary = score_folder(captioner_dir, samples, k=20, labels_from=real)
    got = scored(samples)
    labels = summary["labels"]
    assert [r["label"] for r in got] == ["red", "green", "blue", None]  # "Green" is a caption of the green rows
    assert got[3]["label_rank"] is None and labels["n"] == 3 and labels["unlabelled"] == 1
    assert labels["class_prompts"]["red"] == FIRST["red"][0]  # from the real set, not the samples' own prompts
    assert [r["classifier_label"] for r in got] == readings + [None]
    agree = [r["judge_label"] == p for r, p in zip(got, readings)]
    assert labels["agreement_with_classifier"]["value"] == pytest.approx(np.mean(agree))
    assert labels["agreement_with_classifier"]["n"] == 3
    assert labels["classifier_accuracy"]["value"] == pytest.approx(2 / 3)
    assert [item["key"] for item in summary["headline"]][:3] == ["r_precision@1", "judge_accuracy",
                                                                  "agreement_with_classifier"]
    # The unlabelled prompt keeps the usual distractors: every other prompt (plain: no hard negatives).
    assert got[3]["candidates"] == 4


def test_score_cli_takes_split_labels_and_domain(captioner_dir, tmp_path, capsys):
    real = real_folder(tmp_path / "real")
    args = ["score", str(captioner_dir), str(real), "--split", "train", "--out", str(tmp_path / "o"), "--distractors", "3"]
    assert caption_main(args) == 0
    table = json.loads(capsys.readouterr().out)
    assert table["images"] == 3 and 0 <= table["judge_accuracy"] <= 1
    assert caption_main(["score", str(captioner_dir), str(real), "--domain", "photos", "--out", str(tmp_path / "x")]) == 2
    assert "unknown domain 'photos'" in one_error_line(capsys)
    assert caption_main(["score", str(captioner_dir), str(real), "--split", "val", "--out", str(tmp_path / "y")]) == 2
    assert "of split 'val'" in one_error_line(capsys)
