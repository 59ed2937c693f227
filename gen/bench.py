"""`gen bench`: training steps/s per precision and sampling images/s for a config. A measurement, not a test."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed

from . import config as config_io
from .config import GenConfig
from .data import EpochBatchSampler, collate
from .train import GenTask


def _train_rate(cfg: GenConfig, precision: str, steps: int, run_dir: Path) -> float:
    set_seed(0)
    task = GenTask(cfg, run_dir)
    AcceleratorState._reset_state(reset_partial_state=True)  # the precision is fixed per state; one per run here
    accelerator = Accelerator(mixed_precision=precision)
    model = task.model.to(accelerator.device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    model, opt = accelerator.prepare(model, opt)
    batches = iter(EpochBatchSampler(len(task.dataset), cfg.train.batch_size, 0))
    for i in range(steps + 3):  # 3 warm-up steps: allocator and kernel selection
        if i == 3:
            start = time.perf_counter()
        loss = task.loss(model, collate([task.dataset[k] for k in next(batches)]))
        accelerator.backward(loss)
        opt.step()
        opt.zero_grad(set_to_none=True)
    return steps / (time.perf_counter() - start)


def _sample_rate(cfg: GenConfig, run_dir: Path, n: int = 32) -> float:
    task = GenTask(cfg, run_dir)
    pipe = task.pipeline(task.model.eval())
    pipe.set_progress_bar_config(disable=True)
    prompts = (cfg.sample.prompts or ["a red circle on the left"]) * n
    pipe(prompts[:2], num_inference_steps=2)
    start = time.perf_counter()
    pipe(prompts[:n], num_inference_steps=cfg.sample.steps, guidance_scale=cfg.sample.guidance)
    return n / (time.perf_counter() - start)


def bench(config_path: str, overrides: list[str], steps: int = 20, precisions: list[str] | None = None) -> dict:
    cfg = config_io.load(GenConfig, config_path, overrides)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for precision in precisions or ["no", "bf16"]:
            rate = _train_rate(cfg, precision, steps, Path(tmp))
            results[f"train_steps_per_s[{precision}]"] = rate
            results[f"train_images_per_s[{precision}]"] = rate * cfg.train.batch_size
        results[f"sample_images_per_s[{cfg.sample.steps} steps, cfg]"] = _sample_rate(cfg, Path(tmp))
    print(f"{config_path}  threads={torch.get_num_threads()}  batch={cfg.train.batch_size}  "
          f"device={'cuda' if torch.cuda.is_available() else 'cpu'}")
    for k, v in results.items():
        print(f"  {k:40s} {v:8.2f}")
    return results
