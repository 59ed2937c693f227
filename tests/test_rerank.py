"""Best-of-N sampling: seeds, the kept candidate, recorded scores, the random baseline and the judge's scores."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from caption.judge.attribute_probs import attribute_probs
from caption.judge.scorer import JudgeScorer
from gen import domains
from gen.__main__ import main as gen_main
from gen.core.errors import UserError
from gen.domains.shapes.negatives import variants
from gen.generator.rerank import RandomScorer, best_of, candidate_seed
from gen.generator.sample import sample_to_folder

PROMPTS = ["a red circle on the left", "a blue square at the top"]


class Brightness:
    """A real scorer, by the Scorer protocol: the mean pixel value, so the brightest candidate wins."""

    name = "brightness"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, images, prompts) -> list[float]:
        assert len(images) == len(prompts)
        self.calls.append(len(images))
        return [float(np.asarray(im, dtype=float).mean()) for im in images]


def rows_of(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]


def test_candidate_seeds_and_best_of():
    assert [candidate_seed(10, i, 3, k) for i in range(2) for k in range(3)] == [10, 11, 12, 13, 14, 15]
    assert [candidate_seed(10, i, 1, 0) for i in range(3)] == [10, 11, 12]  # N = 1: seed + i, as before
    assert best_of([0.1, 0.7, 0.7, 0.2]) == 1  # the earliest of a tie
    assert best_of([float("nan"), 0.3, 0.5]) == 2
    assert best_of([float("nan")] * 3) == 0


def test_random_scorer_is_seeded_and_independent_of_batching():
    images = [Image.new("RGB", (4, 4))] * 6
    a = RandomScorer(3)(images, ["x"] * 6)
    b = RandomScorer(3)
    assert b(images[:4], ["x"] * 4) + b(images[4:], ["x"] * 2) == a
    assert RandomScorer(4)(images, ["x"] * 6) != a
    assert all(0 <= x < 1 for x in a)


def test_best_of_n_keeps_the_best_candidate_and_records_all(tiny_pipe, tmp_path):
    scorer = Brightness()
    out = sample_to_folder(tiny_pipe, PROMPTS, tmp_path / "best", num_per_prompt=2, steps=2, seed=5,
                           batch_size=4, candidates=3, scorer=scorer)
    rows = rows_of(out)
    assert len(rows) == 4 and scorer.calls == [3, 3, 3, 3]  # 4 // 3 = 1 image's candidates per batch
    for i, row in enumerate(rows):
        seeds = [c["seed"] for c in row["candidates"]]
        assert seeds == [5 + 3 * i + k for k in range(3)]
        scores = [c["score"] for c in row["candidates"]]
        assert row["kept"] == int(np.argmax(scores)) and row["seed"] == seeds[row["kept"]]
        assert row["rerank"] == "brightness" and row["text"] == PROMPTS[i // 2]
        assert row["file_name"] == f"{i:05d}-seed{row['seed']}.png"
        kept = np.asarray(Image.open(out / row["file_name"]), dtype=float)
        assert kept.mean() == pytest.approx(max(scores))
    # The kept image is made again, alone, from its recorded seed.
    again = sample_to_folder(tiny_pipe, [rows[3]["text"]], tmp_path / "again", steps=2, seed=rows[3]["seed"])
    first = np.asarray(Image.open(out / rows[3]["file_name"]), dtype=int)
    alone = np.asarray(Image.open(again / f"00000-seed{rows[3]['seed']}.png"), dtype=int)
    assert np.abs(first - alone).max() <= 1  # batch composition may move a pixel by one level


def test_one_candidate_without_a_scorer_is_plain_sampling(tiny_pipe, tmp_path):
    out = sample_to_folder(tiny_pipe, PROMPTS, tmp_path / "plain", steps=2, seed=3)
    rows = rows_of(out)
    assert [r["seed"] for r in rows] == [3, 4] and "candidates" not in rows[0]
    with pytest.raises(UserError, match="--candidates 2 needs --rerank"):
        sample_to_folder(tiny_pipe, PROMPTS, tmp_path / "x", steps=2, candidates=2)


def test_random_rerank_beats_nothing_but_reproduces(tiny_pipe, tmp_path):
    a = rows_of(sample_to_folder(tiny_pipe, PROMPTS, tmp_path / "a", steps=2, candidates=4, scorer=RandomScorer(0)))
    b = rows_of(sample_to_folder(tiny_pipe, PROMPTS, tmp_path / "b", steps=2, candidates=4, scorer=RandomScorer(0)))
    assert a == b and a[0]["rerank"] == "random"
    assert [r["kept"] for r in a] == [int(np.argmax([c["score"] for c in r["candidates"]])) for r in a]


def test_cli_refuses_candidates_without_rerank_and_an_unknown_scorer(gen_run, tmp_path, capsys):
    model = str(gen_run / "model")
    assert gen_main(["sample", model, "--prompt", "a red circle on the left", "--candidates", "2",
                     "--out", str(tmp_path / "o")]) == 2
    assert "needs --rerank" in capsys.readouterr().err
    assert gen_main(["sample", model, "--prompt", "x", "--rerank", str(tmp_path), "--candidates", "2",
                     "--out", str(tmp_path / "o")]) == 2
    assert "neither 'random' nor a captioner" in capsys.readouterr().err


def test_cli_reranks_with_the_captioner(gen_run, captioner_dir, tmp_path):
    out = tmp_path / "judged"
    assert gen_main(["sample", str(gen_run / "model"), "--prompt", PROMPTS[0], "--num-per-prompt", "2",
                     "--steps", "2", "--seed", "1", "--rerank", str(captioner_dir), "--candidates", "3",
                     "--out", str(out)]) == 0
    rows = rows_of(out)
    assert [r["rerank"] for r in rows] == ["judge:prob"] * 2
    assert [c["seed"] for c in rows[1]["candidates"]] == [4, 5, 6]
    for row in rows:
        scores = [c["score"] for c in row["candidates"]]
        assert all(0 < s <= 1 for s in scores) and row["kept"] == int(np.argmax(scores))


# ---------------------------------------------------------------- the judge's scores


def test_variants_change_one_attribute_each():
    found = variants("a red circle on the left")
    assert [v for v, _ in found["shape"]] == ["circle", "square", "triangle"]
    assert found["shape"][1][1] == "a red square on the left"
    assert len(found["color"]) == 8 and found["color"][0] == ("red", "a red circle on the left")
    assert ("orange", "an orange circle on the left") in found["color"]
    assert [v for v, _ in found["position"]] == ["left", "right", "top", "bottom", "center"]
    assert variants("a photo of a cat") == {}


def test_attribute_probs_are_softmaxes_over_one_word_variants(judge):
    pixels = torch.stack([judge.pil_to_pixels(Image.new("RGB", (16, 16), c)) for c in ((200, 30, 30), (30, 30, 200))])
    tokens = judge.encode(pixels)
    prompts = ["a red circle on the left", "a photo of a cat"]
    found = attribute_probs(judge, tokens, prompts, domains.SHAPES)
    options = variants(prompts[0])["shape"]
    logits = judge.debiased(tokens[[0] * len(options)], [t for _, t in options]).numpy()
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    assert found.probs["shape"][0] == pytest.approx(expected[0], rel=1e-5)
    assert found.reading["shape"][0] == options[int(np.argmax(logits))][0]
    joint = found.probs["color"][0] * found.probs["shape"][0] * found.probs["position"][0]
    assert found.all[0] == pytest.approx(joint)
    assert np.isnan(found.all[1]) and found.reading["color"][1] is None
    assert found.debiased == pytest.approx(judge.debiased(tokens, prompts).numpy(), rel=1e-5)


def test_judge_scorer_kinds(captioner_dir, judge):
    images = [Image.new("RGB", (16, 16), (200, 30, 30)), Image.new("RGB", (16, 16), (30, 30, 200))]
    prompts = ["a red circle on the left", "a photo of a cat"]
    prob = JudgeScorer(captioner_dir, "prob", device="cpu")(images, prompts)
    debiased = JudgeScorer(captioner_dir, "debiased", device="cpu")(images, prompts)
    tokens = judge.encode(torch.stack([judge.pil_to_pixels(im) for im in images]))
    assert debiased == pytest.approx(judge.debiased(tokens, prompts).tolist(), rel=1e-5)
    assert 0 < prob[0] <= 1 and prob[1] == pytest.approx(debiased[1])  # no hard negatives: debiased
    with pytest.raises(ValueError, match="one of prob, debiased"):
        JudgeScorer(captioner_dir, "clip")


def test_judge_prob_sets_a_prompt_without_variants_against_the_other_prompts(captioner_dir, judge):
    images = [Image.new("RGB", (16, 16), (200, 30, 30)), Image.new("RGB", (16, 16), (30, 30, 200))] * 2
    prompts = ["a photo of a cat", "a photo of a dog", "a photo of a cat", "a red circle on the left"]
    rivals = ["a photo of a cat", "a photo of a dog", "a photo of a cow", "a red circle on the left"]
    prob = JudgeScorer(captioner_dir, "prob", device="cpu", rivals=rivals)(images, prompts)
    tokens = judge.encode(torch.stack([judge.pil_to_pixels(im) for im in images]))
    for i in range(3):  # each plain prompt against the three other rivals: a softmax of log p, at the prompt
        texts = [prompts[i]] + [r for r in rivals if r != prompts[i]]
        logp = judge.logp(tokens[[i] * len(texts)], texts).numpy()
        assert prob[i] == pytest.approx(float(np.exp(logp[0]) / np.exp(logp).sum()), rel=1e-4)
    alone = JudgeScorer(captioner_dir, "prob", device="cpu")(images, prompts)
    assert prob[3] == pytest.approx(alone[3])  # a shapes prompt keeps its attribute probability
    lonely = JudgeScorer(captioner_dir, "prob", device="cpu", rivals=["a photo of a cat"])(images[:1], prompts[:1])
    assert lonely == pytest.approx(JudgeScorer(captioner_dir, "debiased", device="cpu")(images[:1], prompts[:1]))
