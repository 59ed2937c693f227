"""`gen sample --from-png`: PNGs that `gen sample` or `gen serve` wrote, drawn again from what drew them.

Each such PNG carries its prompt, negative prompt, seed, steps, guidance and scheduler (png_params.py). With
the same model they give the same pixels (up to float rounding across machines); with another model, the same
request to compare. Steps, guidance, negative prompt and scheduler given on the command line replace every
PNG's own. All PNGs are read and checked before the model loads, and OUT is written as `gen sample` writes
it (sample.py): image i is PNGS[i] drawn again, and its row names the source file.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from gen import domains
from gen.core.errors import UserError
from gen.generator.pipeline import TextToImagePipeline
from gen.generator.png_params import DrawParams, model_label, read_params
from gen.generator.sample import (MAX_IMAGES, Outputs, check_arguments, check_output, check_scheduler_name,
                                  generate_images, image_row, load_for_sampling, locked, prepare_output,
                                  require_model, trained_timesteps)
from gen.generator.schedulers import with_scheduler


def read_requests(model_dir: str | Path, pngs: Sequence[str | Path], steps: int | None = None,
                  guidance: float | None = None, negative_prompt: str | None = None,
                  scheduler: str | None = None) -> list[DrawParams]:
    """Each PNG's DrawParams, with the values given (not None) in their place, checked against MODEL_DIR as
    `gen sample`'s arguments are; a UserError names the PNG it is about."""
    if not pngs:
        raise UserError("--from-png needs at least one PNG written by `gen sample` or `gen serve`")
    if len(pngs) > MAX_IMAGES:
        raise UserError(f"--from-png: {len(pngs)} PNGs; one run draws at most {MAX_IMAGES}")
    given = {"steps": steps, "guidance": guidance, "negative_prompt": negative_prompt, "scheduler": scheduler}
    changes = {name: value for name, value in given.items() if value is not None}
    max_steps = trained_timesteps(model_dir)
    requests = []
    for png in pngs:
        params = dataclasses.replace(read_params(png), **changes)
        try:
            check_arguments([params.prompt], 1, params.steps, params.guidance, 1, seed=params.seed,
                            max_steps=max_steps, negative_prompt=params.negative_prompt)
            check_scheduler_name(model_dir, params.scheduler)
        except UserError as err:
            raise UserError(f"{png}: {err}") from None
        requests.append(params)
    return requests


def redraw_model(model_dir: str | Path, pngs: Sequence[str | Path], out: str | Path, steps: int | None = None,
                 guidance: float | None = None, negative_prompt: str | None = None, scheduler: str | None = None,
                 device: str | None = None, overwrite: bool = False, compile: bool = False,
                 checkpoint: str | Path | None = None) -> Path:
    """`gen sample MODEL --from-png PNG...`: OUT holds one image per PNG, drawn by MODEL_DIR (or its CHECKPOINT)
    from the PNG's parameters; steps, guidance, negative_prompt and scheduler, when not None, replace them."""
    requests = read_requests(model_dir, pngs, steps, guidance, negative_prompt, scheduler)
    out = Path(out)
    check_output(out, overwrite)
    require_model(model_dir)
    with locked(out):
        pipe = load_for_sampling(model_dir, checkpoint, device, compile)
        prepare_output(out, overwrite)
        model = model_label(model_dir, checkpoint)
        return _redraw(pipe, [Path(p).name for p in pngs], requests, out, model, domains.of_model(model_dir))


def _redraw(pipe: TextToImagePipeline, sources: Sequence[str], requests: Sequence[DrawParams], out: Path,
            model: str, domain: str | None) -> Path:
    """redraw_model's work, into a prepared OUT: one image at a time, as each may have its own settings."""
    pipe.set_progress_bar_config(disable=True)
    drawers: dict[str, TextToImagePipeline] = {}  # one pipeline per scheduler name, sharing the weights
    with Outputs(out, domain) as outputs:
        for i, (source, wanted) in enumerate(tqdm(list(zip(sources, requests)), desc="redrawing", unit="image")):
            if wanted.scheduler not in drawers:
                drawers[wanted.scheduler] = with_scheduler(pipe, wanted.scheduler)
            drawer = drawers[wanted.scheduler]
            [image] = generate_images(drawer, [(wanted.prompt, wanted.seed)], wanted.steps, wanted.guidance, 1,
                                      wanted.negative_prompt)
            params = dataclasses.replace(wanted, model=model)
            outputs.add_image(image, image_row(f"{i:05d}-seed{params.seed}.png", params) | {"redrawn_from": source},
                              params)
    return out
