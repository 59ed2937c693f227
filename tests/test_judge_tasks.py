"""The judge per GenEval task on the scenes domain: statistics by hand, then the judge and the command on a tiny
captioner trained on scenes."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from caption.__main__ import main as caption_main
from caption.evaluation.meta_eval_generated import judged_rows
from caption.judge.negatives import ANY_KIND
from caption.evaluation.tasks import (
    OVERALL,
    judge_scorer,
    markdown_table,
    oracle_scorer,
    r_precision,
    rank_renders,
    renders_per_task,
    table,
    task_agreement,
    task_best_of_n,
    task_prompts,
)
from caption.judge.calibration import expected_calibration_error
from caption.judge.judge import Judge
from caption.report.page import write_report
from gen import domains
from gen.domains.scenes import MultiObjectScenes, grammar, world

SCENES = domains.get("scenes")
TASKS = SCENES.tasks
CAPTION_TINY = "configs/caption/tiny.yaml"


class ScenesWithoutKinds(MultiObjectScenes):
    """The scenes domain as a domain that names no kinds of hard negative would be."""

    hard_negative_kinds = None


KINDED, UNKINDED = SCENES, ScenesWithoutKinds()


@pytest.fixture(scope="module")
def scenes_captioner(tmp_path_factory):
    """configs/caption/tiny.yaml trained on 256 scenes for 20 steps: a real, untrained-looking judge."""
    from caption.train import train

    run = tmp_path_factory.mktemp("scenes_caption")
    return train(CAPTION_TINY, out=run, overrides=["data.source=scenes", "model.decoder.max_length=32",
                                                    "train.max_steps=20"])


@pytest.fixture(scope="module")
def renders():
    """Three clean 48 px renders of each task, the size the oracle is built for."""
    return renders_per_task(KINDED, 3, 48, seed=5)


# ---------------------------------------------------------------- R@1 among hard negatives on clean renders


def test_renders_come_per_task_in_task_order(renders):
    assert [task for _, _, task in renders] == [t for t in TASKS for _ in range(3)]
    assert all(SCENES.task(prompt) == task for _, prompt, task in renders)
    assert all(image.size == (48, 48) for image, _, _ in renders)


def test_the_oracle_as_scorer_ranks_every_prompt_first(renders):
    found = r_precision(rank_renders(oracle_scorer(KINDED), renders, KINDED), TASKS)
    for task in (*TASKS, OVERALL):
        assert found[task]["r@1"]["value"] == 1.0
    assert found[OVERALL]["renders"] == 18 and found["single_object"]["renders"] == 3
    # "a circle": the two other shapes; a position prompt: colours swapped, the converse relation, the two
    # other relations, 6 other colours for each object and the one other shape for each.
    assert found["single_object"]["negatives"] == 2 and found["position"]["negatives"] == 1 + 1 + 2 + 12 + 2
    kinds = found[OVERALL]["by_kind"]
    assert set(kinds) == {"swap colours", "flip relation", "change relation", "change count", "change colour",
                          "change shape"}
    assert all(k["value"] == 1.0 for k in kinds.values())
    assert set(found["counting"]["by_kind"]) == {"change count", "change colour", "change shape"}


def test_a_scorer_blind_to_one_kind_misses_it_and_only_it(renders):
    oracle = oracle_scorer(KINDED)

    def blind_to_flips(images, texts):  # the oracle, except that the converse relation scores as high as the truth
        scores = oracle(images, texts)
        for own, s in zip(texts, scores):
            kinds = dict((text, kind) for kind, text in KINDED.hard_negative_kinds(own[0]))
            s[[j for j, t in enumerate(own) if kinds.get(t) == "flip relation"]] = 1.0
        return scores

    ranked = rank_renders(blind_to_flips, renders, KINDED)
    found = r_precision(ranked, TASKS)
    assert found["position"]["r@1"]["value"] == 0.0  # a tie is a miss
    assert [found[t]["r@1"]["value"] for t in TASKS if t != "position"] == [1.0] * 5
    assert found[OVERALL]["r@1"]["value"] == pytest.approx(15 / 18)
    assert found["position"]["by_kind"]["flip relation"]["value"] == 0.0
    assert found["position"]["by_kind"]["change relation"]["value"] == 1.0
    assert found["position"]["by_kind"]["swap colours"]["value"] == 1.0
    flipped = [r for r in ranked if r["task"] == "position"]
    assert all(r["rank"] == 1 and r["best_kind"] == "flip relation" and r["margin"] == 0.0 for r in flipped)


def test_a_constant_scorer_never_ranks_first_and_plain_negatives_have_one_kind(renders):
    constant = lambda images, texts: [np.zeros(len(own)) for own in texts]  # noqa: E731
    found = r_precision(rank_renders(constant, renders, UNKINDED), TASKS)
    assert all(found[t]["r@1"]["value"] == 0.0 for t in (*TASKS, OVERALL))
    assert set(found[OVERALL]["by_kind"]) == {ANY_KIND}  # the domain names no kinds: one for all


def test_task_prompts_are_spread_over_each_task():
    picked = task_prompts(SCENES, 3)
    assert [SCENES.task(p) for p in picked] == [t for t in TASKS for _ in range(3)]
    assert len(set(picked)) == 18


# ---------------------------------------------------------------- the judge against the oracle, per task


def rows_of(task: str, probs, verdicts, debiased=None) -> list[dict]:
    debiased = probs if debiased is None else debiased
    return [{"task": task, "prob_all": p, "overall": v, "debiased": d} for p, v, d in zip(probs, verdicts, debiased)]


def test_task_agreement_by_hand():
    rows = (rows_of("a", [0.9, 0.8, 0.3, 0.2, float("nan")], ["right", "right", "wrong", "unsure", "right"])
            + rows_of("b", [0.5] * 4, ["right", "wrong", "right", "wrong"])
            + rows_of("c", [0.1, 0.9], ["right", "wrong"], debiased=[2.0, 1.0])
            + rows_of("d", [0.9, 0.1], ["unsure", "right"]))
    found = task_agreement(rows, ["a", "b", "c", "d"])
    a = found["a"]
    assert a["images"] == 4  # the row without a probability is left out
    assert a["auroc"]["value"] == 1.0 and a["auroc_sure"]["value"] == 1.0
    assert a["oracle_right"]["value"] == 0.5 and a["unsure_rate"] == 0.25
    # Bins 9, 8, 3, 2 with one image each: |1 − .9| + |1 − .8| + |0 − .3| + |0 − .2|, over 4.
    assert a["ece"]["value"] == pytest.approx((0.1 + 0.2 + 0.3 + 0.2) / 4)
    assert a["ece"]["value"] == pytest.approx(expected_calibration_error([.9, .8, .3, .2], [1, 1, 0, 0]))
    assert found["b"]["auroc"]["value"] == 0.5  # a constant score
    assert found["c"]["auroc"]["value"] == 0.0 and found["c"]["auroc_debiased"]["value"] == 1.0
    # Unsure counts as not right: the unsure image scored above the right one.
    assert found["d"]["auroc"]["value"] == 0.0 and found["d"]["auroc_sure"]["value"] is None
    assert found[OVERALL]["images"] == 12


def test_task_best_of_n_by_hand():
    right = lambda flags: ["right" if f else "wrong" for f in flags]  # noqa: E731
    rows = (rows_of("a", [0.1, 0.9, 0.2, 0.3], right([0, 1, 0, 0]))
            + rows_of("b", [0.8, 0.7, 0.6, 0.5], right([1, 1, 0, 0])))
    found = task_best_of_n([(rows, 4)], ["a", "b"])
    assert set(found) == {"1", "2", "4"}
    # Task a: the judge keeps the one right image in the 3 of 6 pairs that hold it; task b: a right one in the 5 of
    # 6 pairs that hold one.
    assert found["2"]["a"]["judge_prob"]["value"] == pytest.approx(3 / 6)
    assert found["2"]["b"]["judge_prob"]["value"] == pytest.approx(5 / 6)
    assert found["2"]["a"]["random"]["value"] == 0.25 and found["2"]["b"]["random"]["value"] == 0.5
    overall = found["2"][OVERALL]
    assert overall["judge_prob"]["value"] == pytest.approx((3 / 6 + 5 / 6) / 2)
    assert overall["random"]["value"] == pytest.approx(0.375)
    assert overall["lift_judge_prob"]["value"] == pytest.approx((3 / 6 - 1 / 4 + 5 / 6 - 1 / 2) / 2)
    assert overall["judge_prob"]["low"] <= overall["judge_prob"]["value"] <= overall["judge_prob"]["high"]
    assert found["4"]["a"]["judge_prob"]["value"] == 1.0 == found["4"]["b"]["judge_prob"]["value"]
    # A second level with two images per prompt adds its groups to N ≤ 2 only: (.1 .9) keeps the right one,
    # (.2 .3) has none; (.8 .7) both right, (.6 .5) none.
    both = task_best_of_n([(rows, 4), (rows, 2)], ["a", "b"])
    assert both["4"]["a"]["judge_prob"]["n"] == 1 and both["2"]["a"]["judge_prob"]["n"] == 3
    assert both["2"]["a"]["judge_prob"]["value"] == pytest.approx((3 / 6 + 1 + 0) / 3)
    assert both["2"]["b"]["judge_prob"]["value"] == pytest.approx((5 / 6 + 1 + 0) / 3)


def test_the_table_and_the_report_have_a_row_per_task(renders, tmp_path):
    clean = r_precision(rank_renders(oracle_scorer(KINDED), renders, KINDED), TASKS)
    rows = [r for t in TASKS for r in rows_of(t, [0.9, 0.2, 0.6, 0.1], ["right", "wrong", "wrong", "wrong"])]
    best = task_best_of_n([(rows, 4)], TASKS)
    found = table(clean, task_agreement(rows, TASKS), best, TASKS, wanted=3, names=SCENES.task_names)
    assert [r["task"] for r in found] == [SCENES.task_names[t] for t in TASKS] + [OVERALL]
    assert list(found[0]) == ["task", "renders", "R@1 hard negatives", "images", "oracle right", "AUROC", "ECE",
                              "best-of-2 judge", "best-of-2 random", "lift"]  # the largest N up to 3
    assert all(r["renders"] == 3 and r["R@1 hard negatives"] == 1.0 and r["AUROC"] == 1.0 for r in found[:-1])
    assert found[-1]["renders"] == 18 and found[-1]["images"] == 24
    # Best of 2 keeps the right image in 3 of the 6 pairs; a random pick is right 1 time in 4.
    assert found[0]["best-of-2 judge"] == pytest.approx(0.5) and found[0]["lift"] == pytest.approx(0.25)
    lines = markdown_table(found).splitlines()
    assert len(lines) == 2 + len(TASKS) + 1 and lines[2].startswith("| single object | 3 | 1.000 |")
    assert [r["task"] for r in table(None, None, None, TASKS)] == [*TASKS, OVERALL]  # nothing measured: names only
    page = write_report(tmp_path / "r.html", [], {"task_table": found}).read_text()
    assert page.count("<tr>") == 1 + len(TASKS) + 1 and "<th>colour attribution</th>" in page


# ---------------------------------------------------------------- the judge itself, on a tiny captioner


def test_the_judges_probability_is_its_softmax_over_the_prompt_and_its_negatives(scenes_captioner, renders):
    judge = Judge(scenes_captioner, device="cpu")
    images, prompts = [renders[9][0], renders[12][0]], [renders[9][1], renders[12][1]]  # counting, position
    rows = judged_rows(judge, images, prompts, SCENES)
    for image, prompt, row in zip(images, prompts, rows):
        texts = [prompt, *SCENES.hard_negatives(prompt)]
        tokens = judge.encode(judge.pil_to_pixels(image)[None]).repeat(len(texts), 1, 1)
        scores = judge.debiased(tokens, texts)
        assert row["prob_all"] == pytest.approx(float(torch.softmax(scores, 0)[0]), rel=1e-5)
        assert row["debiased"] == pytest.approx(float(scores[0]), rel=1e-5)
        assert row["judge_reads"] == texts[int(scores.argmax())]
        assert row["task"] == SCENES.task(prompt) and row["verdict"] == {row["task"]: "right"}
    ranked = rank_renders(judge_scorer(judge, batch=2), renders[9:13], SCENES)
    texts = [renders[9][1], *SCENES.hard_negatives(renders[9][1])]
    tokens = judge.encode(judge.pil_to_pixels(renders[9][0])[None]).repeat(len(texts), 1, 1)
    scores = judge.debiased(tokens, texts).numpy()
    assert ranked[0]["rank"] == int((scores[1:] >= scores[0]).sum()) and ranked[0]["hit"] == (ranked[0]["rank"] == 0)
    assert ranked[0]["margin"] == pytest.approx(float(scores[0] - scores[1:].max()), rel=1e-4, abs=1e-4)


def write_samples(folder, prompts) -> None:
    """Four 48 px images per prompt, as `gen sample` lays them out: two renders of the prompt, then two of its
    first hard negative (so the strict oracle calls two right and two wrong)."""
    folder.mkdir()
    rows = []
    for i, prompt in enumerate(prompts):
        for k in range(4):
            shown = prompt if k < 2 else SCENES.hard_negatives(prompt)[0]
            image = world.render(world.things_for(grammar.parse(shown), np.random.default_rng([i, k])), 48)
            image.save(folder / f"{i:03d}-{k}.png")
            rows.append({"file_name": f"{i:03d}-{k}.png", "text": prompt, "seed": k})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    domains.declare(folder, "scenes")


def test_geneval_command_on_a_samples_folder(scenes_captioner, tmp_path, capsys):
    from tests.conftest import one_error_line

    samples = tmp_path / "samples"
    write_samples(samples, task_prompts(SCENES, 1))
    out = tmp_path / "judge"
    argv = ["geneval", str(scenes_captioner), "--samples", str(samples), "--renders", "2", "--out", str(out),
            "--device", "cpu"]
    assert caption_main(argv) == 0
    printed = capsys.readouterr().out
    for name in SCENES.task_names.values():
        assert f"| {name} | 2 |" in printed
    stored = json.loads((out / "judge.json").read_text())
    rows = {r["task"]: r for r in stored["table"]}
    assert set(rows) == {*SCENES.task_names.values(), OVERALL}
    for name in SCENES.task_names.values():
        row = rows[name]
        assert row["images"] == 4 and row["oracle right"] == 0.5 and row["best-of-4 random"] == 0.5
        assert 0.0 <= row["R@1 hard negatives"] <= 1.0 and 0.0 <= row["AUROC"] <= 1.0
        assert row["best-of-4 judge"] in (0.0, 0.5, 1.0)  # one prompt of four images: the pick is right or not
    assert len(stored["clean"]["renders"]) == 12 and stored["generated"]["levels"][0]["images"] == 24
    page = (out / "report.html").read_text()
    assert all(f"<th>{name}</th>" in page for name in SCENES.task_names.values())
    assert caption_main(argv) == 2 and "already exist" in one_error_line(capsys)
    assert caption_main([*argv[:-4], "--out", str(tmp_path / "x"), "--domain", "shapes"]) == 2
    assert "poses no GenEval tasks" in one_error_line(capsys)
    assert caption_main(["meta-eval", str(scenes_captioner), "--samples", str(samples)]) == 0
    printed = capsys.readouterr().out
    assert "| level | all | unsure (all) |" in printed and "Per task" in printed
    assert all(f"| {task} | 4 | 0.500 |" in printed for task in TASKS)


@pytest.mark.timeout(300)
def test_levels_without_steps_sample_with_the_models_own(gen_run, captioner_dir):
    from caption.evaluation.meta_eval_generated import meta_eval_generated

    report = meta_eval_generated(captioner_dir, gen_run / "model", ["a red circle on the left"], steps=(None,),
                                 per_prompt=1, device="cpu", domain="shapes")
    (level,) = report["levels"]
    assert level["steps"] == 4 and level["label"] == "model@4"  # configs/gen/tiny.yaml's sample.steps
    assert "tasks" not in report  # shapes poses no tasks
