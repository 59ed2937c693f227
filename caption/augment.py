"""Photometric noise for captioner training images: what generated images show and clean renders do not."""
from __future__ import annotations

import dataclasses

import torch


@dataclasses.dataclass
class AugmentConfig:
    """In pixel units of [-1, 1]. A generator's backgrounds are faintly tinted and noisy (per-channel
    offsets up to ~9/255, noise std ~5/255 on the shapes demo); a captioner that only saw the renders'
    exact background reads such an image's top or bottom object as "in the center" (docs/judge.md)."""

    prob: float = 0.0  # share of training images that get the noise; 0 turns it off
    tint: float = 0.08  # std of one offset per image and channel
    noise: float = 0.05  # std of independent per-pixel noise


def photometric_noise(pixels: torch.Tensor, cfg: AugmentConfig) -> torch.Tensor:
    """(B, C, H, W) in [-1, 1] → the same with a random tint and pixel noise on a `cfg.prob` share."""
    if cfg.prob <= 0:
        return pixels
    b, c = pixels.shape[:2]
    picked = (torch.rand(b, 1, 1, 1, device=pixels.device) < cfg.prob).to(pixels.dtype)  # (B, 1, 1, 1)
    tint = torch.randn(b, c, 1, 1, device=pixels.device, dtype=pixels.dtype) * cfg.tint  # (B, C, 1, 1)
    noise = torch.randn_like(pixels) * cfg.noise  # (B, C, H, W)
    return (pixels + picked * (tint + noise)).clamp(-1, 1)
