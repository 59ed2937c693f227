"""report.html opens with the headline numbers and two pictures; the full table is collapsed below them."""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from caption.evaluation.score import score_folder
from caption.judge.calibration import reliability
from caption.report.charts import reliability_diagram, score_histogram
from caption.report.page import write_report
from gen.domains.shapes.world import COLORS, ShapeSpec, render

sys.path.insert(0, str(Path(__file__).parent))
from test_oracle_strict import blob  # noqa: E402

HEADLINE = [
    {"key": "r_precision@1", "label": "judge R@1", "note": "first among distractors", "value": 0.9625,
     "low": 0.9125, "high": 1.0, "n": 80},
    {"key": "auroc_judge_vs_oracle", "label": "judge vs oracle AUROC", "note": "", "value": None, "low": None,
     "high": None, "n": 0},
    {"key": "skipped", "label": "skipped", "note": "rows not scored", "value": 3},
]


def rows() -> list[dict]:
    out = []
    for verdict, score in [("right", 2.0), ("right", 1.5), ("wrong", -1.0), ("unsure", 0.1)]:
        out.append({"image": Image.new("RGB", (8, 8), (200, 30, 30)), "prompt": "a red circle on the left",
                    "token_logprobs": [["a", -0.1], [" red", -2.0]], "caption": "a red circle", "score": score,
                    "rank": 0, "passed": score > 0, "oracle_overall": verdict,
                    "oracle": {"color": "right", "shape": verdict, "position": "right"}})
    return out


def test_headline_comes_first_with_intervals_and_two_pictures(tmp_path):
    summary = {"headline": HEADLINE, "means": {"bleu4": {"mean": 0.5}},
               "calibration": {"reliability": reliability([0.1, 0.9, 0.95, 0.5], [False, True, True, False])}}
    page = write_report(tmp_path / "r.html", rows(), summary).read_text(encoding="utf-8")
    headline, cards = page.index('<section class="headline">'), page.index('<div class="card ')
    details = page.index('<details class="all">')
    assert headline < details < cards
    top = page[headline:details]
    assert "0.963" in top and "95% CI [0.912, 1.000] · n = 80" in top and "judge R@1" in top
    assert ">–<" in top  # an undefined AUROC shows as a dash, with no interval
    assert top.count("<svg") == 2 and "right (2)" in top and "wrong (1)" in top and "unsure (1)" in top
    assert "means.bleu4.mean" in page[details:cards] and "headline" not in page[details:cards]
    assert "shape ?" in page and "shape ✓" in page and "shape ✗" in page
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", page)  # the SVG namespace is a name, not a fetch


def test_report_without_headline_or_oracle_keeps_its_table_and_cards(tmp_path):
    plain = [dict(r, oracle_overall=None, oracle=None) for r in rows()]
    page = write_report(tmp_path / "r.html", plain, {"n": 4}).read_text(encoding="utf-8")
    assert '<section class="headline">' not in page and "<details" in page and page.count('class="card ') == 4


def test_score_histogram_counts_each_group():
    svg = score_histogram({"right": [1.0, 2.0, 2.1], "wrong": [-1.0]}, "t", "x", bins=4)
    assert svg.startswith("<svg") and svg.count("<polyline") == 2
    assert "right (3)" in svg and "wrong (1)" in svg
    assert score_histogram({"right": []}, "t", "x") == ""
    assert score_histogram({"all images": [float("nan"), 1.0]}, "t", "x").count("<polyline") == 1


def test_reliability_diagram_draws_one_bar_per_non_empty_bin():
    table = reliability([0.05, 0.07, 0.55, 0.95], [False, False, True, True])
    svg = reliability_diagram(table, "t")
    assert svg.count("<rect") == 3 and "2 images, mean p 0.06, right 0.00" in svg
    assert reliability_diagram(reliability([], []), "t") == ""


def test_score_folder_headline_on_right_wrong_and_unsure_images(captioner_dir, tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    made = [(render([ShapeSpec("red", "circle", "left")], 32, np.random.default_rng(0)), "a red circle on the left"),
            (render([ShapeSpec("blue", "square", "top")], 32, np.random.default_rng(1)), "a blue square at the bottom"),
            (Image.fromarray(blob(power=3.2, color=COLORS["red"])), "a red circle in the center")]
    for i, (image, _) in enumerate(made):
        image.save(folder / f"{i}.png")
    (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"{i}.png", "text": t}) + "\n"
                                                   for i, (_, t) in enumerate(made)))
    summary = score_folder(captioner_dir, folder, k=5, domain="shapes")
    scored = [json.loads(line) for line in (folder / "scores.jsonl").read_text().splitlines()]
    assert [r["oracle_overall"] for r in scored] == ["right", "wrong", "unsure"]
    assert [r["oracle_pass"] for r in scored] == [True, False, None]
    assert scored[2]["oracle"]["shape"] == "unsure" and abs(scored[2]["shape_margin"]) < 0.05
    assert all(0 <= r["p_right"] <= 1 and set(r["p_attributes"]) == {"color", "shape", "position"} for r in scored)
    head = {item["key"]: item for item in summary["headline"]}
    assert list(head) == ["r_precision@1", "oracle_all", "oracle_unsure", "auroc_judge_vs_oracle", "ece", "skipped"]
    assert head["oracle_all"]["value"] == summary["oracle"]["all"] == 1 / 3
    assert head["oracle_unsure"]["value"] == summary["oracle_unsure"]["all"] == 1 / 3
    assert head["auroc_judge_vs_oracle"]["n"] == 2 and head["skipped"]["value"] == 0
    assert summary["oracle_unsure"]["shape"] == 1 / 3 and summary["oracle"]["shape"] == 2 / 3  # the square is one
    assert sum(b["n"] for b in summary["calibration"]["reliability"]) == 2
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert page.index("oracle: all right") < page.index('<div class="card ')
    assert "right (1)" in page and "wrong (1)" in page and "unsure (1)" in page


def test_score_folder_headline_without_an_oracle(captioner_dir, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    texts = ["a photo of a field", "a dog on a beach"]
    for i in range(len(texts)):
        Image.new("RGB", (16, 16), (90, 120 + 50 * i, 60)).save(folder / f"{i}.png")
    (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"{i}.png", "text": t}) + "\n"
                                                   for i, t in enumerate(texts)))
    summary = score_folder(captioner_dir, folder, k=1)
    assert [item["key"] for item in summary["headline"]] == ["r_precision@1", "skipped"]
    assert summary["domain"] == "plain" and "oracle" not in summary and "calibration" not in summary
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "judge R@1" in page and "oracle: all right" not in page and "all images (2)" in page
