"""Binding: does each word of a prompt land on its own object? Prompts against their twins, by the scenes oracle.

A generator that reads its prompt as a bag of words draws the same picture for "a red circle and a blue square"
and "a blue circle and a red square": the twins use the same words. One that binds each colour to its own shape
draws each as asked. So a prompt and its twin are sampled with the same seeds (the prompt is all that differs),
and the strict oracle judges each image against its own prompt and against its twin's. The swap rate, the share
of pairs where both images are right, is what binding buys: a model that draws the same image for both twins
scores 0, since no image of one circle and one square is right for both. The position task gets the same check
with its relation flipped ("to the left of" against "to the right of"), GenEval's two binding tasks side by side.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from gen import domains
from gen.core.errors import UserError
from gen.domains import Domain

# The twin each task is checked against: one of the domain's hard-negative kinds (hard_negative_kinds).
TWINS = {"color_attr": "swap colours", "position": "flip relation"}


def twin(domain: Domain, prompt: str) -> str | None:
    """PROMPT's twin for its task (TWINS), from the domain's hard negatives; None for a task without one."""
    kind = TWINS.get(domain.task(prompt) or "")
    kinds = getattr(domain, "hard_negative_kinds", None)
    if kind is None or kinds is None:
        return None
    return next((negative for k, negative in kinds(prompt) if k == kind), None)


def twin_rows(domain: Domain, rows: Sequence[dict]) -> dict[str, list[dict]]:
    """Per task of TWINS, {"prompt", "twin", "unseen"} for every row whose prompt has a twin; a pair whose twin
    came first is kept once. `rows` are benchmark rows ({"prompt", and optionally "unseen"})."""
    found: dict[str, list[dict]] = {task: [] for task in TWINS}
    kept: set[frozenset] = set()
    for row in rows:
        other = twin(domain, row["prompt"])
        pair = frozenset((row["prompt"], other))
        if other is None or pair in kept:
            continue
        kept.add(pair)
        found[domain.task(row["prompt"])].append({"prompt": row["prompt"], "twin": other, "unseen": row.get("unseen")})
    return found


def judge_twins(domain: Domain, pair: tuple[str, str], images: tuple[Image.Image, Image.Image]
                ) -> tuple[bool, bool, bool, bool]:
    """For (prompt, twin) and their images: each image right for its own prompt, then each right for the other's.
    By the strict oracle: unsure counts as not right."""
    (a, b), (image_a, image_b) = pair, images
    return _right(domain, image_a, a), _right(domain, image_b, b), _right(domain, image_a, b), _right(domain, image_b, a)


def shares(judged: Sequence[tuple[bool, bool, bool, bool]]) -> dict[str, Any]:
    """Over judged image pairs (judge_twins):

    - right: images right for their own prompt (both twins counted);
    - swapped: pairs whose two images are both right, each for its own prompt: the change of words moved the picture;
    - crossed: images right for their twin's prompt instead, what a model that ignores the change draws half the time.
    """
    n = len(judged)
    if not n:
        return {"images": 0, "right": float("nan"), "swapped": float("nan"), "crossed": float("nan")}
    return {"images": n, "right": sum(a + b for a, b, _, _ in judged) / (2 * n),
            "swapped": sum(a and b for a, b, _, _ in judged) / n,
            "crossed": sum(x + y for _, _, x, y in judged) / (2 * n)}


def _right(domain: Domain, image: Image.Image, prompt: str) -> bool:
    verdict = domain.oracle(image, prompt)
    if verdict is None:
        raise UserError(f"the {domain.name} oracle cannot check {prompt!r}")
    return verdict.right


def binding_swaps(pipeline_or_model_dir: Any, prompts: Sequence[str] | None = None, per_prompt: int = 4,
                  steps: int | None = None, guidance: float | None = None, seed: int = 0, batch_size: int = 64,
                  device: str | None = None, domain: str = "scenes") -> dict[str, Any]:
    """Swap rates of a generator (a TextToImagePipeline, or its model folder) per binding task: colour attribution
    against its colours swapped, position against its relation flipped.

    `prompts`: any prompts of the domain (those of other tasks are left out); default: the domain's benchmark, whose
    rows say which combinations are unseen, and each task then also gets its shares over the unseen pairs alone.
    Pair i's images k = 0..per_prompt-1 have seed SEED + i*per_prompt + k, for the prompt and its twin alike.
    Returns, per task, `shares` with the twin kind, the number of prompt pairs, and per pair its own shares.
    """
    from gen.generator.pipeline import TextToImagePipeline
    from gen.generator.sample import generate_images

    if per_prompt < 1:
        raise UserError(f"per_prompt must be at least 1, not {per_prompt}")
    world = domains.get(domain)
    if not world.has_oracle:
        raise UserError(f"the {domain} domain has no pixel oracle to judge binding with")
    if prompts is None:
        benchmark = getattr(world, "benchmark", None)
        if benchmark is None:
            raise UserError(f"the {domain} domain has no benchmark prompts: pass prompts")
        rows = benchmark()
    else:
        rows = [{"prompt": p} for p in prompts]
    by_task = twin_rows(world, rows)
    if not any(by_task.values()):
        raise UserError(f"none of the prompts is a {' or '.join(TWINS)} prompt of the {domain} domain with a twin")
    if isinstance(pipeline_or_model_dir, (str, os.PathLike)):
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        pipe = TextToImagePipeline.from_pretrained(pipeline_or_model_dir).for_sampling(device)
    else:
        pipe = pipeline_or_model_dir
    pipe.set_progress_bar_config(disable=True)
    steps = pipe.sample_defaults.steps if steps is None else steps
    guidance = pipe.sample_defaults.guidance if guidance is None else guidance
    report: dict[str, Any] = {"steps": steps, "guidance": guidance, "per_prompt": per_prompt, "seed": seed}
    for task, pairs in by_task.items():
        seeds = [[seed + i * per_prompt + k for k in range(per_prompt)] for i in range(len(pairs))]
        # Per pair: its prompt's images, then its twin's, with the same seeds.
        jobs = [(text, s) for pair, own in zip(pairs, seeds) for text in (pair["prompt"], pair["twin"]) for s in own]
        flat = generate_images(pipe, jobs, steps, guidance, batch_size) if jobs else []
        report[task] = {"twin": TWINS[task], "pairs": len(pairs), **_scores(world, pairs, flat, per_prompt)}
    return report


def _scores(domain: Domain, pairs: list[dict], flat: list[Image.Image], per_prompt: int) -> dict[str, Any]:
    """`shares` over every pair, over the unseen ones where the rows say which, and per pair (each image judged once)."""
    judged = [[judge_twins(domain, (p["prompt"], p["twin"]),
                           (flat[2 * i * per_prompt + k], flat[(2 * i + 1) * per_prompt + k])) for k in range(per_prompt)]
              for i, p in enumerate(pairs)]
    out = shares([j for own in judged for j in own])
    if any(p["unseen"] is not None for p in pairs):
        out["unseen"] = shares([j for p, own in zip(pairs, judged) if p["unseen"] for j in own])
    out["rows"] = [{**p, **{k: v for k, v in shares(own).items() if k != "images"}} for p, own in zip(pairs, judged)]
    return out


def markdown(report: dict[str, Any]) -> str:
    """One row per binding task: its twin, pairs, right, swapped and crossed, over every pair and the unseen ones."""
    lines = ["| task | twin | pairs | right | swapped | crossed | swapped, unseen only |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for task in TWINS:
        cell = report.get(task)
        if not cell or not cell.get("pairs"):
            continue
        unseen = cell.get("unseen", {}).get("swapped")
        lines.append(f"| {task} | {cell['twin']} | {cell['pairs']} | {cell['right']:.3f} | {cell['swapped']:.3f} | "
                     f"{cell['crossed']:.3f} | {'' if unseen is None else f'{unseen:.3f}'} |")
    return "\n".join(lines)
