"""`gen geneval`: GenEval's per-task accuracy, by an exact pixel oracle instead of a detector.

A domain that poses tasks (scenes: `tasks`, `task`, `benchmark`, `render_prompt`) gives the prompts and the
verdicts; this module samples (or renders) images, asks the oracle, and summarises per task, for every prompt
and for the unseen combinations only, with bootstrap intervals over prompts. Overall is the mean of the task
accuracies, as GenEval reports it, so a task with many prompts does not outweigh one with few.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from gen import domains
from gen.core.errors import UserError
from gen.domains import RIGHT, Domain

OVERALL = "overall"
BOOTSTRAP = 2000  # resamples of the prompts per interval
UNREADABLE = "unreadable"


def task_domain(name: str = "scenes") -> Domain:
    """The domain, checked to pose tasks (scenes does; shapes and plain do not)."""
    domain = domains.get(name)
    if not getattr(domain, "tasks", ()):
        raise UserError(f"the {name} domain poses no GenEval tasks; `gen geneval` needs one that does (scenes)")
    return domain


def judge(domain: Domain, rows: Sequence[dict], images: Sequence[Sequence[Image.Image]]) -> list[dict]:
    """Per prompt row, the strict verdict of each of its images (right / wrong / unsure; an image that could not
    be read, None, is "unreadable" and counts as not right)."""
    judged = []
    for row, own in zip(rows, images):
        verdicts = [None if image is None else domain.oracle(image, row["prompt"]) for image in own]
        judged.append({**row, "verdicts": [v.attributes[row["task"]] if v is not None else UNREADABLE
                                           for v in verdicts]})
    return judged


def summarise(judged: Sequence[dict], tasks: Sequence[str], seed: int = 0) -> dict[str, Any]:
    """Per task (and overall): accuracy, 95% interval, prompts and images, unsure share; for all prompts and for
    the unseen ones (a task with no unseen prompt, such as single object, counts all of its prompts there)."""
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for view in ("all", "unseen"):
        by_task: dict[str, list[np.ndarray]] = defaultdict(list)
        unsure: dict[str, list[float]] = defaultdict(list)
        has_unseen = {r["task"] for r in judged if r.get("unseen")}
        for r in judged:
            if view == "unseen" and r["task"] in has_unseen and not r.get("unseen"):
                continue
            by_task[r["task"]].append(np.array([v == RIGHT for v in r["verdicts"]], dtype=float))
            unsure[r["task"]] += [v == "unsure" for v in r["verdicts"]]
        table = {}
        for task in tasks:
            if not by_task.get(task):
                continue
            accuracy = float(np.concatenate(by_task[task]).mean())
            low, high = np.percentile(_draws(by_task[task], rng), [2.5, 97.5])
            table[task] = {"accuracy": accuracy, "interval": (float(low), float(high)),
                           "prompts": len(by_task[task]), "images": int(sum(len(p) for p in by_task[task])),
                           "unsure": float(np.mean(unsure[task])), "held_out": task in has_unseen}
        if table:
            # Overall's interval: every task resampled at once, then the mean of the task means.
            draws = np.mean([_draws(by_task[t], rng) for t in table], axis=0)
            table[OVERALL] = {"accuracy": float(np.mean([table[t]["accuracy"] for t in tasks if t in table])),
                              "interval": tuple(float(x) for x in np.percentile(draws, [2.5, 97.5])),
                              "prompts": sum(table[t]["prompts"] for t in tasks if t in table),
                              "images": sum(table[t]["images"] for t in tasks if t in table)}
        out[view] = table
    return out


def _draws(per_prompt: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """BOOTSTRAP resampled means of one task's per-image accuracy, prompts kept whole."""
    hits = np.array([p.sum() for p in per_prompt])
    counts = np.array([len(p) for p in per_prompt])
    picks = rng.integers(0, len(per_prompt), size=(BOOTSTRAP, len(per_prompt)))
    return hits[picks].sum(axis=1) / counts[picks].sum(axis=1)


def markdown(summary: dict[str, Any], names: dict[str, str] | None = None, targets: dict[str, float] | None = None) -> str:
    """The per-task table: strict accuracy with its 95% interval, for the unseen view and for every prompt."""
    names = names or {}
    lines = ["| task | unseen only (95% interval) | prompts × images | all prompts | unsure |"
             + (" target |" if targets else ""),
             "| --- | --- | --- | --- | --- |" + (" --- |" if targets else "")]
    for task, cell in summary["unseen"].items():
        every = summary["all"].get(task, {})
        low, high = cell["interval"]
        seen_note = "" if cell.get("held_out", True) else " (none held out)"
        row = (f"| {names.get(task, task)}{seen_note} | **{cell['accuracy']:.3f}** ({low:.3f}–{high:.3f}) | "
               f"{cell['prompts']} × {cell['images'] // max(cell['prompts'], 1)} | {every.get('accuracy', float('nan')):.3f} | "
               f"{cell.get('unsure', float('nan')):.3f} |")
        if targets:
            goal = targets.get(task)
            row += f" {'≥ %.2f' % goal if goal is not None else ''} |"
        lines.append(row)
    return "\n".join(lines)


def render_images(domain: Domain, rows: Sequence[dict], per_prompt: int, size: int, seed: int) -> list[list[Image.Image]]:
    """Clean renders, `per_prompt` per row, each from its own generator (seed, row, k)."""
    return [[domain.render_prompt(r["prompt"], size, np.random.default_rng([seed, i, k])) for k in range(per_prompt)]
            for i, r in enumerate(rows)]

