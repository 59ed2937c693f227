"""TextToImagePipeline: prompt → GPT-2 states → UNet denoising loop with any diffusers scheduler → images."""
from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Callable, Sequence

import torch
from diffusers import DiffusionPipeline, ImagePipelineOutput, SchedulerMixin, UNet2DConditionModel
from diffusers.utils.torch_utils import randn_tensor
from transformers import GPT2Model, PreTrainedTokenizerBase

from gen.core import config as config_io
from gen.core.config import GenConfig, SampleConfig, first_line
from gen.core.errors import UserError
from gen.generator.compiling import compile_module
from gen.generator.patching import image_shape, patched_denoise
from gen.generator.text import encode, max_length_of, tokenize


def unet_conditioning(unet: UNet2DConditionModel, states: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """UNet keyword arguments for text states (B, T, D) and their mask (B, T).

    Cross-attention always gets the token states. A UNet built with class_embed_type="projection" also
    gets a pooled summary added to its timestep embedding (as Imagen does): the mean of the real tokens'
    states. That global signal reaches every ResNet block, so whole-image attributes such as colour are
    learned far sooner. A mean, not the last token's state: a from-scratch GPT-2 only learns to gather
    the prompt into its last token slowly, and until then the last token is mostly its own word.
    """
    kwargs = {"encoder_hidden_states": states, "encoder_attention_mask": mask}
    if unet.config.class_embed_type == "projection":
        weights = mask.to(states.dtype).unsqueeze(-1)  # (B, T, 1)
        kwargs["class_labels"] = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)  # (B, D)
    return kwargs


def sampling_defaults(model_dir: str | os.PathLike) -> SampleConfig:
    """The sampler settings a model was trained and evaluated with (the `sample` section of its
    roundtrip_config.yaml), so the default lives in one place: the config, chosen by `gen sweep`
    (docs/PERFORMANCE.md). A folder without one (or a hub name) gets SampleConfig's defaults."""
    saved = Path(model_dir) / config_io.SAVED
    if not saved.is_file():
        return SampleConfig()
    return config_io.load(GenConfig, saved).sample


class TextToImagePipeline(DiffusionPipeline):
    """Pixel-space text-to-image diffusion with classifier-free guidance (Ho & Salimans 2022)."""

    model_cpu_offload_seq = "text_encoder->unet"

    def __init__(self, tokenizer: PreTrainedTokenizerBase, text_encoder: GPT2Model,
                 unet: UNet2DConditionModel, scheduler: SchedulerMixin, patch_size: int = 1) -> None:
        super().__init__()
        self.register_modules(tokenizer=tokenizer, text_encoder=text_encoder, unet=unet, scheduler=scheduler)
        self.register_to_config(patch_size=patch_size)  # saved in model_index.json (gen/generator/patching.py)
        # What __call__ samples with when not told; from_pretrained replaces it with the folder's saved settings.
        self.sample_defaults = SampleConfig()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs) -> "TextToImagePipeline":
        """diffusers' loading, plus the model's saved sampling defaults (`sampling_defaults`).

        A local folder is first checked for anything that would run its author's code (`refuse_foreign_code`),
        and weights are read from safetensors only."""
        if Path(pretrained_model_name_or_path).is_dir():
            refuse_foreign_code(Path(pretrained_model_name_or_path))
        kwargs.setdefault("use_safetensors", True)  # never fall back to unpickling a .bin
        pipe = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        pipe.sample_defaults = sampling_defaults(pretrained_model_name_or_path)
        return pipe

    def encode_prompt(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states (B, T, D) and padding mask (B, T) for a list of prompts."""
        ids, mask = tokenize(self.tokenizer, prompts, max_length_of(self.text_encoder, self.tokenizer))
        ids, mask = ids.to(self._execution_device), mask.to(self._execution_device)
        return encode(self.text_encoder, ids, mask)

    def _step_kwargs(self, generator: torch.Generator | list[torch.Generator] | None) -> dict:
        # Only stochastic samplers (DDPM, SDE variants) take a generator in step().
        accepts = "generator" in inspect.signature(self.scheduler.step).parameters
        return {"generator": generator} if accepts else {}

    def for_sampling(self, device: str | torch.device | None = None, compile: bool = False) -> "TextToImagePipeline":
        """Move to `device` and lay the UNet out channels-last: oneDNN's and cuDNN's convolutions run
        faster on NHWC (measured in docs/PERFORMANCE.md). Outputs are unchanged up to float rounding.
        `compile` adds torch.compile (gen/generator/compiling.py): faster per call after a minute of compiling."""
        if device is not None:
            self.to(device)
        self.unet.to(memory_format=torch.channels_last)
        if compile:
            compile_module(self.unet, self._execution_device)
        return self

    @torch.inference_mode()
    def __call__(self, prompt: str | list[str], negative_prompt: str | list[str] | None = None,
                 num_inference_steps: int | None = None, guidance_scale: float | None = None,
                 generator: torch.Generator | list[torch.Generator] | None = None,
                 num_images_per_prompt: int = 1, output_type: str = "pil", return_dict: bool = True,
                 callback: Callable[[int, int], None] | None = None):
        """Images for `prompt`; steps and guidance left as None are the pipeline's `sample_defaults`.
        `callback(step, total)` runs after each denoising step: progress for a caller, and its way to stop
        between steps is to raise (the web UI's Cancel, gen/serve/jobs.py)."""
        steps = self.sample_defaults.steps if num_inference_steps is None else num_inference_steps
        guidance_scale = self.sample_defaults.guidance if guidance_scale is None else guidance_scale
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        prompts = [p for p in prompts for _ in range(num_images_per_prompt)]
        negatives = negative_prompt if negative_prompt is not None else ""
        negatives = [negatives] * len(prompts) if isinstance(negatives, str) else \
            [n for n in negatives for _ in range(num_images_per_prompt)]
        if len(negatives) != len(prompts):
            raise ValueError(f"{len(negative_prompt)} negative prompts for {len(prompts) // num_images_per_prompt} prompts")
        if output_type not in ("pil", "np", "pt"):
            raise ValueError(f"output_type must be pil, np or pt, not {output_type!r}")
        guided = guidance_scale != 1.0
        # CFG by batch doubling (DiT forward_with_cfg): one UNet call for both halves.
        states, mask = self.encode_prompt(negatives + prompts if guided else prompts)  # (2B|B, T, D)
        unet_kwargs = unet_conditioning(self.unet, states.to(self.unet.dtype), mask)

        p = self.config.patch_size
        shape = (len(prompts), *image_shape(self.unet, p))
        x = randn_tensor(shape, generator=generator, device=self._execution_device, dtype=self.unet.dtype)
        x = x * self.scheduler.init_noise_sigma  # (B, C, H, W)
        if self.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last):
            x = x.contiguous(memory_format=torch.channels_last)  # keep the whole loop in the UNet's layout
        self.scheduler.set_timesteps(steps, device=self._execution_device)
        extra = self._step_kwargs(generator)
        for i, t in enumerate(self.progress_bar(self.scheduler.timesteps)):
            x_in = torch.cat([x, x]) if guided else x  # (2B|B, C, H, W)
            x_in = self.scheduler.scale_model_input(x_in, t)
            out = patched_denoise(self.unet, x_in, t, p, **unet_kwargs)
            if guided:
                uncond, cond = out.chunk(2)
                out = uncond + guidance_scale * (cond - uncond)
            x = self.scheduler.step(out, t, x, **extra).prev_sample
            if callback is not None:
                callback(i + 1, len(self.scheduler.timesteps))

        images = (x.float() / 2 + 0.5).clamp(0, 1)  # (B, C, H, W) in [0, 1]
        if output_type != "pt":
            images = images.permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, C)
            if output_type == "pil":
                images = self.numpy_to_pil(images)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=images) if return_dict else (images,)


# Files that unpickle when loaded, and so can run code of whoever wrote them: a model folder must hold safetensors.
PICKLED = {".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle"}
LIBRARIES = ("diffusers", "transformers")  # where model_index.json may take its components' classes from


def refuse_foreign_code(folder: Path) -> None:
    """A UserError naming the first thing in a pipeline FOLDER that loading would execute: a Python file (custom
    components or pipelines), a component class from another library, an `auto_map` (remote code), or pickled
    weights. Our own export holds none of them; a folder from elsewhere that does is refused, never run."""
    fix = "use a model folder exported by `gen train` (safetensors weights, no code)"
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".py":
            raise UserError(f"{path}: the model folder holds Python code, which roundtrip never runs; {fix}")
        if path.suffix in PICKLED:
            raise UserError(f"{path}: pickled weights are refused (unpickling can run code); {fix}")
    for config in [folder / "model_index.json", *sorted(folder.glob("*/config.json"))]:
        if not config.is_file():
            continue
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise UserError(f"{config} is not readable JSON ({first_line(err)}); {fix}") from None
        if not isinstance(data, dict):
            raise UserError(f"{config} is not a JSON object; {fix}")
        if "auto_map" in data:
            raise UserError(f"{config} asks for remote code (auto_map), which roundtrip never runs; {fix}")
        if config.name == "model_index.json":
            for name, entry in data.items():
                if isinstance(entry, list) and entry and entry[0] not in LIBRARIES:
                    raise UserError(f"{config}: component {name!r} comes from {entry[0]!r}, not diffusers or "
                                    f"transformers; roundtrip never loads custom components; {fix}")

