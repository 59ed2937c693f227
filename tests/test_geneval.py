"""`gen geneval`: per-task strict accuracy, the unseen view, bootstrap intervals, and the command end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest

from gen import domains
from gen.__main__ import main
from gen.core.errors import UserError
from gen.evaluate.geneval import OVERALL, judge, markdown, summarise, task_domain

TASKS = ("single_object", "counting")


def rows(task, verdicts, unseen=False):
    return {"prompt": "p", "task": task, "unseen": unseen, "verdicts": verdicts}


def test_summary_counts_unsure_as_wrong_and_averages_tasks_not_images():
    judged = [rows("single_object", ["right", "right"]), rows("single_object", ["right", "unsure"]),
              rows("counting", ["wrong", "right"], unseen=True), rows("counting", ["right", "right"])]
    summary = summarise(judged, TASKS)
    assert summary["all"]["single_object"]["accuracy"] == pytest.approx(0.75)
    assert summary["all"]["single_object"]["unsure"] == pytest.approx(0.25)
    assert summary["all"]["counting"]["accuracy"] == pytest.approx(0.75)
    # The unseen view keeps only the held-out prompts of a task that has some, and every prompt of one that has none.
    assert summary["unseen"]["counting"]["accuracy"] == pytest.approx(0.5)
    assert summary["unseen"]["counting"]["prompts"] == 1
    assert summary["unseen"]["single_object"]["prompts"] == 2
    assert summary["unseen"][OVERALL]["accuracy"] == pytest.approx((0.75 + 0.5) / 2)


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_prompts():
    rng = np.random.default_rng(0)
    few = [rows("counting", [str(x) for x in np.where(rng.random(2) < 0.6, "right", "wrong")]) for _ in range(10)]
    many = [rows("counting", [str(x) for x in np.where(rng.random(2) < 0.6, "right", "wrong")]) for _ in range(400)]
    small, large = (summarise(j, ("counting",))["all"]["counting"] for j in (few, many))
    for cell in (small, large):
        assert cell["interval"][0] <= cell["accuracy"] <= cell["interval"][1]
    assert large["interval"][1] - large["interval"][0] < small["interval"][1] - small["interval"][0]


def test_the_oracle_judges_renders_right_and_swapped_prompts_wrong():
    scenes = task_domain()
    image = scenes.render_prompt("a red circle to the left of a blue square", 48, np.random.default_rng(3))
    good = {"prompt": "a red circle to the left of a blue square", "task": "position"}
    swapped = {"prompt": "a blue circle to the left of a red square", "task": "position"}
    flipped = {"prompt": "a red circle to the right of a blue square", "task": "position"}
    verdicts = [r["verdicts"][0] for r in judge(scenes, [good, swapped, flipped], [[image]] * 3)]
    assert verdicts == ["right", "wrong", "wrong"]


def test_a_domain_without_tasks_is_refused():
    with pytest.raises(UserError, match="poses no GenEval tasks"):
        task_domain("shapes")
    assert not getattr(domains.get("plain"), "tasks", ())


def test_renders_command_writes_tables_and_grids(tmp_path, capsys):
    out = tmp_path / "g"
    assert main(["geneval", "--renders", "--limit", "2", "--images-per-prompt", "2", "--out", str(out)]) == 0
    report = json.loads((out / "geneval.json").read_text())
    assert report["summary"]["all"][OVERALL]["accuracy"] == 1.0
    assert len(report["rows"]) == 12 and all(len(r["verdicts"]) == 2 for r in report["rows"])
    assert "| colour attribution |" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("grid-*.png")) == sorted(f"grid-{t}.png" for t in task_domain().tasks)
    # A second run refuses to replace the first without --overwrite.
    assert main(["geneval", "--renders", "--limit", "1", "--out", str(out)]) != 0


def test_markdown_names_tasks_and_marks_those_with_nothing_held_out():
    judged = [rows("single_object", ["right"]), rows("counting", ["right"], unseen=True)]
    table = markdown(summarise(judged, TASKS), {"single_object": "single object"}, {"counting": 0.7})
    assert "| single object (none held out) |" in table and "≥ 0.70" in table
