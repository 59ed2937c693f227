"""`gen sample`: prompts → PNGs + metadata.jsonl + grid.png, a folder every other tool can read as a data set.

An output folder is never mixed: a non-empty --out is refused unless `overwrite`, which first removes what
an earlier `gen sample` wrote there (and the scores made from those images). metadata.jsonl is written
last and atomically, so it never names images that are not there.
"""
from __future__ import annotations

import json
import logging
import math
import re
from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor, to_pil_image
from torchvision.utils import make_grid
from tqdm.auto import tqdm

from gen import domains
from gen.core.errors import UserError
from gen.core.outputs import OutputExists, atomic_write_text, dumps, require_dir_or_missing
from gen.generator.checkpoint_pipeline import load_generator
from gen.generator.pipeline import TextToImagePipeline, sampling_defaults
from gen.generator.rerank import Scorer, best_of, candidate_seed

log = logging.getLogger(__name__)
IMAGE_NAME = re.compile(r"^\d{5}-seed-?\d+\.png$")  # what sample_to_folder names its images
# Files of a samples folder that describe its images: stale once the images are replaced.
DERIVED = ("metadata.jsonl", "grid.png", "info.json", "scores.jsonl", "summary.json", "report.html",
           "evaluation.json", "evaluation.html", "per_class_grid.png")


def check_arguments(prompts: Sequence[str], num_per_prompt: int, steps: int, guidance: float, batch_size: int,
                    candidates: int = 1, reranked: bool = False) -> None:
    """UserError for settings that would crash later or silently produce nothing."""
    if not prompts:
        raise UserError("no prompts: pass --prompt TEXT or a --prompts file with one prompt per line")
    blank = [i for i, p in enumerate(prompts, 1) if not p.strip()]
    if blank:
        raise UserError(f"prompt {blank[0]} is empty; every prompt needs some text")
    for name, value in (("--num-per-prompt", num_per_prompt), ("--steps", steps), ("--batch-size", batch_size),
                        ("--candidates", candidates)):
        if value < 1:
            raise UserError(f"{name} must be at least 1, not {value}")
    if candidates > 1 and not reranked:
        raise UserError(f"--candidates {candidates} needs --rerank (a captioner model folder, or random) to pick one")
    # 1 turns guidance off, 0 samples the unconditional model; below 0 pushes away from the prompt.
    if not math.isfinite(guidance) or guidance < 0:
        raise UserError(f"--guidance must be a finite number ≥ 0 (1: no guidance, 3: typical), not {guidance}")


def save_grid(images: Sequence[Image.Image], path: str | Path, nrow: int = 8) -> None:
    if images:
        grid = make_grid(torch.stack([pil_to_tensor(im) for im in images]), nrow=nrow, padding=2, pad_value=255)
        to_pil_image(grid).save(path)


def _earlier_outputs(out: Path) -> list[Path]:
    """What an earlier `gen sample` left in OUT: the images its metadata.jsonl names or its naming pattern
    matches (a killed run leaves images before metadata), and the files derived from them."""
    names: set[str] = {p.name for p in out.glob("*.png") if IMAGE_NAME.match(p.name)}
    meta = out / "metadata.jsonl"
    if meta.is_file():
        for line in meta.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                name = json.loads(line).get("file_name")
            except (ValueError, AttributeError):
                continue
            # Only PNGs directly in OUT: a row can never make us delete anything elsewhere.
            if isinstance(name, str) and name.endswith(".png") and Path(name).name == name:
                names.add(name)
    return [out / n for n in sorted(names) if (out / n).is_file()] + [out / n for n in DERIVED if (out / n).is_file()]


def check_output(out: Path, overwrite: bool) -> None:
    """OUT must be a folder or missing, and empty unless `overwrite`."""
    require_dir_or_missing(out)
    if not overwrite and out.is_dir() and any(out.iterdir()):
        raise OutputExists(f"--out {out} is not empty; pass --overwrite to replace the images, metadata.jsonl "
                           "and grid.png of an earlier `gen sample` there (other files are kept), or another --out")


def prepare_output(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty OUT without `overwrite`; with it, remove only what an earlier `gen sample` wrote."""
    check_output(out, overwrite)
    if out.is_dir():
        old = _earlier_outputs(out)
        for path in old:
            path.unlink()
        if old:
            log.warning("--overwrite: removed %d earlier outputs from %s", len(old), out)
    out.mkdir(parents=True, exist_ok=True)


def sample_to_folder(pipe: TextToImagePipeline, prompts: Sequence[str], out: str | Path, num_per_prompt: int = 1,
                     steps: int | None = None, guidance: float | None = None, seed: int = 0, batch_size: int = 32,
                     overwrite: bool = False, candidates: int = 1, scorer: Scorer | None = None,
                     domain: str | None = None) -> Path:
    """Image i gets seed `seed + i` (EDM's one-seed-per-image), so any single image can be re-made alone.
    `steps` and `guidance` left as None are the pipeline's saved sampling defaults.

    `domain` (gen/domains/), when given, is declared in OUT/info.json, so `caption score` knows whether the
    prompts are shapes captions (with an oracle) without guessing from their words.

    Best-of-N: with a `scorer`, image i is the best by its score of `candidates` N images with seeds
    seed + i*N + k (gen/generator/rerank.py), and its metadata.jsonl row lists every candidate's seed and score.
    """
    out = Path(out)
    # Resolved here, not left to the pipeline: metadata.jsonl records the values each image was made with.
    steps = pipe.sample_defaults.steps if steps is None else steps
    guidance = pipe.sample_defaults.guidance if guidance is None else guidance
    check_arguments(prompts, num_per_prompt, steps, guidance, batch_size, candidates, scorer is not None)
    prepare_output(out, overwrite)
    requested = [p for p in prompts for _ in range(num_per_prompt)]
    pipe.set_progress_bar_config(disable=True)
    rows, images = [], []
    group = max(1, batch_size // candidates)  # images whose candidates are sampled, then scored, together
    for start in tqdm(range(0, len(requested), group), desc="sampling", unit="batch"):
        indices = range(start, min(start + group, len(requested)))
        jobs = [(requested[i], candidate_seed(seed, i, candidates, k)) for i in indices for k in range(candidates)]
        batch = generate_images(pipe, jobs, steps, guidance, batch_size)
        scores = scorer(batch, [p for p, _ in jobs]) if scorer is not None else [float("nan")] * len(jobs)
        for n, i in enumerate(indices):
            own = slice(n * candidates, (n + 1) * candidates)
            kept = best_of(scores[own]) if scorer is not None else 0
            (prompt, s), image = jobs[own][kept], batch[own][kept]
            name = f"{i:05d}-seed{s}.png"
            image.save(out / name)
            images.append(image)
            row = {"file_name": name, "text": prompt, "seed": s, "steps": steps, "guidance": guidance,
                   "scheduler": type(pipe.scheduler).__name__}
            if scorer is not None:
                row |= {"rerank": scorer.name, "kept": kept,
                        "candidates": [{"seed": c, "score": x} for (_, c), x in zip(jobs[own], scores[own])]}
            rows.append(row)
    save_grid(images, out / "grid.png", nrow=max(num_per_prompt, 8) if num_per_prompt > 1 else 8)
    if domain is not None:
        domains.declare(out, domain)
    atomic_write_text(out / "metadata.jsonl", "".join(dumps(r) + "\n" for r in rows))  # last: names only real files
    return out


def generate_images(pipe: TextToImagePipeline, jobs: Sequence[tuple[str, int]], steps: int, guidance: float,
                    batch_size: int) -> list[Image.Image]:
    """One image per (prompt, seed), in order, `batch_size` at a time."""
    device = pipe._execution_device
    images: list[Image.Image] = []
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        gens = [torch.Generator(device).manual_seed(s) for _, s in chunk]
        images += pipe([p for p, _ in chunk], num_inference_steps=steps, guidance_scale=guidance, generator=gens).images
    return images


def sample_model(model_dir: str | Path, prompts: Sequence[str], out: str | Path, num_per_prompt: int = 1,
                 steps: int | None = None, guidance: float | None = None, seed: int = 0, batch_size: int = 32,
                 device: str | None = None, overwrite: bool = False, candidates: int = 1,
                 make_scorer: Callable[[], Scorer] | None = None, compile: bool = False,
                 checkpoint: str | Path | None = None) -> Path:
    """`gen sample`: every argument and the output folder are checked before the model (or the scorer that
    `make_scorer` builds, for best-of-N) is loaded. `steps` and `guidance` default to the model's own.
    `compile` runs the UNet through torch.compile: worth it from about 2,000 images at 10 steps on a CPU.
    `checkpoint`: a RUN_DIR/checkpoints/checkpoint-N folder of the same run, sampled with its EMA weights."""
    defaults = sampling_defaults(model_dir)  # read before loading, so bad settings are refused without the wait
    steps = defaults.steps if steps is None else steps
    guidance = defaults.guidance if guidance is None else guidance
    check_arguments(prompts, num_per_prompt, steps, guidance, batch_size, candidates, make_scorer is not None)
    check_output(Path(out), overwrite)
    if not (Path(model_dir) / "model_index.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a generator model folder (no model_index.json); "
                                "pass the model/ folder of a `gen train` run, e.g. runs/<name>/model")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = (TextToImagePipeline.from_pretrained(model_dir) if checkpoint is None
            else load_generator(model_dir, checkpoint, device=device)).for_sampling(device, compile=compile)
    scorer = make_scorer() if make_scorer is not None else None
    return sample_to_folder(pipe, prompts, out, num_per_prompt, steps, guidance, seed, batch_size, overwrite,
                            candidates, scorer, domains.of_model(model_dir))
