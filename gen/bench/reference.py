"""The baseline `gen bench` compares against: a plain diffusers-style training step and sampling loop.

Written the way the diffusers examples (train_text_to_image.py, a hand-rolled pipeline loop) do it:
text encoder run every step, fp32 eager, default AdamW, DDPMScheduler.add_noise, MSE on the target,
a `.item()` every step; sampling as UNet + scheduler.step with CFG by batch doubling. It runs on the
same model and the same batches as our path, so the ratio measures the training code, not the model.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor

from gen.generator.patching import image_shape, patched_denoise
from gen.generator.pipeline import unet_conditioning
from gen.generator.text import encode, tokenize


def reference_train_step(model: torch.nn.Module, tokenizer: Any, max_length: int, scheduler: DDPMScheduler,
                         cond_drop: float, grad_clip: float) -> Callable[[dict[str, Any]], float]:
    """A closure doing one reference training step on a batch; returns the loss as a Python float."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    text_encoder, unet, patch_size = model.text_encoder, model.unet, model.patch_size
    device = next(unet.parameters()).device

    def step(batch: dict[str, Any]) -> float:
        x0 = batch["pixel_values"].to(device)  # (B, 3, H, W)
        drop = torch.rand(len(batch["text"])) < cond_drop
        texts = ["" if d else t for d, t in zip(drop.tolist(), batch["text"])]
        ids, mask = (x.to(device) for x in tokenize(tokenizer, texts, max_length))
        with torch.set_grad_enabled(any(p.requires_grad for p in text_encoder.parameters())):
            states, mask = encode(text_encoder, ids, mask)  # (B, T, D)
        noise = torch.randn_like(x0)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (x0.shape[0],), device=device)
        noisy = scheduler.add_noise(x0, noise, t)
        target = noise if scheduler.config.prediction_type == "epsilon" else scheduler.get_velocity(x0, noise, t)
        pred = patched_denoise(unet, noisy, t, patch_size, **unet_conditioning(unet, states, mask))  # (B, 3, H, W)
        loss = F.mse_loss(pred.float(), target.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        optimizer.zero_grad()
        return loss.item()

    return step


@torch.no_grad()
def reference_sample(model: torch.nn.Module, tokenizer: Any, max_length: int, scheduler: SchedulerMixin,
                     prompts: Sequence[str], steps: int, guidance: float,
                     generator: torch.Generator | list[torch.Generator]) -> torch.Tensor:
    """Images (B, 3, H, W) in [-1, 1] from a hand-written CFG loop over `scheduler`."""
    unet, p = model.unet, model.patch_size
    device = next(unet.parameters()).device
    ids, mask = (x.to(device) for x in tokenize(tokenizer, [""] * len(prompts) + list(prompts), max_length))
    states, mask = encode(model.text_encoder, ids, mask)  # (2B, T, D)
    kwargs = unet_conditioning(unet, states, mask)
    x = randn_tensor((len(prompts), *image_shape(unet, p)), generator=generator, device=device)
    x = x * scheduler.init_noise_sigma
    scheduler.set_timesteps(steps, device=device)
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(torch.cat([x, x]), t)  # (2B, 3, H, W)
        uncond, cond = patched_denoise(unet, x_in, t, p, **kwargs).chunk(2)
        x = scheduler.step(uncond + guidance * (cond - uncond), t, x).prev_sample
    return x
