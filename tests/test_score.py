"""Judging images with the tiny trained captioner: score_folder, Judge, negatives, describe, search, meta_eval."""
from __future__ import annotations

import html
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from caption.describe import describe
from caption.evaluation.meta_eval import build_ladders, meta_eval
from caption.evaluation.score import score_folder
from caption.judge.judge import Judge, null_images
from caption.judge.views import JudgeConfig
from caption.judge.negatives import distractors
from caption.search import search
from gen import domains
from gen.domains.shapes.negatives import corrupt, hard_negatives, swap
from gen.domains.shapes.world import (
    ATTRIBUTES,
    COLORS,
    POSITIONS,
    SHAPES,
    ShapeSpec,
    all_combinations,
    parse_caption,
    phrasings,
    render,
)

same_caption = domains.SHAPES.same_caption

SPECS = [ShapeSpec("red", "circle", "left"), ShapeSpec("blue", "square", "top"),
         ShapeSpec("green", "triangle", "center"), ShapeSpec("orange", "circle", "bottom"),
         ShapeSpec("white", "square", "right")]


def write_good_images(folder, size: int = 32) -> list[dict]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rows = []
    for i, spec in enumerate(SPECS):
        name = f"{i:05d}.png"
        render([spec], size, rng).save(folder / name)
        rows.append({"file_name": name, "text": phrasings([spec])[i % 5], "seed": i})
    return rows


@pytest.fixture
def samples(tmp_path):
    """A `gen sample`-style folder: good renders plus one of each kind of bad row."""
    folder = tmp_path / "samples"
    rows = write_good_images(folder)
    (folder / "notes.txt").write_text("not an image")
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    render([SPECS[0]], 32, np.random.default_rng(1)).save(folder / "blank.png")
    rows += [
        {"file_name": "notes.txt", "text": "a red circle on the left"},
        {"file_name": "corrupt.png", "text": "a blue square at the top"},
        {"text": "a green triangle in the center"},
        {"file_name": "blank.png", "text": ""},
    ]
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    domains.declare(folder, "shapes")  # what `gen sample` writes for a shapes generator
    return folder


# ---------------------------------------------------------------- score_folder


def test_score_folder(captioner_dir, samples, tmp_path):
    out = tmp_path / "scored"
    summary = score_folder(captioner_dir, samples, out, k=20)
    rows = [json.loads(line) for line in (out / "scores.jsonl").read_text().splitlines()]
    assert [r["file_name"] for r in rows] == [f"{i:05d}.png" for i in range(len(SPECS))]
    for row, spec in zip(rows, SPECS):
        pieces = [p for p, _ in row["token_logprobs"]]
        values = [v for _, v in row["token_logprobs"]]
        assert "".join(pieces) == row["prompt"] + "<|endoftext|>"  # every prompt token, then the end
        assert all(v <= 0 for v in values)
        assert row["logp_sum"] == pytest.approx(sum(values))
        assert row["logp_mean"] == pytest.approx(sum(values) / len(values))
        assert row["debiased"] == pytest.approx(row["logp_sum"] - summary["alpha"] * row["log_prior"])
        assert isinstance(row["rank"], int) and 0 <= row["rank"] < row["candidates"]
        assert row["candidates"] == 1 + 13 + 4  # every one-attribute negative, then the 4 other prompts
        assert isinstance(row["caption"], str)
        assert 0 <= row["bleu4"] <= 1 and row["cider_d"] >= 0
        assert row["exact_match"] == same_caption(row["caption"], row["prompt"])
        assert set(row["oracle"]) == set(ATTRIBUTES)
        assert row["oracle_pass"] is True  # clean renders: the pixel oracle confirms every prompt
        assert parse_caption(row["prompt"]) == spec.as_dict()
    stored = json.loads((out / "summary.json").read_text())
    assert stored["table"]["images"] == len(SPECS) and stored["table"]["skipped"] == 4
    reasons = {s["file_name"]: s["reason"] for s in stored["skipped"]}
    assert reasons["notes.txt"].startswith("unreadable image")  # the reasons training counts by (skip_reason)
    assert reasons["corrupt.png"].startswith("unreadable image")
    assert reasons["None"] == "row has no file_name"
    assert reasons["blank.png"] == "empty caption"
    assert len(stored["skipped"]) == 4
    for name, ci in stored["means"].items():
        assert ci["n"] == len(SPECS), name
        assert ci["low"] - 1e-9 <= ci["mean"] <= ci["high"] + 1e-9, name
    assert stored["means"]["r_precision@1"]["mean"] == pytest.approx(np.mean([r["rank"] == 0 for r in rows]))
    assert stored["oracle"]["all"] == 1.0 and stored["oracle_judged"] == len(SPECS)
    report = (out / "report.html").read_text()
    assert report.count('class="card ') == len(SPECS)
    assert "skipped (4)" in report and "notes.txt" in report
    assert summary == stored


def test_score_folder_defaults_to_the_samples_folder(captioner_dir, tmp_path):
    folder = tmp_path / "s"
    rows = write_good_images(folder)[:2]
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = score_folder(captioner_dir, folder, k=3, domain="shapes")
    assert (folder / "scores.jsonl").is_file() and (folder / "report.html").is_file()
    assert summary["table"]["skipped"] == 0 and summary["skipped"] == []
    assert all(json.loads(line)["candidates"] == 4 for line in (folder / "scores.jsonl").read_text().splitlines())


def test_score_folder_without_readable_images(captioner_dir, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"nope")
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "bad.png", "text": "x"}) + "\n")
    with pytest.raises(ValueError, match="no readable image"):
        score_folder(captioner_dir, tmp_path)


# ---------------------------------------------------------------- judge


def test_null_images():
    nulls = null_images(8, count=6, seed=0)
    assert nulls.shape == (6, 3, 8, 8) and nulls.min() >= -1 and nulls.max() <= 1
    assert torch.equal(nulls, null_images(8, count=6, seed=0))
    assert torch.equal(nulls[3:, 0, 0, 0], torch.tensor([-1.0, 0.0, 1.0]))  # the flat half


def test_prior_is_a_function_of_the_text(judge, captioner_dir):
    texts = ["a red circle on the left", "a blue square at the top", "a red circle on the left"]
    prior = judge.prior(texts)
    assert prior.shape == (3,) and prior[0] == prior[2] and prior[0] != prior[1]
    assert (prior < 0).all()
    fresh = Judge(captioner_dir, device="cpu")  # no cache: recomputed, in another order
    torch.testing.assert_close(fresh.prior(texts[::-1]), prior.flip(0), atol=1e-5, rtol=0)
    # log mean_j p(t | null_j), by hand.
    m = len(judge.bank_tokens)
    lp = judge.logp(judge.bank_tokens, [texts[1]] * m)
    assert float(prior[1]) == pytest.approx(float(torch.logsumexp(lp, 0) - np.log(m)), abs=1e-5)


def test_prior_bank_can_be_real_images(captioner_dir):
    judge = Judge(captioner_dir, device="cpu")
    text = phrasings([SPECS[0]])[0]
    null_prior = float(judge.prior([text])[0])
    bank = torch.stack([judge.pil_to_pixels(render([s], 32, np.random.default_rng(i))) for i, s in enumerate(SPECS[:4])])
    judge.set_prior_bank(bank)
    assert judge.bank_tokens.shape[0] == 4
    lp = judge.logp(judge.bank_tokens, [text] * 4)
    marginal = float(judge.prior([text])[0])  # the cache was reset: computed over the new bank
    assert marginal == pytest.approx(float(torch.logsumexp(lp, 0) - np.log(4)), abs=1e-5)
    assert marginal != pytest.approx(null_prior, abs=1e-6)


def test_debiased_is_logp_minus_alpha_prior(judge):
    images = torch.stack([judge.pil_to_pixels(render([s], 32, np.random.default_rng(0))) for s in SPECS[:3]])
    tokens = judge.encode(images)
    assert tokens.shape[0] == 3
    texts = [phrasings([s])[0] for s in SPECS[:3]]
    logp, prior = judge.logp(tokens, texts), judge.prior(texts)
    torch.testing.assert_close(judge.debiased(tokens, texts), logp - judge.alpha * prior)
    torch.testing.assert_close(judge.debiased(tokens, texts, alpha=0.25), logp - 0.25 * prior)
    torch.testing.assert_close(judge.debiased(tokens, texts, alpha=0.0), logp)
    per_token = judge.token_logprobs(tokens, texts)
    torch.testing.assert_close(torch.tensor([sum(v for _, v in row) for row in per_token]), logp, atol=1e-4, rtol=0)


def test_judge_sees_images_as_the_captioner_was_trained_on_them(judge, tmp_path):
    """Scoring (pil_to_pixels) and training (gen.data.load_image, via Judge.load) resize the same way."""
    for size in (16, 32, 40):
        path = tmp_path / f"{size}.png"
        render([SPECS[2]], size, np.random.default_rng(size)).save(path)
        with Image.open(path) as im:
            scored = judge.pil_to_pixels(im)
        trained = judge.load(path)
        assert scored.shape == trained.shape == (3, judge.size, judge.size)
        torch.testing.assert_close(scored, trained, atol=1 / 127.5, rtol=0, msg=lambda m, s=size: f"{s} px: {m}")


# ---------------------------------------------------------------- negatives


def differences(a: str, b: str) -> set[str]:
    pa, pb = parse_caption(a), parse_caption(b)
    return {k for k in ATTRIBUTES if pa.get(k) != pb.get(k)}


@pytest.mark.parametrize("text", ["a red circle on the left", "an orange square at the top",
                                  "there is a white triangle in the center of the image", "cyan circle at the bottom",
                                  "an image of an orange triangle on the right"])
def test_hard_negatives_change_exactly_one_attribute(text):
    negatives = hard_negatives(text)
    assert len(negatives) == (len(COLORS) - 1) + (len(SHAPES) - 1) + (len(POSITIONS) - 1)
    assert len(set(negatives)) == len(negatives)
    for neg in negatives:
        assert len(differences(text, neg)) == 1, neg
        assert "on the top" not in neg and "on the bottom" not in neg and "at the left" not in neg
        assert "in the top" not in neg and "at the center" not in neg
        assert not re.search(r"\ba [aeiou]", neg) and not re.search(r"\ban [^aeiou ]\w", neg.replace("an image", "")), neg


def test_hard_negative_grammar_examples():
    negatives = hard_negatives("a red circle on the left")
    assert "a red circle at the top" in negatives
    assert "an orange circle on the left" in negatives
    assert "a red circle in the center" in negatives
    assert "a red square on the left" in negatives
    assert "a red circle on the left" not in negatives
    assert "a red circle at the bottom of the image" in hard_negatives("a red circle on the left of the image")
    assert "a purple circle on the left" in hard_negatives("an orange circle on the left")
    assert hard_negatives("a photo of a dog") == []
    assert swap("a red circle", "position", "top") is None  # states no position


@pytest.mark.parametrize("n", [1, 2, 3])
def test_corrupt_changes_that_many_attributes(n):
    rng = np.random.default_rng(n)
    for spec in all_combinations()[::7]:
        for text in phrasings([spec]):
            attrs = list(rng.choice(ATTRIBUTES, n, replace=False))
            bad = corrupt(text, attrs, rng)
            assert bad is not None
            assert differences(text, bad) == set(attrs), (text, bad)


def test_same_caption():
    assert same_caption("there is a red circle on the left of the image", "a red circle on the left")
    assert same_caption("red circle on the left", "an image of a red circle on the left")
    assert not same_caption("a red circle on the right", "a red circle on the left")
    assert not same_caption("a red circle", "a red circle on the left")
    assert same_caption("Hello, world!", "hello world")
    assert not same_caption("hello", "hello world")


def test_distractors():
    pool = ["a red circle on the left", "a blue square at the top", "there is a red circle on the left",
            "a green triangle in the center"]
    rng = np.random.default_rng(0)
    few = distractors(pool[0], pool, 5, rng, domains.SHAPES)
    assert len(few) == 5 and all(len(differences(pool[0], d)) == 1 for d in few)
    many = distractors(pool[0], pool, 20, rng, domains.SHAPES)
    assert len(many) == 15  # 13 hard negatives + 2 prompts that mean something else
    assert "a blue square at the top" in many and "there is a red circle on the left" not in many
    assert not any(same_caption(d, pool[0]) for d in many)


# ---------------------------------------------------------------- describe, search, meta-eval


def test_describe_skips_bad_files(captioner_dir, tmp_path):
    rows = write_good_images(tmp_path)
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG garbage")
    (tmp_path / "notes.txt").write_text("text")
    paths = [tmp_path / rows[0]["file_name"], tmp_path / "missing.png", tmp_path / "corrupt.png",
             tmp_path / "notes.txt", tmp_path / rows[1]["file_name"]]
    results = describe(captioner_dir, paths)
    assert [r["file"] for r in results] == [str(p) for p in paths]
    assert isinstance(results[0]["caption"], str) and isinstance(results[4]["caption"], str)
    assert results[1] == {"file": str(paths[1]), "skipped": "missing file"}
    assert results[2]["skipped"].startswith("not a readable image") and "caption" not in results[2]
    assert results[3]["skipped"].startswith("not a readable image")
    again = describe(captioner_dir, [paths[0]], beams=2)
    assert len(again) == 1 and isinstance(again[0]["caption"], str)
    sampled = describe(captioner_dir, [paths[0], paths[4]], top_p=0.9, seed=1)
    assert sampled == describe(captioner_dir, [paths[0], paths[4]], top_p=0.9, seed=1)


def test_search_returns_top_k_sorted_and_writes_the_strip(captioner_dir, judge, tmp_path):
    folder = tmp_path / "imgs"
    write_good_images(folder)
    (folder / "sub").mkdir()
    render([SPECS[1]], 32, np.random.default_rng(3)).save(folder / "sub" / "extra.png")
    (folder / "broken.png").write_bytes(b"not an image")
    (folder / "notes.txt").write_text("ignored")
    query = "a blue square at the top"
    strip = tmp_path / "strip.html"
    top = search(captioner_dir, folder, query, top=3, html=str(strip))
    assert len(top) == 3
    scores = [s for _, s in top]
    assert scores == sorted(scores, reverse=True)
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png") if p.name != "broken.png")
    assert {n for n, _ in top} <= set(names) and "broken.png" not in {n for n, _ in top}
    # The same numbers as scoring every image directly.
    pixels = torch.stack([judge.pil_to_pixels(Image.open(folder / n)) for n in names])
    direct = judge.debiased(judge.encode(pixels), [query] * len(names)).tolist()
    best = sorted(zip(names, direct), key=lambda x: -x[1])[:3]
    assert [n for n, _ in top] == [n for n, _ in best]
    np.testing.assert_allclose(scores, [s for _, s in best], atol=1e-4)
    page = strip.read_text()
    assert page.count('class="hit"') == 3 and html.escape(query) in page
    assert page.index(top[0][0]) < page.index(top[1][0]) < page.index(top[2][0])
    everything = search(captioner_dir, folder, query, top=100)
    assert len(everything) == len(names)
    with pytest.raises(ValueError, match="empty"):
        search(captioner_dir, folder, "  ")


def test_build_ladders():
    images, texts, n_correct, wrong_attr, (owner, specs) = build_ladders(4, 16, seed=0)
    assert len(images) == len(specs) == 4 and images[0].size == (16, 16)
    assert len(texts) == len(n_correct) == len(wrong_attr) == len(owner) == 4 * 6
    for text, n, attr, i in zip(texts, n_correct, wrong_attr, owner):
        wrong = {a for a in ATTRIBUTES if parse_caption(text).get(a) != getattr(specs[i], a)}
        assert len(wrong) == 3 - n, text
        if attr is not None:
            assert wrong == {attr}


def test_meta_eval(captioner_dir, tmp_path):
    out = tmp_path / "meta" / "report.json"
    report = meta_eval(captioner_dir, count=8, seed=0, out=out, k=4)
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert report["images"] == 8 and report["captions"] == 48
    for section in ("judge", "blind_baseline", "likelihood_only"):
        assert {"auroc_color", "auroc_shape", "auroc_position", "spearman"} <= set(report[section]), section
        for a in ATTRIBUTES:
            assert 0 <= report[section][f"auroc_{a}"] <= 1
    assert set(report["by_alpha"]) == {"0.0", "0.25", "0.5", "0.75", "1.0", "1.25"}
    assert report["suggested_alpha"] in (0.0, 0.25, 0.5, 0.75, 1.0, 1.25) and "best_alpha" not in report
    alpha = JudgeConfig.alpha  # the captioner's saved judge.alpha, which a tiny run keeps at the default
    assert report["alpha_in_use"] == alpha and report["judge"] == report["by_alpha"][str(alpha)]
    worst = {a: min(m[f"auroc_{x}"] for x in ("color", "shape", "position")) for a, m in report["by_alpha"].items()}
    # suggested_alpha: the largest α whose worst-attribute AUROC is within 0.005 of the best one.
    assert worst[str(report["suggested_alpha"])] >= max(worst.values()) - 0.005
    assert all(float(a) <= report["suggested_alpha"] for a in worst if worst[a] >= max(worst.values()) - 0.005)
    assert report["alpha_rule"].startswith("the largest α") and report["alpha_note"]
    assert set(report["by_alpha_marginal_prior"]) == set(report["by_alpha"])
    assert 0 <= report["text_to_image_r@1"] <= 1
