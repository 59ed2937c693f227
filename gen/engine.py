"""The training loop both models share: accelerate, AdamW + warm-up/cosine, EMA, checkpoints, TensorBoard.

A task supplies the model, the data, a loss and what to do at evaluation and export; this file owns the
loop, so `gen` and `caption` train, resume and log the same way.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from .checkpoint import Checkpoints, read_training_state, write_training_state
from .config import TrainConfig
from .data import EpochBatchSampler, ImageCaptionDataset, collate

log = logging.getLogger(__name__)


class Task(Protocol):
    model: torch.nn.Module  # everything the loss touches; frozen parts have requires_grad=False
    dataset: ImageCaptionDataset
    lr_scale: dict[str, float]  # parameter-name prefix → multiplier on cfg.lr; unmatched parameters get 1

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor: ...

    def evaluate(self, model: torch.nn.Module, step: int, writer: SummaryWriter | None) -> dict[str, float]: ...

    def export(self, model: torch.nn.Module, out: Path) -> None: ...


def _loader(dataset: ImageCaptionDataset, cfg: TrainConfig, start_batch: int, accelerator: Accelerator,
            num_workers: int) -> DataLoader:
    sampler = EpochBatchSampler(len(dataset), cfg.batch_size, cfg.seed, start_batch,
                                accelerator.process_index, accelerator.num_processes)
    # Its own generator: creating a DataLoader iterator draws a worker seed, which must not move the
    # global RNG (a resumed run creates the iterator at a different step than an uninterrupted one).
    gen = torch.Generator().manual_seed(cfg.seed)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers, generator=gen)


def param_groups(model: torch.nn.Module, lr: float, lr_scale: dict[str, float]) -> list[dict[str, Any]]:
    """Trainable parameters grouped by learning rate: lr × the scale of the first matching name prefix."""
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            scale = next((s for prefix, s in lr_scale.items() if name.startswith(prefix)), 1.0)
            groups.setdefault(scale, []).append(p)
    return [{"params": ps, "lr": lr * scale} for scale, ps in groups.items()]


def _any_process(flag: bool, accelerator: Accelerator) -> bool:
    """True on every process if it is true on one: clocks differ, and all must stop at the same step."""
    if accelerator.num_processes == 1:
        return flag
    return bool(accelerator.reduce(torch.tensor([float(flag)], device=accelerator.device), reduction="max").item())


def fit(task: Task, cfg: TrainConfig, run_dir: Path, resume: str | None = None, num_workers: int = 0) -> dict[str, float]:
    """Train `task.model` to cfg.max_steps (or cfg.max_minutes), then export EMA weights to RUN_DIR/model."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum)
    set_seed(cfg.seed)
    model = task.model.to(accelerator.device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(param_groups(model, cfg.lr, task.lr_scale), lr=cfg.lr,
                                  weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    lr_schedule = get_scheduler("cosine", optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.max_steps)
    # Power-law EMA warm-up (Karras et al.): short CPU runs still get a useful average.
    ema = EMAModel(params, decay=cfg.ema_decay, use_ema_warmup=True, power=cfg.ema_power)
    ckpts = Checkpoints(run_dir, cfg.keep_last)

    step = 0
    if resume:
        folder = ckpts.resolve(resume)
        opt_state, info = read_training_state(folder, model, ema)
        optimizer.load_state_dict(opt_state["optimizer"])
        lr_schedule.load_state_dict(opt_state["lr_scheduler"])
        step = info["step"]
        log.info("resumed from %s at step %d", folder, step)
    ema.to(accelerator.device)
    prepared, optimizer = accelerator.prepare(model, optimizer)
    writer = SummaryWriter(str(run_dir / "logs"), purge_step=step or None) if accelerator.is_main_process else None

    def save_checkpoint() -> None:
        if accelerator.is_main_process:
            state = {"optimizer": optimizer.state_dict(), "lr_scheduler": lr_schedule.state_dict()}
            ckpts.save(step, lambda d: write_training_state(d, accelerator.unwrap_model(prepared), state, ema, step))
        accelerator.wait_for_everyone()

    def evaluate() -> dict[str, float]:
        ema.store(params)
        ema.copy_to(params)
        prepared.eval()
        with torch.random.fork_rng(devices=[]):  # evaluation must not move the training RNG
            metrics = task.evaluate(accelerator.unwrap_model(prepared), step, writer) if accelerator.is_main_process else {}
        prepared.train()
        ema.restore(params)
        return metrics

    batches = iter(_loader(task.dataset, cfg, step * cfg.grad_accum, accelerator, num_workers))
    bar = tqdm(total=cfg.max_steps, initial=step, desc="train", disable=not accelerator.is_main_process, dynamic_ncols=True)
    start, running = time.monotonic(), None
    prepared.train()
    while step < cfg.max_steps:
        for _ in range(cfg.grad_accum):
            batch = next(batches)
            with accelerator.accumulate(prepared):
                loss = task.loss(prepared, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.grad_clip:
                    accelerator.clip_grad_norm_(params, cfg.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        lr_schedule.step()
        ema.step(params)
        step += 1
        value = loss.detach().item()
        running = value if running is None else 0.95 * running + 0.05 * value
        bar.update(1)
        lr_now = cfg.lr * lr_schedule.get_last_lr()[0] / lr_schedule.base_lrs[0]  # the unscaled group's lr
        bar.set_postfix(loss=f"{running:.4f}", lr=f"{lr_now:.2e}")
        if writer is not None and step % cfg.log_every == 0:
            writer.add_scalar("train/loss", value, step)
            writer.add_scalar("train/lr", lr_now, step)
        if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.max_steps:
            evaluate()
        out_of_time = _any_process(cfg.max_minutes is not None and (time.monotonic() - start) > cfg.max_minutes * 60,
                                   accelerator)
        if step % cfg.ckpt_every == 0 or step == cfg.max_steps or out_of_time:
            save_checkpoint()
        if out_of_time:
            log.warning("time budget of %.1f min reached at step %d; stopping", cfg.max_minutes, step)
            break
    bar.close()
    metrics = evaluate()
    metrics.update(step=step, minutes=(time.monotonic() - start) / 60)
    if accelerator.is_main_process:
        ema.copy_to(params)
        task.export(accelerator.unwrap_model(prepared), run_dir / "model")
        writer.close()
    accelerator.end_training()
    return metrics
