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
from typing import Sequence

import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor, to_pil_image
from torchvision.utils import make_grid
from tqdm.auto import tqdm

from .cli import UserError
from .outputs import OutputExists, atomic_write_text, dumps, require_dir_or_missing
from .pipeline import TextToImagePipeline

log = logging.getLogger(__name__)
IMAGE_NAME = re.compile(r"^\d{5}-seed-?\d+\.png$")  # what sample_to_folder names its images
# Files of a samples folder that describe its images: stale once the images are replaced.
DERIVED = ("metadata.jsonl", "grid.png", "scores.jsonl", "summary.json", "report.html", "evaluation.json",
           "evaluation.html", "per_class_grid.png")


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per non-empty line; lines end at "\\n" only (splitlines also cuts at U+2028 or a form feed)."""
    from .records import split_lines

    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"prompts file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    return [line.strip() for line in split_lines(text) if line.strip()]


def check_arguments(prompts: Sequence[str], num_per_prompt: int, steps: int, guidance: float, batch_size: int) -> None:
    """UserError for settings that would crash later or silently produce nothing."""
    if not prompts:
        raise UserError("no prompts: pass --prompt TEXT or a --prompts file with one prompt per line")
    blank = [i for i, p in enumerate(prompts, 1) if not p.strip()]
    if blank:
        raise UserError(f"prompt {blank[0]} is empty; every prompt needs some text")
    for name, value in (("--num-per-prompt", num_per_prompt), ("--steps", steps), ("--batch-size", batch_size)):
        if value < 1:
            raise UserError(f"{name} must be at least 1, not {value}")
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
                     steps: int = 20, guidance: float = 3.0, seed: int = 0, batch_size: int = 32,
                     overwrite: bool = False) -> Path:
    """Image k gets seed `seed + k` (EDM's one-seed-per-image), so any single image can be re-made alone."""
    out = Path(out)
    check_arguments(prompts, num_per_prompt, steps, guidance, batch_size)
    prepare_output(out, overwrite)
    jobs = [(p, seed + k) for k, p in enumerate(p for p in prompts for _ in range(num_per_prompt))]
    pipe.set_progress_bar_config(disable=True)
    rows, images = [], []
    device = pipe._execution_device
    for start in tqdm(range(0, len(jobs), batch_size), desc="sampling", unit="batch"):
        chunk = jobs[start:start + batch_size]
        gens = [torch.Generator(device).manual_seed(s) for _, s in chunk]
        batch = pipe([p for p, _ in chunk], num_inference_steps=steps, guidance_scale=guidance, generator=gens).images
        for (prompt, s), image in zip(chunk, batch):
            name = f"{len(rows):05d}-seed{s}.png"
            image.save(out / name)
            images.append(image)
            rows.append({"file_name": name, "text": prompt, "seed": s, "steps": steps, "guidance": guidance,
                         "scheduler": type(pipe.scheduler).__name__})
    save_grid(images, out / "grid.png", nrow=max(num_per_prompt, 8) if num_per_prompt > 1 else 8)
    atomic_write_text(out / "metadata.jsonl", "".join(dumps(r) + "\n" for r in rows))  # last: names only real files
    return out


def sample_model(model_dir: str | Path, prompts: Sequence[str], out: str | Path, num_per_prompt: int = 1,
                 steps: int = 20, guidance: float = 3.0, seed: int = 0, batch_size: int = 32,
                 device: str | None = None, overwrite: bool = False) -> Path:
    """`gen sample`: every argument and the output folder are checked before the model is loaded."""
    check_arguments(prompts, num_per_prompt, steps, guidance, batch_size)
    check_output(Path(out), overwrite)
    if not (Path(model_dir) / "model_index.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a generator model folder (no model_index.json); "
                                "pass the model/ folder of a `gen train` run, e.g. runs/<name>/model")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    pipe = TextToImagePipeline.from_pretrained(model_dir).to(device)
    return sample_to_folder(pipe, prompts, out, num_per_prompt, steps, guidance, seed, batch_size, overwrite)
