"""`caption meta-eval`: can the judge be trusted? Error ladders on fresh shapes renders.

Each image gets its correct caption and captions with 1, 2 and 3 attributes changed. A trustworthy
judge ranks the correct caption above every one-wrong caption (AUROC per attribute type), and its
score falls with each wrong attribute (Spearman). The blind baseline scores by the text prior alone.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from caption.evaluation.metrics import auroc, rank_of_true, spearman
from caption.judge.judge import Judge
from gen.domains.shapes.negatives import corrupt
from gen.domains.shapes.world import ATTRIBUTES, all_combinations, caption, render

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25)


def build_ladders(count: int, size: int, seed: int) -> tuple[list, list[str], list[int], list[str | None], list]:
    """Images, and per caption: text, number of correct attributes, the single wrong attribute, image index."""
    rng = np.random.default_rng(seed)
    combos = all_combinations()
    images, texts, n_correct, wrong_attr, owner, specs = [], [], [], [], [], []
    for i in range(count):
        spec = combos[int(rng.integers(len(combos)))]
        images.append(render([spec], size, rng))
        specs.append(spec)
        good = caption([spec], rng)
        ladder = [(good, 3, None)] + [(corrupt(good, [a], rng), 2, a) for a in ATTRIBUTES]
        pair = list(rng.choice(ATTRIBUTES, 2, replace=False))
        ladder += [(corrupt(good, pair, rng), 1, None), (corrupt(good, list(ATTRIBUTES), rng), 0, None)]
        for text, n, attr in ladder:
            if text is not None:
                texts.append(text), n_correct.append(n), wrong_attr.append(attr), owner.append(i)
    return images, texts, n_correct, wrong_attr, (owner, specs)


def _ladder_metrics(scores: np.ndarray, n_correct: list[int], wrong_attr: list[str | None]) -> dict[str, Any]:
    correct = [s for s, n in zip(scores, n_correct) if n == 3]
    out: dict[str, Any] = {}
    for a in ATTRIBUTES:
        wrong = [s for s, w in zip(scores, wrong_attr) if w == a]
        out[f"auroc_{a}"] = auroc(correct + wrong, [True] * len(correct) + [False] * len(wrong))
    out["spearman"] = spearman(list(scores), n_correct)
    return out


def _text_to_image(judge: Judge, tokens: torch.Tensor, texts: list[str], n_correct: list[int], owner: list[int],
                   specs: list, k: int, seed: int) -> float:
    """R@1 of each image's correct caption used as a query against k images of other combinations."""
    rng, hits, total = np.random.default_rng(seed), 0, 0
    for text, n, i in zip(texts, n_correct, owner):
        if n != 3:
            continue
        others = [j for j in range(len(specs)) if specs[j] != specs[i]]
        pool = [i] + [others[j] for j in rng.choice(len(others), min(k, len(others)), replace=False)]
        scores = judge.logp(tokens[pool], [text] * len(pool)).tolist()
        hits += rank_of_true(scores, 0) == 0
        total += 1
    return hits / max(1, total)


def meta_eval(model_dir: str | Path, count: int = 300, size: int | None = None, seed: int = 1234,
              out: str | Path | None = None, k: int = 20) -> dict[str, Any]:
    """AUROC per attribute, Spearman and text→image R@1 for each α, against the blind baseline."""
    judge = Judge(model_dir)
    images, texts, n_correct, wrong_attr, (owner, specs) = build_ladders(count, size or judge.size, seed)
    tokens = judge.encode(torch.stack([judge.pil_to_pixels(im) for im in images]))  # (N, T_img, D)
    logp = judge.logp(tokens[owner], texts).numpy()
    prior = judge.prior(texts).numpy()
    by_alpha = {str(a): _ladder_metrics(logp - a * prior, n_correct, wrong_attr) for a in ALPHAS}
    # The marginal p(t) over real renders (another seed), for comparison with the null-image estimate.
    bank = build_ladders(64, size or judge.size, seed + 1)[0]
    judge.set_prior_bank(torch.stack([judge.pil_to_pixels(im) for im in bank]))
    marginal = judge.prior(texts).numpy()
    by_alpha_marginal = {str(a): _ladder_metrics(logp - a * marginal, n_correct, wrong_attr) for a in ALPHAS}
    worst = {a: min(m[f"auroc_{x}"] for x in ATTRIBUTES) for a, m in by_alpha.items()}
    # As much debiasing as costs nothing: the largest α within 0.005 of the best worst-attribute AUROC.
    best = max((a for a in worst if worst[a] >= max(worst.values()) - 0.005), key=float)
    report = {
        "images": count, "captions": len(texts), "alpha_in_use": judge.alpha, "best_alpha": float(best),
        "judge": by_alpha[str(judge.alpha)] if str(judge.alpha) in by_alpha else _ladder_metrics(
            logp - judge.alpha * prior, n_correct, wrong_attr),
        "blind_baseline": _ladder_metrics(prior, n_correct, wrong_attr),
        "likelihood_only": by_alpha["0.0"], "by_alpha": by_alpha, "by_alpha_marginal_prior": by_alpha_marginal,
        "text_to_image_r@1": _text_to_image(judge, tokens, texts, n_correct, owner, specs, k, seed),
    }
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2))
    return report
