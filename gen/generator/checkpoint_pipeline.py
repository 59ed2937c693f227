"""A training checkpoint as a sampling pipeline: the generator as it was at that step.

A run's checkpoints hold the whole TextToImageModel (text encoder + UNet, `model.safetensors`) and its
EMA (`ema.safetensors`); its `model/` folder holds the tokenizer, scheduler and configs they share.
Checkpoints from early to late give generators of every quality from one run, which is what a judge
must be measured on (caption/evaluation/meta_eval_generated.py).
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, load_model

from gen.core import config as config_io
from gen.core.config import GenConfig
from gen.generator.pipeline import TextToImagePipeline
from gen.generator.text import is_frozen


def load_generator(model_dir: str | Path, checkpoint: str | Path | None = None, ema: bool = True,
                   device: str | None = None) -> TextToImagePipeline:
    """The exported pipeline of MODEL_DIR, with a checkpoint's weights when given (its EMA weights if `ema`,
    as the export uses; its raw weights otherwise)."""
    from gen.generator.train import TextToImageModel  # the module whose state the checkpoint holds

    model_dir = Path(model_dir)
    if not (model_dir / "model_index.json").is_file():
        raise FileNotFoundError(f"{model_dir} is not a generator model folder (no model_index.json); "
                                "pass the model/ folder of a `gen train` run")
    pipe = TextToImagePipeline.from_pretrained(model_dir)
    if checkpoint is not None:
        folder = Path(checkpoint)
        if not (folder / "model.safetensors").is_file():
            raise FileNotFoundError(f"{folder} is not a checkpoint folder (no model.safetensors); pass "
                                    "RUN_DIR/checkpoints/checkpoint-NNNNNNNN")
        cfg = config_io.load(GenConfig, model_dir / config_io.SAVED)
        model = TextToImageModel(pipe.text_encoder, pipe.unet, is_frozen(cfg.text), cfg.patch_size)
        load_model(model, str(folder / "model.safetensors"))
        if ema and (folder / "ema.safetensors").is_file():
            # EMA shadows follow the trainable parameters in model order (see TrainingStep.build).
            shadow = load_file(str(folder / "ema.safetensors"))
            params = [p for p in model.parameters() if p.requires_grad]
            if len(shadow) != len(params):
                raise ValueError(f"{folder}: {len(shadow)} EMA tensors for {len(params)} trainable parameters")
            with torch.no_grad():
                for p, key in zip(params, sorted(shadow)):
                    p.copy_(shadow[key])
        model.eval()
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
