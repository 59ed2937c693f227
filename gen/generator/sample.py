"""`gen sample`: prompts → PNGs + metadata.jsonl + grid.png, a folder every other tool can read as a data set.

An output folder is never mixed or clobbered. A second `gen sample` into a folder being written is refused
(OUT/.lock, the run folders' lock). A non-empty --out is refused unless `overwrite`, which removes only the
files an earlier `gen sample` listed in its manifest (MANIFEST): every file this command writes is listed
there before it is written, so nothing it did not write is ever deleted. metadata.jsonl gets each image's
row right after its PNG, so a run stopped part way leaves a folder whose rows name exactly its images.
Every PNG also carries what drew it (gen/generator/png_params.py), so `gen sample --from-png` can draw it again.
"""
from __future__ import annotations

import json
import logging
import math
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence, TextIO

import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor, to_pil_image
from torchvision.utils import make_grid
from tqdm.auto import tqdm

from gen import domains
from gen.core.errors import UserError
from gen.core.outputs import OutputExists, dumps, require_dir_or_missing
from gen.generator.checkpoint_pipeline import load_generator
from gen.generator.pipeline import TextToImagePipeline, sampling_defaults
from gen.generator.png_params import MAX_PROMPT, MAX_SEED, DrawParams, model_label, save_png
from gen.generator.rerank import Scorer, best_of, candidate_seed
from gen.generator.schedulers import build_scheduler, saved_scheduler, with_scheduler
from gen.training.rundir import LOCK_NAME, RunDirLock

log = logging.getLogger(__name__)
IMAGE_NAME = re.compile(r"^\d{5}-seed-?\d+\.png$")  # what sample_to_folder names its images
MANIFEST = ".gen_sample_manifest.txt"  # one name per line: every file a `gen sample` wrote into OUT
OWN_FILES = ("metadata.jsonl", "grid.png", domains.INFO)  # what it writes besides the images and the manifest
# Bounds on the work one run may ask for; beyond them an argument is a typo far more often than a plan.
MAX_IMAGES = 100_000  # hours of sampling even on a GPU; a bigger job is several --out folders with other --seed
MAX_CANDIDATES = 64  # each candidate is a full sample; best-of-N gains level off by N = 8 (docs/judge.md)
MAX_GUIDANCE = 100.0  # useful scales are 1-10; far above, the guided prediction leaves the pixel range (all black)
GRID_IMAGES = 64  # grid.png shows the first 64 images: a preview, not a second copy of the folder


def check_arguments(prompts: Sequence[str], num_per_prompt: int, steps: int, guidance: float, batch_size: int,
                    candidates: int = 1, reranked: bool = False, seed: int = 0,
                    max_steps: int | None = None, negative_prompt: str = "") -> None:
    """UserError for settings that would crash later, silently produce nothing, or run without end.
    `max_steps`: the scheduler's num_train_timesteps, when known (a sampler cannot take more steps)."""
    if not prompts:
        raise UserError("no prompts: pass --prompt TEXT or a --prompts file with one prompt per line")
    blank = [i for i, p in enumerate(prompts, 1) if not p.strip()]
    if blank:
        raise UserError(f"prompt {blank[0]} is empty; every prompt needs some text")
    # Each PNG carries its prompts (png_params.py), which a reader takes only up to MAX_PROMPT characters.
    long = [i for i, p in enumerate(prompts, 1) if len(p) > MAX_PROMPT]
    if long:
        raise UserError(f"prompt {long[0]} is {len(prompts[long[0] - 1])} characters long; at most {MAX_PROMPT}")
    if len(negative_prompt) > MAX_PROMPT:
        raise UserError(f"--negative-prompt is {len(negative_prompt)} characters long; at most {MAX_PROMPT}")
    for name, value in (("--num-per-prompt", num_per_prompt), ("--steps", steps), ("--batch-size", batch_size),
                        ("--candidates", candidates)):
        if value < 1:
            raise UserError(f"{name} must be at least 1, not {value}")
    images = len(prompts) * num_per_prompt
    if images > MAX_IMAGES:
        raise UserError(f"{len(prompts)} prompt(s) × --num-per-prompt {num_per_prompt} = {images} images; one run "
                        f"makes at most {MAX_IMAGES} (hours of sampling): split the job into several --out folders "
                        "with seeds that do not overlap")
    if candidates > MAX_CANDIDATES:
        raise UserError(f"--candidates {candidates}: at most {MAX_CANDIDATES}; each candidate costs a full sample "
                        "and best-of-N gains level off by 8 (docs/judge.md)")
    if candidates > 1 and not reranked:
        raise UserError(f"--candidates {candidates} needs --rerank (a captioner model folder, or random) to pick one")
    if max_steps is not None and steps > max_steps:
        raise UserError(f"--steps {steps} is more than the model's {max_steps} noise levels (its scheduler's "
                        f"num_train_timesteps); pass at most {max_steps}")
    last_seed = MAX_SEED - images * candidates
    if not 0 <= seed <= last_seed:
        raise UserError(f"--seed must be in [0, {last_seed}], so that every image's seed (SEED + i, or SEED + i*N + k "
                        f"with --candidates N) fits a signed 64-bit integer; not {seed}")
    # 1 turns guidance off, 0 samples the unconditional model; below 0 pushes away from the prompt.
    if not math.isfinite(guidance) or guidance < 0:
        raise UserError(f"--guidance must be a finite number ≥ 0 (1: no guidance, 3: typical), not {guidance}")
    if guidance > MAX_GUIDANCE:
        raise UserError(f"--guidance {guidance:g} is above {MAX_GUIDANCE:g}: that far past the prompt the prediction "
                        "leaves the pixel range and every image saturates (all black); 1: no guidance, 3: typical")


def trained_timesteps(model_dir: str | Path) -> int | None:
    """num_train_timesteps of a model folder's saved scheduler, read without loading the model; None if unknown."""
    try:
        config = json.loads((Path(model_dir) / "scheduler" / "scheduler_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    value = config.get("num_train_timesteps") if isinstance(config, dict) else None
    return value if isinstance(value, int) else None


def save_grid(images: Sequence[Image.Image], path: str | Path) -> None:
    """A near-square preview of the first GRID_IMAGES images: ceil(sqrt(n)) columns, so its size stays bounded."""
    shown = list(images[:GRID_IMAGES])
    if shown:
        grid = make_grid(torch.stack([pil_to_tensor(im) for im in shown]), nrow=math.ceil(math.sqrt(len(shown))),
                         padding=2, pad_value=255)
        to_pil_image(grid).save(path)


def listed_outputs(out: Path) -> set[str]:
    """The files an earlier `gen sample` wrote into OUT, by its manifest. Only plain names directly in OUT: an
    edited manifest can never make --overwrite delete anything elsewhere."""
    manifest = out / MANIFEST
    if not manifest.is_file():
        return set()
    names = manifest.read_text(encoding="utf-8", errors="replace").splitlines()
    return {n for n in names if n not in ("", ".", "..", MANIFEST, LOCK_NAME) and Path(n).name == n}


def check_output(out: Path, overwrite: bool) -> None:
    """OUT must be a folder or missing, and empty unless `overwrite`. With it, OUT must hold no file named like
    what `gen sample` writes that its manifest does not list: that file is someone else's, and replacing it
    would delete it."""
    require_dir_or_missing(out)
    present = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME) if out.is_dir() else []
    if present and not overwrite:
        raise OutputExists(f"--out {out} is not empty; pass --overwrite to replace what an earlier `gen sample` "
                           f"wrote there (the files its {MANIFEST} lists; other files are kept), or another --out")
    listed = listed_outputs(out) if present else set()
    foreign = [n for n in present if (n in OWN_FILES or IMAGE_NAME.match(n)) and n not in listed]
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise OutputExists(f"--out {out} holds {', '.join(foreign[:3])}{more}, which `gen sample` would write but "
                           f"no earlier `gen sample` there listed in {MANIFEST} as its own; --overwrite deletes "
                           "only what gen sample wrote: move them away, or pass another --out")


def prepare_output(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty OUT without `overwrite`; with it, remove only the files the manifest lists."""
    check_output(out, overwrite)
    if out.is_dir():
        old = [out / n for n in sorted(listed_outputs(out)) if (out / n).is_file() or (out / n).is_symlink()]
        for path in old:
            path.unlink()
        (out / MANIFEST).unlink(missing_ok=True)
        if old:
            log.warning("--overwrite: removed %d files an earlier `gen sample` wrote in %s", len(old), out)
    out.mkdir(parents=True, exist_ok=True)


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold OUT/.lock (the run folders' lock) while sampling: a second `gen sample` into OUT is refused while
    this one writes. A folder this made and left empty (the run stopped before writing) is removed again."""
    require_dir_or_missing(out)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with RunDirLock(out):
            yield
    finally:
        if made and not any(out.iterdir()):
            out.rmdir()


class Outputs:
    """OUT's files, written so that a run stopped at any point leaves a consistent folder: each file is listed in
    the manifest (flushed) before it is created, and each image's metadata.jsonl row is appended (flushed) right
    after its PNG. A hard kill between the two leaves at most that one image without a row, which readers of
    metadata.jsonl never see and the manifest lets --overwrite remove. `domain`, when given, is declared in
    OUT/info.json; grid.png is written when the block ends without an error."""

    def __init__(self, out: Path, domain: str | None = None) -> None:
        self.out = out
        self.manifest: TextIO = open(out / MANIFEST, "w", encoding="utf-8")
        self.metadata: TextIO = open(self.claim("metadata.jsonl"), "x", encoding="utf-8")
        self.shown: list[Image.Image] = []  # only what grid.png shows: memory stays bounded however many images
        if domain is not None:
            try:
                self.claim(domains.INFO)
                domains.declare(out, domain)
            except BaseException:
                self.close()
                raise

    def claim(self, name: str) -> Path:
        self.manifest.write(name + "\n")
        self.manifest.flush()
        return self.out / name

    def add_image(self, image: Image.Image, row: dict, params: DrawParams) -> None:
        save_png(image, self.claim(row["file_name"]), params)
        self.metadata.write(dumps(row) + "\n")
        self.metadata.flush()
        if len(self.shown) < GRID_IMAGES:
            self.shown.append(image)

    def close(self) -> None:
        self.metadata.close()
        self.manifest.close()

    def __enter__(self) -> "Outputs":
        return self

    def __exit__(self, error: type[BaseException] | None, *exc: object) -> None:
        try:
            if error is None:
                save_grid(self.shown, self.claim("grid.png"))
        finally:
            self.close()


def sample_to_folder(pipe: TextToImagePipeline, prompts: Sequence[str], out: str | Path, num_per_prompt: int = 1,
                     steps: int | None = None, guidance: float | None = None, seed: int = 0, batch_size: int = 32,
                     overwrite: bool = False, candidates: int = 1, scorer: Scorer | None = None,
                     domain: str | None = None, negative_prompt: str = "") -> Path:
    """Image i gets seed `seed + i` (EDM's one-seed-per-image), so any single image can be re-made alone.
    `steps` and `guidance` left as None are the pipeline's saved sampling defaults. `negative_prompt` is what
    guidance steers away from (the unconditional half of classifier-free guidance), the same for every image.

    `domain` (gen/domains/), when given, is declared in OUT/info.json, so `caption score` knows whether the
    prompts are shapes captions (with an oracle) without guessing from their words.

    Best-of-N: with a `scorer`, image i is the best by its score of `candidates` N images with seeds
    seed + i*N + k (gen/generator/rerank.py), and its metadata.jsonl row lists every candidate's seed and score.
    """
    out = Path(out)
    # Resolved here, not left to the pipeline: metadata.jsonl records the values each image was made with.
    steps = pipe.sample_defaults.steps if steps is None else steps
    guidance = pipe.sample_defaults.guidance if guidance is None else guidance
    check_arguments(prompts, num_per_prompt, steps, guidance, batch_size, candidates, scorer is not None, seed,
                    pipe.scheduler.config.get("num_train_timesteps"), negative_prompt)
    model = model_label(pipe.name_or_path) if pipe.name_or_path else ""  # "" for a pipeline built in memory
    with locked(out):
        return _write_samples(pipe, prompts, out, num_per_prompt, steps, guidance, seed, batch_size, overwrite,
                              candidates, scorer, domain, negative_prompt, model)


def _write_samples(pipe: TextToImagePipeline, prompts: Sequence[str], out: Path, num_per_prompt: int, steps: int,
                   guidance: float, seed: int, batch_size: int, overwrite: bool, candidates: int,
                   scorer: Scorer | None, domain: str | None, negative_prompt: str, model: str) -> Path:
    """sample_to_folder's work, with OUT locked and every argument checked. `model` labels the PNGs."""
    prepare_output(out, overwrite)
    requested = [p for p in prompts for _ in range(num_per_prompt)]
    pipe.set_progress_bar_config(disable=True)
    with Outputs(out, domain) as outputs:
        group = max(1, batch_size // candidates)  # images whose candidates are sampled, then scored, together
        for start in tqdm(range(0, len(requested), group), desc="sampling", unit="batch"):
            indices = range(start, min(start + group, len(requested)))
            jobs = [(requested[i], candidate_seed(seed, i, candidates, k)) for i in indices for k in range(candidates)]
            batch = generate_images(pipe, jobs, steps, guidance, batch_size, negative_prompt)
            scores = scorer(batch, [p for p, _ in jobs]) if scorer is not None else [float("nan")] * len(jobs)
            for n, i in enumerate(indices):
                own = slice(n * candidates, (n + 1) * candidates)
                kept = best_of(scores[own]) if scorer is not None else 0
                (prompt, s), image = jobs[own][kept], batch[own][kept]
                params = DrawParams(prompt, s, steps, guidance, negative_prompt, type(pipe.scheduler).__name__, model)
                row = image_row(f"{i:05d}-seed{s}.png", params)
                if scorer is not None:
                    row |= {"rerank": scorer.name, "kept": kept,
                            "candidates": [{"seed": c, "score": x} for (_, c), x in zip(jobs[own], scores[own])]}
                outputs.add_image(image, row, params)
    return out


def image_row(file_name: str, params: DrawParams) -> dict:
    """An image's metadata.jsonl row: what drew it, less the model; `negative_prompt` only when there is one,
    so rows without one read as before."""
    row = {"file_name": file_name, "text": params.prompt, "seed": params.seed, "steps": params.steps,
           "guidance": params.guidance, "scheduler": params.scheduler}
    return row | ({"negative_prompt": params.negative_prompt} if params.negative_prompt else {})


def generate_images(pipe: TextToImagePipeline, jobs: Sequence[tuple[str, int]], steps: int, guidance: float,
                    batch_size: int, negative_prompt: str = "") -> list[Image.Image]:
    """One image per (prompt, seed), in order, `batch_size` at a time."""
    device = pipe._execution_device
    images: list[Image.Image] = []
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        gens = [torch.Generator(device).manual_seed(s) for _, s in chunk]
        images += pipe([p for p, _ in chunk], negative_prompt=negative_prompt, num_inference_steps=steps,
                       guidance_scale=guidance, generator=gens).images
    return images


def sample_model(model_dir: str | Path, prompts: Sequence[str], out: str | Path, num_per_prompt: int = 1,
                 steps: int | None = None, guidance: float | None = None, seed: int = 0, batch_size: int = 32,
                 device: str | None = None, overwrite: bool = False, candidates: int = 1,
                 make_scorer: Callable[[], Scorer] | None = None, compile: bool = False,
                 checkpoint: str | Path | None = None, negative_prompt: str = "",
                 scheduler: str | None = None) -> Path:
    """`gen sample`: every argument and the output folder are checked, and OUT is locked, before the model (or
    the scorer that `make_scorer` builds, for best-of-N) is loaded. `steps` and `guidance` default to the model's
    own. `compile` runs the UNet through torch.compile: worth it from about 2,000 images at 10 steps on a CPU.
    `checkpoint`: a RUN_DIR/checkpoints/checkpoint-N folder of the same run, sampled with its EMA weights.
    `scheduler`: a diffusers scheduler class name to sample with instead of the model's own (schedulers.py)."""
    defaults = sampling_defaults(model_dir)  # read before loading, so bad settings are refused without the wait
    steps = defaults.steps if steps is None else steps
    guidance = defaults.guidance if guidance is None else guidance
    check_arguments(prompts, num_per_prompt, steps, guidance, batch_size, candidates, make_scorer is not None, seed,
                    trained_timesteps(model_dir), negative_prompt)
    check_scheduler_name(model_dir, scheduler)
    out = Path(out)
    check_output(out, overwrite)
    require_model(model_dir)
    with locked(out):
        pipe = load_for_sampling(model_dir, checkpoint, device, compile)
        if scheduler is not None:
            pipe = with_scheduler(pipe, scheduler)
        scorer = make_scorer() if make_scorer is not None else None
        return _write_samples(pipe, prompts, out, num_per_prompt, steps, guidance, seed, batch_size, overwrite,
                              candidates, scorer, domains.of_model(model_dir), negative_prompt,
                              model_label(model_dir, checkpoint))


def check_scheduler_name(model_dir: str | Path, scheduler: str | None) -> None:
    """UserError for a scheduler name the model's saved scheduler cannot be swapped for, before the model loads."""
    saved = saved_scheduler(model_dir) if scheduler is not None else None
    if saved is not None:
        build_scheduler(saved, scheduler)


def require_model(model_dir: str | Path) -> None:
    if not (Path(model_dir) / "model_index.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a generator model folder (no model_index.json); "
                                "pass the model/ folder of a `gen train` run, e.g. runs/<name>/model")


def load_for_sampling(model_dir: str | Path, checkpoint: str | Path | None = None, device: str | None = None,
                      compile: bool = False) -> TextToImagePipeline:
    """MODEL_DIR's pipeline (with CHECKPOINT's EMA weights when given) on DEVICE, laid out for sampling."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = (TextToImagePipeline.from_pretrained(model_dir) if checkpoint is None
            else load_generator(model_dir, checkpoint, device=device))
    return pipe.for_sampling(device, compile=compile)
