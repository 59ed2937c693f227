"""Generator training: the text-to-image task plugged into the shared loop in gen/training/engine.py."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from torch.utils.tensorboard import SummaryWriter
from torchvision.utils import make_grid
from transformers import GPT2Model

from gen.core import config as config_io
from gen.core.config import GenConfig
from gen.core.errors import ConfigError
from gen.core.model_card import write_model_card
from gen.core.outputs import atomic_dir
from gen.data import ImageCaptionDataset, SkipLog, read_records
from gen.data.tokenizer import adopt_tokenizer, tokenize
from gen.generator.diffusion import noise_scheduler, sampling_scheduler, training_losses
from gen.generator.patching import patched_denoise, unet_shape
from gen.generator.pipeline import TextToImagePipeline, unet_conditioning
from gen.generator.text import StateCache, build_text_model, encode, is_frozen
from gen.training.checkpoint import run_dir_for
from gen.training.run import check_enough_data, train_in_run_dir
from gen.training.rundir import tokenizer_of

log = logging.getLogger(__name__)


class TextToImageModel(torch.nn.Module):
    """Text encoder + UNet as one module, so EMA, checkpoints and DDP see a single set of weights."""

    def __init__(self, text_encoder: GPT2Model, unet: UNet2DConditionModel, freeze_text: bool,
                 patch_size: int = 1) -> None:
        super().__init__()
        self.text_encoder, self.unet, self.freeze_text, self.patch_size = text_encoder, unet, freeze_text, patch_size
        self.text_encoder.requires_grad_(not freeze_text)
        self.train()

    def train(self, mode: bool = True) -> "TextToImageModel":
        super().train(mode)
        if self.freeze_text:  # a frozen encoder is a fixed function: no dropout, as at sampling time
            self.text_encoder.eval()
        return self

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, input_ids: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, states: torch.Tensor | None = None) -> torch.Tensor:
        """Denoiser output for token ids, or for precomputed text `states` (B, T, D) of a frozen encoder."""
        if states is None:
            with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_text):
                states, mask = encode(self.text_encoder, input_ids, mask)  # (B, T, D), (B, T)
        return patched_denoise(self.unet, x_t, t, self.patch_size, **unet_conditioning(self.unet, states, mask))


def build_unet(cfg: GenConfig, cross_attention_dim: int) -> UNet2DConditionModel:
    kwargs = {**unet_shape(cfg.data.resolution, cfg.patch_size), **cfg.unet}
    if kwargs.get("class_embed_type") == "projection":  # pooled text summary, see pipeline.unet_conditioning
        kwargs.setdefault("projection_class_embeddings_input_dim", cross_attention_dim)
    try:
        return UNet2DConditionModel(**kwargs, cross_attention_dim=cross_attention_dim)
    except (TypeError, ValueError) as err:  # the unet section goes to diffusers as it is: its refusal names the key
        raise ConfigError(f"the unet section cannot build a UNet2DConditionModel: {err}") from None


class GenTask:
    """Data, model and loss of the generator; see engine.Task."""

    def __init__(self, cfg: GenConfig, run_dir: Path, resume_from: Path | None = None) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.skips = SkipLog()
        records = read_records(cfg.data, default_dir=run_dir, skips=self.skips)
        self.dataset = ImageCaptionDataset(records, cfg.data.resolution, cfg.data.hflip, cfg.data.preload, self.skips)
        from gen.data.check import format_summary  # the data check's summary, before any step is spent on the data
        log.info(format_summary(self.skips, self.dataset.usable()))
        check_enough_data(self.dataset, self.skips, cfg.train.batch_size)
        texts = [t for r in records for t in r.texts]
        tokenizer, text_encoder = build_text_model(cfg.text, texts)
        if resume_from is not None and not cfg.text.pretrained:
            # Only a resume reuses a saved vocabulary, the one its checkpoint was trained with; a fresh run
            # trains its own, so a tokenizer left in the folder by another run is never picked up.
            tokenizer = adopt_tokenizer(tokenizer_of(resume_from), run_dir / "tokenizer")
        else:
            tokenizer.save_pretrained(run_dir / "tokenizer")
        self.tokenizer = tokenizer
        self.max_length = min(cfg.text.max_length, text_encoder.config.n_positions)
        tokenizer.model_max_length = self.max_length  # saved with it, so sampling cuts prompts where training did
        self.scheduler = noise_scheduler(cfg.diffusion)
        self.model = TextToImageModel(text_encoder, build_unet(cfg, text_encoder.config.n_embd), is_frozen(cfg.text),
                                        cfg.patch_size)
        self.lr_scale = {"text_encoder.": cfg.text.lr_scale}
        self.text_cache = StateCache(tokenizer, self.max_length) if is_frozen(cfg.text) else None

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        x0 = batch["pixel_values"].to(next(model.parameters()).device)  # (B, 3, H, W)
        # Condition dropout (DiT token_drop): the empty prompt teaches the unconditional model for CFG.
        drop = torch.rand(len(batch["text"])) < self.cfg.diffusion.cond_drop
        texts = ["" if d else t for d, t in zip(drop.tolist(), batch["text"])]
        if self.text_cache is not None:
            states, mask = self.text_cache(self.model.text_encoder, texts)
            denoise = lambda x_t, t: model(x_t, t, mask=mask, states=states)  # noqa: E731
        else:
            ids, mask = (x.to(x0.device) for x in tokenize(self.tokenizer, texts, self.max_length))
            denoise = lambda x_t, t: model(x_t, t, ids, mask)  # noqa: E731
        losses = training_losses(denoise, x0, self.scheduler, self.cfg.diffusion.snr_gamma, self.cfg.diffusion.snr_floor)
        return losses.mean()

    def pipeline(self, model: TextToImageModel) -> TextToImagePipeline:
        return TextToImagePipeline(self.tokenizer, model.text_encoder, model.unet, sampling_scheduler(self.scheduler),
                                   patch_size=model.patch_size)

    def evaluate(self, model: TextToImageModel, step: int, writer: SummaryWriter | None) -> dict[str, float]:
        prompts = self.cfg.sample.prompts
        if not prompts or writer is None:
            return {}
        pipe = self.pipeline(model)
        pipe.set_progress_bar_config(disable=True)
        gens = [torch.Generator().manual_seed(i) for i in range(len(prompts))]
        images = pipe(prompts, num_inference_steps=self.cfg.sample.steps, guidance_scale=self.cfg.sample.guidance,
                      generator=gens, output_type="pt").images  # (B, 3, H, W)
        writer.add_image("samples", make_grid(images.cpu(), nrow=min(8, len(prompts))), step)
        return {}

    def export(self, model: TextToImageModel, out: Path, metrics: dict[str, Any] | None = None) -> None:
        """The end product: a diffusers-layout pipeline folder (safetensors) holding the EMA weights, with a
        README.md model card (gen.core.model_card).

        Written to a temp folder that then replaces `out`, so a failed write keeps the previous model whole.
        """
        with atomic_dir(out) as tmp:
            self.pipeline(model).save_pretrained(tmp, safe_serialization=True)
            config_io.save(self.cfg, tmp / config_io.SAVED)
            write_model_card(tmp, "generator", self.cfg, len(self.dataset), self.skips.summary(), metrics)


def train(config_path: str | Path | None, out: str | Path | None = None, overrides: list[str] | None = None,
          resume: str | None = None, overwrite: bool = False) -> Path:
    """Train a generator from a YAML config; returns the exported pipeline folder RUN_DIR/model.

    A folder that holds an earlier run needs `resume` ("latest" or a checkpoint) or `overwrite` (gen.training.rundir).
    """
    cfg = config_io.load(GenConfig, config_path, overrides)
    run_dir = run_dir_for(cfg.name, out)
    task = train_in_run_dir(cfg, run_dir, lambda checkpoint: GenTask(cfg, run_dir, checkpoint), resume, overwrite)
    if task.skips.counts:
        log.warning("skipped %d data items: %s", sum(task.skips.counts.values()), task.skips.summary())
    return run_dir / "model"
