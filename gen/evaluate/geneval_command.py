"""What `gen geneval` does: sample a model on the benchmark's prompts (or render them), judge, write the tables.

OUT/samples is an ordinary `gen sample` folder (metadata.jsonl, info.json declaring the domain), so the
captioner's tools can score the same images; OUT/geneval.json holds every verdict and the summary, and
OUT/geneval.md the table that is printed.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gen.core.outputs import atomic_write_text, dumps, refuse_existing, require_dir_or_missing
from gen.data import SkipLog, read_folder, read_record_rgb
from gen.evaluate.geneval import judge, markdown, render_images, summarise, task_domain

log = logging.getLogger(__name__)


def geneval(out: str | Path, model_dir: str | Path | None = None, prompts: str | Path | None = None,
            per_prompt: int = 4, steps: int | None = None, guidance: float | None = None, seed: int = 0,
            batch_size: int = 64, device: str | None = None, render_size: int = 48, overwrite: bool = False,
            domain_name: str = "scenes", limit: int | None = None,
            checkpoint: str | Path | None = None) -> dict[str, Any]:
    """Judge `per_prompt` images of every benchmark prompt; without a model, clean renders (the oracle's own check).

    `limit` keeps the first N prompts of each task (a quick look; the full file is the benchmark). `checkpoint`:
    a checkpoint of MODEL_DIR's run instead of its exported weights (its EMA weights, as the export has)."""
    domain = task_domain(domain_name)
    out = Path(out)
    require_dir_or_missing(out)
    if not overwrite:
        refuse_existing([out / "geneval.json", out / "geneval.md", out / "samples"], "gen geneval")
    rows = domain.benchmark(prompts)
    if limit is not None:
        rows = [r for task in domain.tasks for r in [x for x in rows if x["task"] == task][:limit]]
    if model_dir is None:
        images = render_images(domain, rows, per_prompt, render_size, seed)
        source = {"renders": True, "size": render_size}
    else:
        images, source = _sampled(model_dir, rows, out / "samples", per_prompt, steps, guidance, seed, batch_size,
                                  device, overwrite, checkpoint)
    judged = judge(domain, rows, images)
    summary = summarise(judged, domain.tasks, seed)
    names = getattr(domain, "task_names", {})
    table = markdown(summary, names, getattr(domain, "targets", None) if model_dir is not None else None)
    out.mkdir(parents=True, exist_ok=True)
    report = {"source": source, "prompts_file": str(prompts or "the committed benchmark"), "per_prompt": per_prompt,
              "summary": summary, "rows": judged}
    atomic_write_text(out / "geneval.json", dumps(report, indent=1) + "\n")
    atomic_write_text(out / "geneval.md", table + "\n")
    _grids(out, judged, images)
    return report | {"table": table}


def _sampled(model_dir: str | Path, rows: list[dict], samples: Path, per_prompt: int, steps: int | None,
             guidance: float | None, seed: int, batch_size: int, device: str | None,
             overwrite: bool, checkpoint: str | Path | None = None) -> tuple[list[list[Image.Image]], dict[str, Any]]:
    """`gen sample` of every prompt, `per_prompt` times (image i: seed SEED + i), read back in order."""
    from gen.generator.sample import sample_model

    sample_model(model_dir, [r["prompt"] for r in rows], samples, per_prompt, steps, guidance, seed, batch_size,
                 device, overwrite, checkpoint=checkpoint)
    skips = SkipLog()
    records = read_folder(samples, skips=skips)
    flat = [read_record_rgb(r, skips) for r in records]  # an unreadable image stays a None: judged not right
    meta = records[0].meta if records else {}
    source = {"model": str(model_dir), "checkpoint": str(checkpoint) if checkpoint else None, "steps": meta.get("steps"), "guidance": meta.get("guidance"),
              "scheduler": meta.get("scheduler"), "seed": seed, "skipped": skips.summary()}
    return [flat[i * per_prompt:(i + 1) * per_prompt] for i in range(len(rows))], source


def _grids(out: Path, judged: list[dict], images: list[list[Image.Image]], per_task: int = 8) -> None:
    """OUT/grid-TASK.png: the first prompts of each task, one row each, a red bar under images judged not right."""
    by_task: dict[str, list[int]] = {}
    for i, r in enumerate(judged):
        by_task.setdefault(r["task"], []).append(i)
    for task, indices in by_task.items():
        picked = indices[:per_task]
        cols = max(len(images[i]) for i in picked)
        side = next((im.width for i in picked for im in images[i] if im is not None), 48)
        cell = side * 2
        canvas = np.full((len(picked) * (cell + 4), cols * (cell + 4), 3), 255, dtype=np.uint8)
        for r, i in enumerate(picked):
            for c, (image, verdict) in enumerate(zip(images[i], judged[i]["verdicts"])):
                if image is None:
                    continue
                y, x = r * (cell + 4), c * (cell + 4)
                canvas[y:y + cell, x:x + cell] = np.asarray(image.convert("RGB").resize((cell, cell), Image.NEAREST))
                canvas[y + cell:y + cell + 3, x:x + cell] = (40, 170, 60) if verdict == "right" else (210, 40, 40)
        Image.fromarray(canvas).save(out / f"grid-{task}.png")
    log.info("wrote %s", ", ".join(f"grid-{t}.png" for t in by_task))
