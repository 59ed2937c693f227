"""The judge per GenEval task, in a domain that poses tasks (Domain.tasks, Domain.task: scenes).

Three measurements, each per task and overall:
- R@1 among hard negatives on clean renders: the prompt must outscore every edit of its claim the domain makes
  (in scenes: bound attributes swapped, the relation flipped, the count changed, one object's attribute changed);
  a tie is a miss, so a scorer that cannot tell them apart scores 0. It is also given per kind of edit, where the
  domain names the kinds (`hard_negative_kinds`).
- the judge against the strict oracle on generated images: AUROC of its probability that the prompt is right
  (right against wrong or unsure), and its calibration (caption/judge/calibration.py);
- best-of-N by the judge against a random pick: the oracle's strict accuracy of the image kept
  (caption/evaluation/best_of_n.py). Overall is the mean of the task means, as GenEval reports it.

The judge's probability that a task prompt is right is a softmax of debiased scores over the prompt and its hard
negatives: attribute_probs with the claim as the one attribute and the negatives as its other values.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from caption.evaluation.best_of_n import SCORERS, chance_summary, group_chances, groups_of
from caption.evaluation.metrics import auroc, bootstrap_stat
from caption.judge.calibration import expected_calibration_error, reliability
from caption.judge.judge import Judge
from caption.judge.negatives import negatives_by_kind
from gen import domains
from gen.domains import RIGHT, UNSURE, Domain

OVERALL = "overall"
RENDER_CAP = 1000  # renders drawn per one asked for, at most, while filling every task
BOOT = 1000

# Per image a list of texts → per image an array of their scores (higher: the text fits the image better).
PairScorer = Callable[[Sequence[Image.Image], Sequence[Sequence[str]]], list[np.ndarray]]


def task_prompts(domain: Domain, per_task: int, data_dir: str | None = None) -> list[str]:
    """`per_task` prompts of each task, evenly spaced through the domain's evaluation prompts (held-out combinations
    first, then seen ones; by DATA_DIR's held-out set, without one the shipped data's), in task order."""
    every = domains.scenes(domain, "list prompts per task").eval_prompts(data_dir, seen=10**9)
    by_task: dict[str, list[str]] = defaultdict(list)
    for prompt in dict.fromkeys(every):
        by_task[domain.task(prompt)].append(prompt)
    picked = []
    for task in domain.tasks:
        own = by_task.get(task, [])
        if own and per_task > 0:
            picked += [own[i] for i in np.unique(np.linspace(0, len(own) - 1, min(per_task, len(own))).round()
                                                 .astype(int))]
    return picked


# ---------------------------------------------------------------- R@1 among hard negatives on clean renders


def renders_per_task(domain: Domain, per_task: int, size: int, seed: int) -> list[tuple[Image.Image, str, str]]:
    """(image, prompt, task): the first `per_task` clean renders of each task as the domain's renders walk its
    benchmark (a later pass over a prompt draws a new scene of it), in task order."""
    wanted = {task: per_task for task in domain.tasks}
    found: dict[str, list[tuple[Image.Image, str, str]]] = defaultdict(list)
    for image, prompt in domain.renders(max(1, per_task) * RENDER_CAP, size, seed):
        task = domain.task(prompt)
        if wanted.get(task, 0) > 0:
            found[task].append((image, prompt, task))
            wanted[task] -= 1
        if not any(wanted.values()):
            break
    return [item for task in domain.tasks for item in found[task]]


def judge_scorer(judge: Judge, batch: int = 64) -> PairScorer:
    """The judge's debiased score log p(t|i) − α·log p(t) of each text, each image encoded once."""
    def score(images: Sequence[Image.Image], texts: Sequence[Sequence[str]]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for s in range(0, len(images), batch):
            tokens = judge.encode(torch.stack([judge.pil_to_pixels(im) for im in images[s:s + batch]]))  # (B, N, D)
            chunk = texts[s:s + batch]
            owner = [i for i, own in enumerate(chunk) for _ in own]
            values = judge.debiased(tokens[owner], [t for own in chunk for t in own]).numpy()
            out += np.split(values, np.cumsum([len(own) for own in chunk])[:-1])
        return out
    return score


def oracle_scorer(domain: Domain) -> PairScorer:
    """1 where the strict oracle calls the text right of the image, else 0: what a perfect judge would say."""
    def score(images: Sequence[Image.Image], texts: Sequence[Sequence[str]]) -> list[np.ndarray]:
        return [np.array([float(v is not None and v.right) for v in (domain.oracle(im, t) for t in own)])
                for im, own in zip(images, texts)]
    return score


def rank_renders(scorer: PairScorer, items: Sequence[tuple[Image.Image, str, str]], domain: Domain,
                 batch: int = 64) -> list[dict[str, Any]]:
    """Per render: whether its prompt outscores every hard negative (`hit`; a tie is a miss) and every negative of
    each kind (`by_kind`); its rank (negatives scored as high or higher); the best-scored negative, its kind, and
    the prompt's margin over it."""
    out = []
    for s in range(0, len(items), batch):
        chunk = items[s:s + batch]
        rivals = [negatives_by_kind(domain, prompt) for _, prompt, _ in chunk]
        scores = scorer([im for im, _, _ in chunk], [[prompt, *(t for _, t in r)] for (_, prompt, _), r in
                                                       zip(chunk, rivals)])
        for (_, prompt, task), r, own in zip(chunk, rivals, scores):
            kinds, neg = [k for k, _ in r], np.asarray(own[1:], dtype=float)
            best = int(np.argmax(neg)) if len(neg) else None
            out.append({"prompt": prompt, "task": task, "negatives": len(neg), "hit": bool((own[0] > neg).all()),
                        "rank": int((neg >= own[0]).sum()),  # negatives level with or above the prompt
                        "by_kind": {k: bool((own[0] > neg[[j for j, x in enumerate(kinds) if x == k]]).all())
                                    for k in dict.fromkeys(kinds)},
                        "best_negative": None if best is None else r[best][1],
                        "best_kind": None if best is None else kinds[best],
                        "margin": None if best is None else float(own[0] - neg[best])})
    return out


def _share(hits: Sequence[bool]) -> dict[str, Any]:
    x = np.asarray(hits, dtype=float)
    return bootstrap_stat(lambda i: float(x[i].mean()), len(x), n_boot=BOOT)


def _kinds(ranked: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per kind of edit: R@1 among that kind's negatives, over the renders that have some."""
    kinds = dict.fromkeys(k for r in ranked for k in r["by_kind"])
    return {k: _share([r["by_kind"][k] for r in ranked if k in r["by_kind"]]) for k in kinds}


def r_precision(ranked: Sequence[Mapping[str, Any]], tasks: Sequence[str]) -> dict[str, Any]:
    """Per task and overall: renders, R@1 among every hard negative, the mean number of negatives, R@1 per kind."""
    def section(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {"renders": len(rows), "r@1": _share([r["hit"] for r in rows]),
                "negatives": float(np.mean([r["negatives"] for r in rows])) if rows else None, "by_kind": _kinds(rows)}
    out = {task: section([r for r in ranked if r["task"] == task]) for task in tasks}
    out[OVERALL] = section(ranked)
    return out


# ---------------------------------------------------------------- the judge against the oracle, per task


def _agreement(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The judge's probability (`prob_all`) and debiased score against the strict verdict: right, or not (wrong or
    unsure); the AUROC on the images the oracle is sure of beside it."""
    prob = np.asarray([r["prob_all"] for r in rows], dtype=float)
    debiased = np.asarray([r["debiased"] for r in rows], dtype=float)
    right = np.asarray([r["overall"] == RIGHT for r in rows])
    sure = np.flatnonzero([r["overall"] != UNSURE for r in rows])
    n = len(rows)
    return {
        "images": n,
        "oracle_right": bootstrap_stat(lambda i: float(right[i].mean()), n, n_boot=BOOT),
        "unsure_rate": 1 - len(sure) / n if n else None,
        "auroc": bootstrap_stat(lambda i: auroc(prob[i], right[i]), n, n_boot=BOOT),
        "auroc_debiased": bootstrap_stat(lambda i: auroc(debiased[i], right[i]), n, n_boot=BOOT),
        "auroc_sure": bootstrap_stat(lambda i: auroc(prob[sure][i], right[sure][i]), len(sure), n_boot=BOOT),
        "ece": bootstrap_stat(lambda i: expected_calibration_error(prob[i], right[i]), n, n_boot=BOOT),
        "reliability": reliability(prob, right),
    }


def task_agreement(rows: Sequence[Mapping[str, Any]], tasks: Sequence[str]) -> dict[str, Any]:
    """_agreement per task and over every image; rows without a probability (no hard negatives) are left out."""
    scored = [r for r in rows if r["prob_all"] == r["prob_all"]]
    out = {task: _agreement([r for r in scored if r.get("task") == task]) for task in tasks}
    out[OVERALL] = _agreement(scored)
    return out


# ---------------------------------------------------------------- best-of-N per task


def _mean_of_tasks(per_task: Mapping[str, np.ndarray], seed: int = 0) -> dict[str, Any]:
    """The mean over tasks of each task's mean over prompts; its interval resamples prompts within each task."""
    arrays = [v for v in per_task.values() if len(v)]
    if not arrays:
        return {"value": None, "low": None, "high": None, "n": 0}
    rng = np.random.default_rng(seed)
    draws = np.mean([v[rng.integers(0, len(v), size=(BOOT, len(v)))].mean(axis=1) for v in arrays], axis=0)
    low, high = np.quantile(draws, [0.025, 0.975])
    return {"value": float(np.mean([v.mean() for v in arrays])), "low": float(low), "high": float(high),
            "n": int(sum(len(v) for v in arrays))}


def task_best_of_n(levels: Iterable[tuple[Sequence[Mapping[str, Any]], int]], tasks: Sequence[str],
                   counts: Sequence[int] = (1, 2, 4, 8)) -> dict[str, dict[str, Any]]:
    """{N: {task: {scorer: {value, low, high, n}}, overall: the same as a mean of the task means}} over every
    (rows, images per prompt) level whose prompts have at least N images; a group is one prompt of one level."""
    chances: dict[int, dict[str, dict[str, list[np.ndarray]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    for rows, per_prompt in levels:
        groups = groups_of(rows, per_prompt)
        for n in (n for n in counts if n <= per_prompt):
            for task in tasks:
                own = [g for g in groups if g[0].get("task") == task]
                if own:
                    for name, values in group_chances(own, n).items():
                        chances[n][task][name].append(values)
    out: dict[str, dict[str, Any]] = {}
    for n in sorted(chances):
        per_task = {task: {k: np.concatenate(v) for k, v in chances[n][task].items()} for task in tasks
                    if task in chances[n]}
        entry: dict[str, Any] = {task: chance_summary(c) for task, c in per_task.items()}
        names = [*next(iter(per_task.values())), *(f"lift_{s}" for s in SCORERS)]
        lifted = {task: c | {f"lift_{s}": c[s] - c["random"] for s in SCORERS} for task, c in per_task.items()}
        entry[OVERALL] = {name: _mean_of_tasks({t: c[name] for t, c in lifted.items()}) for name in names}
        out[str(n)] = entry
    return out


# ---------------------------------------------------------------- the table


def best_n(best: Mapping[str, Any], wanted: int) -> str | None:
    """The largest N of a task_best_of_n table up to `wanted`; None for an empty table."""
    fitting = [int(n) for n in best if int(n) <= wanted]
    return str(max(fitting)) if fitting else None


def table(clean: Mapping[str, Any] | None, agreement: Mapping[str, Any] | None, best: Mapping[str, Any] | None,
          tasks: Sequence[str], wanted: int = 4, names: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per task and one overall, with the columns of the measurements given: renders and R@1 among hard
    negatives on clean renders (`clean`, r_precision); generated images, the oracle's accuracy, the judge's AUROC
    and ECE (`agreement`, task_agreement); best-of-N by the judge, by chance, and the lift (`best`, task_best_of_n;
    N: the largest up to `wanted` the images allow). A task a measurement has nothing on shows None. Overall pools
    every render and image, except best-of-N, which is the mean of the task means (as GenEval's overall score)."""
    names = names or {}
    n = best_n(best, wanted) if best else None
    rows = []
    for key in (*tasks, OVERALL):
        row: dict[str, Any] = {"task": names.get(key, key)}
        if clean is not None:
            r1 = clean.get(key) or {}
            row |= {"renders": r1.get("renders"), "R@1 hard negatives": _value(r1, "r@1")}
        if agreement is not None:
            agree = agreement.get(key) or {}
            row |= {"images": agree.get("images"), "oracle right": _value(agree, "oracle_right"),
                    "AUROC": _value(agree, "auroc"), "ECE": _value(agree, "ece")}
        if n is not None:
            picks = best[n].get(key) or {}
            row |= {f"best-of-{n} judge": _value(picks, "judge_prob"), f"best-of-{n} random": _value(picks, "random"),
                    "lift": _value(picks, "lift_judge_prob")}
        rows.append(row)
    return rows


def _value(section: Mapping[str, Any], key: str) -> float | None:
    return (section.get(key) or {}).get("value")


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A list of same-keyed rows as a Markdown table; numbers to three decimals, a missing one as a dash."""
    if not rows:
        return ""
    def cell(v: Any) -> str:
        return "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)
    keys = list(rows[0])
    return "\n".join([f"| {' | '.join(keys)} |", "| --- " * len(keys) + "|",
                      *(f"| {' | '.join(cell(r[k]) for k in keys)} |" for r in rows)])
