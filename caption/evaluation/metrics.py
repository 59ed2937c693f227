"""Caption metrics (BLEU-4, CIDEr-D) and ranking statistics in plain Python + numpy.

Written by hand because the reference implementations (coco-caption) need Java for
tokenizing and pull in no reusable library; numbers follow coco-caption where noted.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np

Ngrams = Counter  # Counter[tuple[str, ...], int]

# coco-caption's PTBTokenizer drops these punctuation tokens after splitting; removing
# every non-word, non-space character is close enough and needs no Java.
_PUNCT = re.compile(r"[^\w\s]")


def tokenize(text: str) -> list[str]:
    """Lower-case, strip punctuation, split on whitespace (≈ coco-caption's PTB tokenizer)."""
    return _PUNCT.sub(" ", text.lower()).split()


def _ngrams(words: Sequence[str], max_n: int = 4) -> Ngrams:
    """Count all n-grams of length 1..max_n."""
    counts: Ngrams = Counter()
    for k in range(1, max_n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i : i + k])] += 1
    return counts


# ---------------------------------------------------------------- BLEU-4


def _closest_ref_length(cand_len: int, ref_lens: Sequence[int]) -> int:
    """Reference length nearest the candidate, shorter on ties (Papineni et al. 2002)."""
    return min(ref_lens, key=lambda r: (abs(r - cand_len), r))


def bleu4(candidate: str, references: Sequence[str]) -> float:
    """Sentence BLEU-4 (Papineni et al. 2002) with Lin & Och (2004) add-one smoothing for n>1."""
    cand = tokenize(candidate)
    refs = [tokenize(r) for r in references]
    if not cand or not refs:
        return 0.0
    cand_counts = _ngrams(cand)
    max_ref: Ngrams = Counter()
    for ref in refs:
        max_ref |= _ngrams(ref)  # union keeps the max count per n-gram: the clipping bound
    log_p = 0.0
    for n in range(1, 5):
        grams = {g: c for g, c in cand_counts.items() if len(g) == n}
        matched = sum(min(c, max_ref[g]) for g, c in grams.items())
        total = max(len(cand) - n + 1, 0)
        # Smoothing "method 2": unigram precision stays raw, as in the paper. An order with no
        # n-grams (candidate < 4 words) becomes 1/1, where NLTK gives 1/2, so identical
        # short strings still score 1; for 4+ words this equals NLTK's method2.
        if n > 1:
            matched, total = matched + 1, total + 1
        if matched == 0:
            return 0.0
        log_p += math.log(matched / total) / 4
    r = _closest_ref_length(len(cand), [len(ref) for ref in refs])
    brevity = 1.0 if len(cand) > r else math.exp(1 - r / len(cand))
    return brevity * math.exp(log_p)


# ---------------------------------------------------------------- CIDEr-D


class CiderD:
    """CIDEr-D (Vedantam et al. 2015), following coco-caption's `cider_scorer.py`."""

    n = 4
    sigma = 6.0

    def __init__(self, corpus_references: Sequence[Sequence[str]]) -> None:
        # Document frequency counts images (not sentences) whose references hold the n-gram.
        self.doc_freq: Counter = Counter()
        for refs in corpus_references:
            grams = set()
            for ref in refs:
                grams.update(_ngrams(tokenize(ref), self.n))
            self.doc_freq.update(grams)
        self.log_n_docs = math.log(max(len(corpus_references), 1))

    def _vector(self, words: list[str]) -> tuple[list[dict], list[float], int]:
        """tf-idf vectors and norms per n, plus coco-caption's length term."""
        vec: list[dict] = [{} for _ in range(self.n)]
        norm = [0.0] * self.n
        for gram, tf in _ngrams(words, self.n).items():
            idf = self.log_n_docs - math.log(max(1.0, self.doc_freq[gram]))
            vec[len(gram) - 1][gram] = tf * idf
            norm[len(gram) - 1] += (tf * idf) ** 2
        # coco-caption measures length as the number of bigrams (its `n == 1` branch);
        # kept so scores match published CIDEr-D numbers.
        length = max(len(words) - 1, 0)
        return vec, [math.sqrt(x) for x in norm], length

    def _similarity(self, hyp: tuple, ref: tuple) -> np.ndarray:
        """Per-n clipped cosine similarity times the gaussian length penalty."""
        (v_h, n_h, l_h), (v_r, n_r, l_r) = hyp, ref
        penalty = math.exp(-((l_h - l_r) ** 2) / (2 * self.sigma**2))
        val = np.zeros(self.n)
        for k in range(self.n):
            # The "-D" clipping: a candidate cannot gain by repeating a reference n-gram.
            val[k] = sum(min(w, v_r[k].get(g, 0.0)) * v_r[k].get(g, 0.0) for g, w in v_h[k].items())
            if n_h[k] != 0 and n_r[k] != 0:
                val[k] /= n_h[k] * n_r[k]
        return val * penalty

    def score(self, candidate: str, references: Sequence[str]) -> float:
        """CIDEr-D of one candidate against its references (×10, as coco-caption reports)."""
        if not references:
            return 0.0
        hyp = self._vector(tokenize(candidate))
        total = np.zeros(self.n)
        for ref in references:
            total += self._similarity(hyp, self._vector(tokenize(ref)))
        return float(total.mean() / len(references) * 10.0)


def cider_d(candidates: Sequence[str], references: Sequence[Sequence[str]]) -> list[float]:
    """CIDEr-D per candidate, with document frequencies from all the given references."""
    scorer = CiderD(references)
    return [scorer.score(c, refs) for c, refs in zip(candidates, references, strict=True)]


# ---------------------------------------------------------------- ranking statistics


def _average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their positions."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(len(x))
    start = 0
    while start < len(x):
        end = start
        while end + 1 < len(x) and sorted_x[end + 1] == sorted_x[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve as the Mann–Whitney U statistic (ties count half)."""
    if len(scores) != len(labels):
        raise ValueError("scores and labels differ in length")
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum = _average_ranks(scores)[y].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho: Pearson correlation of average ranks; None if either side is constant."""
    if len(x) != len(y):
        raise ValueError("x and y differ in length")
    if len(x) < 2:
        return None
    rx, ry = _average_ranks(x), _average_ranks(y)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = math.sqrt(float((rx**2).sum() * (ry**2).sum()))
    if denom == 0:
        return None
    return float((rx * ry).sum() / denom)


def bootstrap_ci(
    values: Sequence[float], n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high) with a percentile bootstrap interval (Efron & Tibshirani 1993)."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return (float(x.mean()), float(low), float(high))


def rank_of_true(scores: Sequence[float], true_index: int = 0) -> int:
    """0-based rank of the true item; ties rank it below its rivals, so constant scores never win."""
    true_score = scores[true_index]
    return sum(1 for j, s in enumerate(scores) if j != true_index and s >= true_score)


def bootstrap_stat(
    statistic: Callable[[np.ndarray], float | None], n: int, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> dict[str, float | int | None]:
    """{value, low, high, n}: a statistic of n items (given their indices) with a percentile bootstrap interval.

    Resamples whose statistic is undefined (None, e.g. an AUROC drawn with one class only) are left out;
    with none left the interval is None.
    """
    if n == 0:
        return {"value": None, "low": None, "high": None, "n": 0}
    value = statistic(np.arange(n))
    rng = np.random.default_rng(seed)
    draws = [statistic(rng.integers(0, n, size=n)) for _ in range(n_boot)]
    draws = [d for d in draws if d is not None and not math.isnan(d)]
    if value is None or not draws:
        return {"value": value, "low": None, "high": None, "n": n}
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return {"value": float(value), "low": float(low), "high": float(high), "n": n}
