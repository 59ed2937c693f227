"""`gen sweep`: oracle accuracy of one model (of a domain with an oracle) under several samplers and step counts.

Same prompts and seeds in every setting, so the table isolates the sampler. It is how the default
sampler setting was chosen: the cheapest one within 2 points of DDPM at 1000 steps (docs/PERFORMANCE.md).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, SchedulerMixin, UniPCMultistepScheduler

from gen.core.errors import UserError
from gen.core.outputs import atomic_write_text, refuse_existing, require_dir_or_missing
from gen.domains import of_model
from gen.evaluate.oracle import oracle_accuracy
from gen.generator.pipeline import TextToImagePipeline
from gen.generator.sample import sample_to_folder

# name → (scheduler class, extra config); built from the model's own training scheduler config.
SAMPLERS: dict[str, tuple[type[SchedulerMixin], dict[str, Any]]] = {
    "ddpm": (DDPMScheduler, {}),
    "ddim": (DDIMScheduler, {"timestep_spacing": "trailing"}),
    "dpm++": (DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2,
                                            "timestep_spacing": "trailing"}),
    "unipc": (UniPCMultistepScheduler, {"timestep_spacing": "trailing"}),
}
DEFAULT_SETTINGS = "ddpm:1000,ddim:50,dpm++:10,dpm++:15,dpm++:20,dpm++:25,unipc:10,unipc:20"


def parse_settings(text: str) -> list[tuple[str, int]]:
    """"ddim:50,dpm++:20" → [("ddim", 50), ("dpm++", 20)], with a clear error for unknown names."""
    settings = []
    for item in text.split(","):
        name, _, steps = item.strip().partition(":")
        if name not in SAMPLERS or not steps.isdigit() or int(steps) < 1:
            raise UserError(f"sampler setting {item!r} is not NAME:STEPS with NAME one of {', '.join(SAMPLERS)}")
        settings.append((name, int(steps)))
    return settings


def scheduler_for(name: str, base_config: dict[str, Any]) -> SchedulerMixin:
    cls, extra = SAMPLERS[name]
    return cls.from_config(base_config, **extra)


def sweep(model_dir: str | Path, prompts: Sequence[str], out: str | Path, settings: list[tuple[str, int]],
          num_per_prompt: int = 1, guidance: float | None = None, seed: int = 0, overwrite: bool = False,
          device: str | None = None) -> list[dict]:
    """One samples folder per setting under `out`, and rows of oracle accuracy and seconds per image.
    `guidance` None is the model's saved `sample.guidance`, so the table describes the sampler it ships with."""
    out = Path(out)
    require_dir_or_missing(out)
    if not overwrite:  # the per-setting folders refuse themselves; the table would be silently replaced
        refuse_existing([out / "sweep.json"], "gen sweep")
    pipe = TextToImagePipeline.from_pretrained(model_dir).for_sampling(device)
    guidance = pipe.sample_defaults.guidance if guidance is None else guidance
    domain = of_model(model_dir)  # the same for every setting: read the model's config once
    base = dict(pipe.scheduler.config)
    rows = []
    for name, steps in settings:
        pipe.scheduler = scheduler_for(name, base)
        folder = out / f"{name}-{steps}"
        start = time.perf_counter()
        sample_to_folder(pipe, prompts, folder, num_per_prompt, steps, guidance, seed, overwrite=overwrite,
                         domain=domain)
        seconds = time.perf_counter() - start
        acc = oracle_accuracy(folder, domain)
        rows.append({"sampler": name, "steps": steps, "guidance": guidance, **acc,
                     "seconds_per_image": seconds / acc["n"]})
        print(json.dumps(rows[-1]), flush=True)
    atomic_write_text(out / "sweep.json", json.dumps(rows, indent=2))
    return rows


def markdown(rows: list[dict], attributes: Sequence[str]) -> str:
    """The sweep as a table: one row per setting, one accuracy column per attribute of the model's domain."""
    columns = [*attributes, "all"]
    lines = ["| sampler | steps | " + " | ".join(columns) + " | s / image |", "| --- " * (len(columns) + 3) + "|"]
    lines += [f"| {r['sampler']} | {r['steps']} | " + " | ".join(f"{r[c]:.3f}" for c in columns)
              + f" | {r['seconds_per_image']:.2f} |" for r in rows]
    return "\n".join(lines)
