"""Caption and ranking metrics against hand-computed values and brute-force references."""

import math

import numpy as np
import pytest

from caption.evaluation.metrics import (
    CiderD,
    auroc,
    bleu4,
    bootstrap_ci,
    cider_d,
    rank_of_true,
    spearman,
    tokenize,
)


def test_tokenize_lowercases_and_strips_punctuation():
    assert tokenize("A red, SQUARE.  on\tthe left!") == ["a", "red", "square", "on", "the", "left"]


# ---------------------------------------------------------------- BLEU-4


def test_bleu4_identical_is_one():
    assert bleu4("a small red square", ["a small red square"]) == pytest.approx(1.0)
    assert bleu4("The cat.", ["the cat"]) == pytest.approx(1.0)


def test_bleu4_partial_overlap_hand_computed():
    # p1=5/6, p2=(3+1)/(5+1), p3=(1+1)/(4+1), p4=(0+1)/(3+1); equal lengths so BP=1.
    expected = (5 / 6 * 4 / 6 * 2 / 5 * 1 / 4) ** 0.25
    assert bleu4("the cat sat on the mat", ["the cat is on the mat"]) == pytest.approx(expected)


def test_bleu4_brevity_penalty():
    # All precisions are 1 (smoothed empty orders give 1/1); BP = exp(1 - 6/2).
    assert bleu4("the cat", ["the cat sat on the mat"]) == pytest.approx(math.exp(-2))


def test_bleu4_clips_by_max_reference_count():
    # "the" clipped at 2 (second ref), "the the" at 1; closest ref length 3 so BP=1.
    expected = (2 / 3 * (1 + 1) / (2 + 1) * (0 + 1) / (1 + 1) * 1) ** 0.25
    assert bleu4("the the the", ["the cat", "the the dog"]) == pytest.approx(expected)


def test_bleu4_no_overlap_and_empty():
    assert bleu4("blue circle", ["red square"]) == 0.0
    assert bleu4("", ["red square"]) == 0.0


# ---------------------------------------------------------------- CIDEr-D

TOY_REFS = [["a red square"], ["a blue circle"]]
LOG2 = math.log(2)


def test_cider_identical_hand_computed():
    # idf("a")=0, everything else log 2; cosine 1 for n=1..3, no 4-grams -> (1+1+1+0)/4*10.
    scorer = CiderD(TOY_REFS)
    assert scorer.score("a red square", TOY_REFS[0]) == pytest.approx(7.5)


def test_cider_partial_overlap_hand_computed():
    # n=1: red shared of {red, circle} vs {red, square} -> 1/2; n=2: "a red" -> 1/2; n=3,4: 0.
    scorer = CiderD(TOY_REFS)
    assert scorer.score("a red circle", TOY_REFS[0]) == pytest.approx(2.5)


def test_cider_length_penalty_hand_computed():
    # n=1 cosine 1 ("a" has zero weight); n=2 cosine 1/sqrt(2); bigram lengths 1 vs 2.
    expected = (1 + 1 / math.sqrt(2)) / 4 * 10 * math.exp(-1 / (2 * 6.0**2))
    assert CiderD(TOY_REFS).score("red square", TOY_REFS[0]) == pytest.approx(expected)


def test_cider_identical_beats_different():
    scores = cider_d(["a red square", "a red square"], [["a red square"], ["a blue circle"]])
    assert scores[0] > 1.0
    assert scores[1] == pytest.approx(0.0)


def test_cider_clips_repeated_ngrams():
    # Repeating a reference word must not raise the score above the exact match.
    scorer = CiderD([["a red square", "red square"], ["a blue circle"]])
    exact = scorer.score("red square", ["red square"])
    repeated = scorer.score("red red square square", ["red square"])
    assert repeated < exact


def test_cider_averages_over_references():
    # Every n-gram has df=1 so all weights are log 2. Against "a red square": (1, 1, 1, 0);
    # against "a blue circle": only "a" of 3 unigrams -> (1/3, 0, 0, 0). Sum / 4 / 2 refs * 10.
    refs = [["a red square", "a blue circle"], ["green triangle"]]
    expected = (1 + 1 / 3 + 1 + 1 + 0) / 4 / 2 * 10
    assert CiderD(refs).score("a red square", refs[0]) == pytest.approx(expected)


# ---------------------------------------------------------------- AUROC


def _auroc_pairs(scores, labels):
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_auroc_known_cases():
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == pytest.approx(1.0)
    assert auroc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == pytest.approx(0.0)
    assert auroc([0.5, 0.5, 0.5, 0.5], [True, False, True, False]) == pytest.approx(0.5)
    assert auroc([1.0, 2.0], [True, True]) is None
    assert auroc([], []) is None


def test_auroc_matches_pair_counting():
    rng = np.random.default_rng(1)
    scores = np.round(rng.normal(size=200), 1).tolist()  # rounding forces many ties
    labels = (rng.random(200) < 0.3).tolist()
    assert auroc(scores, labels) == pytest.approx(_auroc_pairs(scores, labels))


# ---------------------------------------------------------------- Spearman


def _brute_spearman(x, y):
    def ranks(v):
        return [1 + sum(b < a for b in v) + 0.5 * (sum(b == a for b in v) - 1) for a in v]

    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))


def test_spearman_known_cases():
    assert spearman([1, 2, 3, 4], [10, 20, 35, 90]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None
    assert spearman([1], [2]) is None


def test_spearman_matches_brute_force_with_ties():
    rng = np.random.default_rng(2)
    x = rng.integers(0, 5, size=60).tolist()
    y = (np.array(x) + rng.integers(0, 4, size=60)).tolist()
    assert spearman(x, y) == pytest.approx(_brute_spearman(x, y))


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_contains_mean_and_narrows():
    rng = np.random.default_rng(3)
    small = rng.normal(1.0, 1.0, size=20)
    large = rng.normal(1.0, 1.0, size=2000)
    mean_s, lo_s, hi_s = bootstrap_ci(small)
    mean_l, lo_l, hi_l = bootstrap_ci(large)
    assert mean_s == pytest.approx(small.mean())
    assert lo_s <= mean_s <= hi_s and lo_l <= mean_l <= hi_l
    assert hi_l - lo_l < (hi_s - lo_s) / 4  # ~sqrt(100)=10x narrower in expectation


def test_bootstrap_seeded_and_edge_cases():
    assert bootstrap_ci([1.0, 2.0, 5.0], seed=7) == bootstrap_ci([1.0, 2.0, 5.0], seed=7)
    assert bootstrap_ci([2.0]) == (2.0, 2.0, 2.0)
    assert all(math.isnan(v) for v in bootstrap_ci([]))


# ---------------------------------------------------------------- rank of true


def test_rank_of_true_with_ties():
    assert rank_of_true([0.9, 0.1, 0.5]) == 0
    assert rank_of_true([0.5, 0.9, 0.1]) == 1
    assert rank_of_true([0.5, 0.9, 0.5]) == 2  # a tie counts against the true item
    assert rank_of_true([1.0, 1.0, 1.0, 1.0]) == 3  # constant scorer never gets R@1
    assert rank_of_true([0.1, 0.2, 0.3], true_index=2) == 0
    assert rank_of_true([7.0]) == 0
