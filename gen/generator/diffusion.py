"""Diffusion maths, nothing about networks: noise schedule, regression targets, per-sample loss."""
from __future__ import annotations

from typing import Callable

import torch
from diffusers import DDPMScheduler, DPMSolverMultistepScheduler

from gen.core.config import DiffusionConfig

BETA_SCHEDULES = {"cosine": "squaredcos_cap_v2", "linear": "linear", "scaled_linear": "scaled_linear"}


def noise_scheduler(cfg: DiffusionConfig) -> DDPMScheduler:
    """The forward process used in training; sampling schedulers are built from its config."""
    if cfg.schedule not in BETA_SCHEDULES:
        raise ValueError(f"diffusion.schedule must be one of {sorted(BETA_SCHEDULES)}, not {cfg.schedule!r}")
    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps, beta_schedule=BETA_SCHEDULES[cfg.schedule],
                         prediction_type=cfg.prediction_type, clip_sample=False)


def sampling_scheduler(train_scheduler: DDPMScheduler) -> DPMSolverMultistepScheduler:
    """DPM-Solver++ (Lu et al. 2022), 2nd order multistep: good images in ≤ 25 steps."""
    return DPMSolverMultistepScheduler.from_config(train_scheduler.config, algorithm_type="dpmsolver++",
                                                   solver_order=2, timestep_spacing="trailing")


def snr(scheduler: DDPMScheduler, t: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio ᾱ_t / (1 − ᾱ_t) at integer timesteps `t`."""
    abar = scheduler.alphas_cumprod.to(t.device)[t]
    return abar / (1 - abar)


def min_snr_weight(snr_t: torch.Tensor, gamma: float | None, prediction_type: str, floor: float | None = 0.25) -> torch.Tensor:
    """Min-SNR-γ weighting (Hang et al. 2023) with a floor, written for the chosen regression target.

    In x0 terms the weight is clamp(SNR, floor, γ). Plain min-SNR (no floor) weights x0 by SNR → 0 at
    high noise, which is where colour and layout are decided: with a cosine schedule in pixel space the
    model then barely learns them. The floor (Salimans & Ho 2022's truncated-SNR) keeps those steps at
    x0 weight ≥ floor. Keep it low: under Adam, weight moved to the noisiest steps is taken from the
    detail steps, and at floor 1 squares come out as rounded blobs (docs/benchmarks.md). It applies to
    v only: for ε it would blow up as 1/SNR.
    """
    if gamma is None:
        return torch.ones_like(snr_t)
    if prediction_type == "epsilon":  # the ε-loss is SNR-weighted x0-loss: divide that out
        return torch.clamp(snr_t, max=gamma) / snr_t.clamp(min=1e-8)
    x0_weight = torch.clamp(snr_t, min=floor if floor is not None else 0.0, max=gamma)
    return x0_weight / (snr_t + 1)  # the v-loss is (SNR+1)-weighted x0-loss


def training_losses(denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x0: torch.Tensor,
                    scheduler: DDPMScheduler, snr_gamma: float | None = 5.0, snr_floor: float | None = 0.25) -> torch.Tensor:
    """Per-sample loss (B,) of `denoise(x_t, t)` at random timesteps, with min-SNR weighting."""
    b = x0.shape[0]
    t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), device=x0.device)  # (B,)
    noise = torch.randn_like(x0)  # (B, C, H, W)
    x_t = scheduler.add_noise(x0, noise, t)  # (B, C, H, W)
    pred_type = scheduler.config.prediction_type
    target = noise if pred_type == "epsilon" else scheduler.get_velocity(x0, noise, t)
    pred = denoise(x_t, t)  # (B, C, H, W)
    mse = (pred.float() - target.float()).pow(2).mean(dim=(1, 2, 3))  # (B,)
    return mse * min_snr_weight(snr(scheduler, t), snr_gamma, pred_type, snr_floor)
