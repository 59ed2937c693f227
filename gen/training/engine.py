"""The training loop both models share: accelerate, AdamW + warm-up/cosine, EMA, checkpoints, TensorBoard.

A task supplies the model, the data, a loss and what to do at evaluation and export; this file owns the
loop, so `gen` and `caption` train, resume and log the same way.
"""
from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any, Callable, Protocol

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, gather_object, set_seed
from diffusers.training_utils import EMAModel
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from gen.core.config import TrainConfig
from gen.core.processes import fresh_accelerator, process_state
from gen.data import EpochBatchSampler, ImageCaptionDataset, SkipLog, collate
from gen.training import precision as precision_io
from gen.training.checkpoint import Checkpoints, read_training_state, rng_state, write_training_state
from gen.training.numerics import BadSteps
from gen.training.schedule import BudgetPlan
from gen.training.train_step import LossTask, TrainingStep

log = logging.getLogger(__name__)


class Task(LossTask, Protocol):
    dataset: ImageCaptionDataset
    skips: SkipLog  # data items skipped, by reason (summary.json)

    def evaluate(self, model: torch.nn.Module, step: int, writer: SummaryWriter | None) -> dict[str, float]: ...

    def export(self, model: torch.nn.Module, out: Path, metrics: dict[str, Any] | None = None) -> None: ...


def _loader(dataset: ImageCaptionDataset, cfg: TrainConfig, start_batch: int, accelerator: Accelerator,
            num_workers: int) -> DataLoader:
    sampler = EpochBatchSampler(len(dataset), cfg.batch_size, cfg.seed, start_batch,
                                accelerator.process_index, accelerator.num_processes)
    # Its own generator: creating a DataLoader iterator draws a worker seed, which must not move the
    # global RNG (a resumed run creates the iterator at a different step than an uninterrupted one).
    gen = torch.Generator().manual_seed(cfg.seed)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers, generator=gen)


def _any_process(flag: bool, accelerator: Accelerator) -> bool:
    """True on every process if it is true on one: clocks differ, and all must stop at the same step."""
    if accelerator.num_processes == 1:
        return flag
    return bool(accelerator.reduce(torch.tensor([float(flag)], device=accelerator.device), reduction="max").item())


def choose_precision(task: Task, cfg: TrainConfig, device: torch.device) -> precision_io.PrecisionChoice:
    """Resolve `auto` (precision.py), timing real training steps of this task when that is needed.

    Every process takes rank 0's answer: measured speeds differ, and all ranks must autocast alike.
    """
    def measure(precision: str) -> float:
        model = task.model.to(device)
        batch = collate([task.dataset[i] for i in range(min(cfg.batch_size, len(task.dataset)))])

        def step() -> None:
            task.loss(model, batch).backward()
        with torch.random.fork_rng(devices=[]):  # timing must not move the training RNG
            seconds = precision_io.time_steps(step, precision, device)
        model.zero_grad(set_to_none=True)
        return seconds

    state = process_state()
    answer = [precision_io.resolve(cfg.mixed_precision, device, measure) if state.is_main_process else None]
    if state.num_processes > 1:
        broadcast_object_list(answer)
    return answer[0]


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of every weight's bytes: the same on every rank while DDP keeps the replicas in step."""
    digest = hashlib.sha256()
    for value in model.state_dict().values():
        digest.update(value.detach().reshape(-1).contiguous().view(torch.uint8).cpu().numpy().tobytes())
    return digest.hexdigest()


def _save_checkpoint(ckpts: Checkpoints, step: int, accelerator: Accelerator, model: torch.nn.Module,
                     optimizer: torch.optim.Optimizer, lr_schedule: LambdaLR, ema: EMAModel,
                     extra: dict[str, Any]) -> Path:
    """checkpoint-<step>, written by the main process; every process must call this (it gathers from all).

    Each rank sends its RNG state, saved as its own file, and with several ranks a digest of its weights:
    DDP keeps the replicas equal, and state.json shows that it did.
    """
    mine: dict[str, Any] = {"rng": rng_state(accelerator.device)}
    if accelerator.num_processes > 1:
        mine["weights"] = weights_digest(accelerator.unwrap_model(model))
    ranks = gather_object([mine])
    if accelerator.is_main_process:
        state = {"optimizer": optimizer.state_dict(), "lr_scheduler": lr_schedule.state_dict()}
        if len(ranks) > 1:
            extra = {**extra, "weights_sha256": [r["weights"] for r in ranks]}
            if len(set(extra["weights_sha256"])) > 1:
                log.warning("step %d: the processes' weights differ (sha256 %s); the checkpoint holds the main "
                            "process's", step, ", ".join(d[:12] for d in extra["weights_sha256"]))
        ckpts.save(step, lambda d: write_training_state(d, accelerator.unwrap_model(model), state, ema, step, extra,
                                                        [r["rng"] for r in ranks]))
    accelerator.wait_for_everyone()
    return ckpts.folder(step)


def fit(task: Task, cfg: TrainConfig, run_dir: Path, resume: str | None = None, num_workers: int = 0,
        clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """Train `task.model` to cfg.max_steps (or cfg.max_minutes), then export EMA weights to RUN_DIR/model.

    `clock` is the wall clock the time budget reads; tests pass a deterministic one. A step whose loss or
    gradient is not finite is skipped (numerics.py); cfg.max_bad_steps of them in a row save the last good
    state and raise numerics.TrainingDiverged.
    """
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    choice = choose_precision(task, cfg, process_state().device)
    log.info("mixed precision: %s (%s)", choice.precision, choice.reason)
    accelerator = fresh_accelerator(choice.precision, cfg.grad_accum)  # this training's precision, not an earlier one's
    # Seed + rank: with one seed every process would draw the same noise, timesteps and condition dropout.
    # The model was initialised before, with the plain seed, so it starts the same everywhere (and DDP
    # broadcasts rank 0's weights anyway).
    set_seed(cfg.seed, device_specific=True)
    train_step = TrainingStep.build(task, cfg, accelerator.device)
    model, params, optimizer = train_step.model, train_step.params, train_step.optimizer
    schedule, lr_schedule, ema = train_step.schedule, train_step.lr_schedule, train_step.ema
    plan = BudgetPlan(schedule, cfg.max_steps, cfg.warmup_steps, cfg.max_minutes)
    ckpts = Checkpoints(run_dir, cfg.keep_last)
    bad = BadSteps(cfg.max_bad_steps, warn=accelerator.is_main_process)

    step = used = 0  # optimizer steps taken; batches used, skipped steps' included
    if resume:
        folder = ckpts.resolve(resume)
        opt_state, info = read_training_state(folder, model, ema, accelerator.process_index,
                                              accelerator.num_processes, accelerator.device)
        optimizer.load_state_dict(opt_state["optimizer"])
        lr_schedule.load_state_dict(opt_state["lr_scheduler"])  # restores schedule.total and .warmup
        step = info["step"]
        used, bad.total = info.get("batches", step * cfg.grad_accum), info.get("bad_steps", 0)
        if info.get("budget", {}).get("from_budget"):
            plan.state.update(info["budget"])  # the budget spans resumes; the plan goes on as it was
        else:  # a step-based run follows the config, so a resume may extend max_steps
            schedule.total, schedule.warmup = cfg.max_steps, cfg.warmup_steps
        log.info("resumed from %s at step %d (schedule: %d steps)", folder, step, schedule.total)
    train_step.prepare(accelerator)
    prepared, optimizer = train_step.model, train_step.optimizer
    writer = SummaryWriter(str(run_dir / "logs"), purge_step=step or None) if accelerator.is_main_process else None

    def save_checkpoint() -> Path:
        extra = {"total_steps": schedule.total, "budget": plan.state, "batches": used, "bad_steps": bad.total}
        return _save_checkpoint(ckpts, step, accelerator, prepared, optimizer, lr_schedule, ema, extra)

    def evaluate() -> dict[str, float]:
        ema.store(params)
        ema.copy_to(params)
        prepared.eval()
        with torch.random.fork_rng(devices=[]):  # evaluation must not move the training RNG
            metrics = task.evaluate(accelerator.unwrap_model(prepared), step, writer) if accelerator.is_main_process else {}
        prepared.train()
        ema.restore(params)
        return metrics

    batches = iter(_loader(task.dataset, cfg, used, accelerator, num_workers))

    bar = tqdm(total=schedule.total, initial=step, desc="train", disable=not accelerator.is_main_process, dynamic_ncols=True)
    start, running = clock() - plan.state["elapsed_s"], None  # a resumed run goes on spending the same budget
    prepared.train()
    while step < schedule.total:
        loss, ok = train_step(batches)  # a step taken also moved the LR schedule and the EMA
        used += cfg.grad_accum
        elapsed = clock() - start
        if ok:
            bad.good()
            step += 1
            # The loss stays on the device between log points: no host sync for it on the steps in between.
            running = loss.detach().clone() if running is None else running.lerp_(loss.detach(), 0.05)
            bar.update(1)
            changed = plan.observe(step, elapsed)
            if plan.budget_s is not None and accelerator.num_processes > 1:  # clocks differ: all take rank 0's total
                # A scalar all-reduce per step is cheap next to the gradient all-reduce DDP already does.
                total = torch.tensor([schedule.total if accelerator.is_main_process else 0], device=accelerator.device)
                plan.set_total(int(accelerator.reduce(total, reduction="sum").item()))
            if changed or bar.total != schedule.total:
                bar.total = schedule.total
            if step % cfg.log_every == 0:
                lr_now = cfg.lr * lr_schedule.get_last_lr()[0] / lr_schedule.base_lrs[0]  # the unscaled group's lr
                value = running.item()
                bar.set_postfix(loss=f"{value:.4f}", lr=f"{lr_now:.2e}")
                if writer is not None:
                    writer.add_scalar("train/loss", value, step)
                    writer.add_scalar("train/lr", lr_now, step)
                    writer.add_scalar("train/bad_steps", bad.total, step)
            if cfg.eval_every and step % cfg.eval_every == 0 and step < schedule.total:
                evaluate()
        else:
            stop = bad.bad(step + 1)
            if writer is not None:
                writer.add_scalar("train/bad_steps", bad.total, step + 1)
            if stop:  # nothing since `step` was applied: what is saved now is the last good state
                folder = save_checkpoint()
                bar.close()  # so the error starts on a line of its own
                if writer is not None:
                    writer.close()
                raise bad.diverged(step, folder)
        out_of_time = _any_process(cfg.max_minutes is not None and elapsed > cfg.max_minutes * 60, accelerator)
        if (ok and (step % cfg.ckpt_every == 0 or step == schedule.total)) or out_of_time:
            save_checkpoint()
        if out_of_time:
            log.warning("time budget of %.1f min reached at step %d of %d; stopping", cfg.max_minutes, step,
                        schedule.total)
            break
    bar.close()
    metrics: dict[str, Any] = evaluate()
    metrics.update(step=step, total_steps=schedule.total, minutes=(clock() - start) / 60, bad_steps=bad.total,
                   **choice.as_metrics())
    if accelerator.is_main_process:
        ema.copy_to(params)
        task.export(accelerator.unwrap_model(prepared), run_dir / "model", metrics)  # metrics: for the model card
        writer.close()
    accelerator.end_training()
    return metrics
