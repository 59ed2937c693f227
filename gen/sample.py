"""`gen sample`: prompts → PNGs + metadata.jsonl + grid.png, a folder every other tool can read as a data set."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor, to_pil_image
from torchvision.utils import make_grid
from tqdm.auto import tqdm

from .pipeline import TextToImagePipeline


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per non-empty line; lines end at "\\n" only (splitlines also cuts at U+2028 or a form feed)."""
    from .records import split_lines

    return [line.strip() for line in split_lines(Path(path).read_text(encoding="utf-8")) if line.strip()]


def save_grid(images: Sequence[Image.Image], path: str | Path, nrow: int = 8) -> None:
    if images:
        grid = make_grid(torch.stack([pil_to_tensor(im) for im in images]), nrow=nrow, padding=2, pad_value=255)
        to_pil_image(grid).save(path)


def sample_to_folder(pipe: TextToImagePipeline, prompts: Sequence[str], out: str | Path, num_per_prompt: int = 1,
                     steps: int = 20, guidance: float = 3.0, seed: int = 0, batch_size: int = 32) -> Path:
    """Image k gets seed `seed + k` (EDM's one-seed-per-image), so any single image can be re-made alone."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
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
    with open(out / "metadata.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    save_grid(images, out / "grid.png", nrow=max(num_per_prompt, 8) if num_per_prompt > 1 else 8)
    return out
