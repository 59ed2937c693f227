"""The UNet's view of an image as patches: p×p pixel blocks stacked into channels (pixel_unshuffle).

Simple Diffusion (Hoogeboom et al. 2023) patches pixel-space inputs so that a UNet's first level runs at
1/p of the resolution. Every layer then touches 1/p² the positions, which on a CPU is most of a step's cost
(docs/scenes.md measures it). The diffusion itself stays in pixel space: noise, schedulers and samplers
see (B, 3, H, W) and only the network call is wrapped, so p = 1 is exactly the unpatched model.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel


def patched_denoise(unet: UNet2DConditionModel, x: torch.Tensor, t: torch.Tensor, patch_size: int,
                    **conditioning: Any) -> torch.Tensor:
    """The UNet's output (B, 3, H, W) for pixel-space `x` (B, 3, H, W), run on its p×p patches."""
    if patch_size == 1:
        return unet(x, t, **conditioning).sample
    out = unet(F.pixel_unshuffle(x, patch_size), t, **conditioning).sample  # (B, 3p², H/p, W/p)
    return F.pixel_shuffle(out, patch_size)


def unet_shape(resolution: int, patch_size: int) -> dict[str, int]:
    """UNet2DConditionModel size arguments for RGB images of `resolution` seen as p×p patches."""
    if patch_size < 1 or resolution % patch_size:
        raise ValueError(f"patch_size must be a positive divisor of the resolution {resolution}, not {patch_size}")
    channels = 3 * patch_size * patch_size
    return {"in_channels": channels, "out_channels": channels, "sample_size": resolution // patch_size}


def image_shape(unet: UNet2DConditionModel, patch_size: int) -> tuple[int, int, int]:
    """(channels, height, width) of the pixel-space images a UNet of p×p patches denoises: unet_shape inverted."""
    size = unet.config.sample_size * patch_size
    return unet.config.in_channels // (patch_size * patch_size), size, size
