"""One optimizer step of the training loop, and the parts it touches, built one way for every caller.

`engine.fit` runs it; `gen bench` times it against the plain diffusers loop. Both build the parts here,
so what the bench measures is the step a training run takes, device placement included.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any, Iterable, Iterator, Protocol

import torch
from accelerate import Accelerator
from diffusers.training_utils import EMAModel
from torch.optim.lr_scheduler import LambdaLR

from gen.core.config import TrainConfig
from gen.training.numerics import all_finite
from gen.training.schedule import WarmupCosine


class LossTask(Protocol):
    model: torch.nn.Module  # everything the loss touches; frozen parts have requires_grad=False
    lr_scale: dict[str, float]  # parameter-name prefix → multiplier on cfg.lr; unmatched parameters get 1

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor: ...


def param_groups(model: torch.nn.Module, lr: float, lr_scale: dict[str, float]) -> list[dict[str, Any]]:
    """Trainable parameters grouped by learning rate: lr × the scale of the first matching name prefix."""
    groups: dict[float, list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            scale = next((s for prefix, s in lr_scale.items() if name.startswith(prefix)), 1.0)
            groups.setdefault(scale, []).append(p)
    return [{"params": ps, "lr": lr * scale} for scale, ps in groups.items()]


def adamw(params: Iterable[torch.nn.Parameter] | Iterable[dict[str, Any]], **kwargs: Any) -> torch.optim.AdamW:
    """torch.optim.AdamW(params, **kwargs), fused where this torch and device allow it.

    One fused kernel instead of a dozen small ops per tensor (CPU and CUDA, torch ≥ 2.4); most of a
    small model's step is otherwise spent in the optimizer. Older torch or other devices refuse `fused`.
    """
    params = list(params)  # a generator would be spent by the first, refused attempt
    try:
        return torch.optim.AdamW(params, fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(params, **kwargs)


def _optimizer(model: torch.nn.Module, cfg: TrainConfig, lr_scale: dict[str, float]) -> torch.optim.Optimizer:
    return adamw(param_groups(model, cfg.lr, lr_scale), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))


def _ema(params: list[torch.nn.Parameter], cfg: TrainConfig) -> EMAModel:
    # Power-law EMA warm-up (Karras et al.): short CPU runs still get a useful average.
    kwargs = {"decay": cfg.ema_decay, "use_ema_warmup": True, "power": cfg.ema_power}
    if "foreach" in inspect.signature(EMAModel.__init__).parameters:  # diffusers ≥ 0.28
        kwargs["foreach"] = True
    return EMAModel(params, **kwargs)


@dataclasses.dataclass
class TrainingStep:
    """The model, optimizer, LR schedule and EMA of a run, and one optimizer step over them.

    Build, load any resumed state into `model`, `optimizer`, `lr_schedule` and `ema`, then `prepare`:
    after it `model` and `optimizer` are accelerate's wrappers, the EMA sits on the same device, and each
    call takes one step.
    """
    task: LossTask
    cfg: TrainConfig
    model: torch.nn.Module
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    schedule: WarmupCosine
    lr_schedule: LambdaLR
    ema: EMAModel
    accelerator: Accelerator | None = None  # set by prepare()

    @classmethod
    def build(cls, task: LossTask, cfg: TrainConfig, device: torch.device) -> "TrainingStep":
        model = task.model.to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = _optimizer(model, cfg, task.lr_scale)
        schedule = WarmupCosine(cfg.warmup_steps, cfg.max_steps)
        return cls(task, cfg, model, params, optimizer, schedule, LambdaLR(optimizer, schedule), _ema(params, cfg))

    def prepare(self, accelerator: Accelerator) -> None:
        self.ema.to(accelerator.device)  # prepare() moves the model, not the EMA's shadow weights
        self.model, self.optimizer = accelerator.prepare(self.model, self.optimizer)
        self.accelerator = accelerator

    def __call__(self, batches: Iterator[dict[str, Any]]) -> tuple[torch.Tensor, bool]:
        """cfg.grad_accum batches, then the optimizer step unless a loss or a gradient is not finite; a
        step taken also moves the LR schedule and the EMA.

        Returns the last batch's loss and whether the step was taken (the same answer on every process).
        """
        accelerator = self.accelerator
        if accelerator is None:
            raise RuntimeError("TrainingStep.prepare(accelerator) must come before the first step")
        cfg, model, optimizer, params = self.cfg, self.model, self.optimizer, self.params
        finite, ok = torch.ones((), dtype=torch.bool, device=accelerator.device), False
        for _ in range(cfg.grad_accum):
            batch = next(batches)
            with accelerator.accumulate(model):
                loss = self.task.loss(model, batch)
                accelerator.backward(loss)
                finite &= torch.isfinite(loss.detach()).all()
                if accelerator.sync_gradients:
                    # max_norm=inf measures without clipping (a multiply by exactly 1). With fp16 an inf gradient is
                    # the GradScaler's to skip (it lowers its scale and goes on): only the loss is ours to check then.
                    norm = accelerator.clip_grad_norm_(params, cfg.grad_clip or math.inf)
                    if accelerator.scaler is None and norm is not None:
                        finite &= torch.isfinite(norm)
                    ok = all_finite(finite, accelerator)
                    if ok:
                        optimizer.step()
                    elif accelerator.scaler is not None:
                        accelerator.scaler.update()  # closes the scaler step that clip_grad_norm_ opened by unscaling
                optimizer.zero_grad(set_to_none=True)
        if ok:
            self.lr_schedule.step()
            self.ema.step(params)
        return loss, ok
