"""configs/gen/gpt2_64.yaml end to end with a pretrained GPT-2: the only shipped config that loads its text
encoder from `text.pretrained`, shrunk by overrides to a few CPU steps at 16 px, then sampled.

The "pretrained" GPT-2 is a tiny one the test saves itself (no hub access). The config leaves text.freeze unset,
so the encoder must be frozen by default: the exported model's encoder weights are then exactly the saved ones,
and with text.freeze=false they are not.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import ROOT, TEXT_DIM, tiny_gpt2
from safetensors.torch import load_file
from transformers import AutoTokenizer

from gen.generator.pipeline import TextToImagePipeline
from gen.generator.train import train

GPT2_64 = ROOT / "configs" / "gen" / "gpt2_64.yaml"
STEPS = 3
# gpt2_64's recipe (four levels, cross-attention at the lower three, 64-channel heads, frozen encoder) at a size
# that trains in seconds: 16 px shapes, batch 4, a quarter of the channels and one ResNet per level.
SHRINK = [
    "data.source=shapes", "data.resolution=16", "data.generate.count=32", "data.preload=true", "data.num_workers=0",
    "unet.block_out_channels=[32, 64, 64, 128]", "unet.layers_per_block=1", "unet.attention_head_dim=[1, 1, 1, 2]",
    "train.batch_size=4", f"train.max_steps={STEPS}", "train.warmup_steps=1", f"train.ckpt_every={STEPS}",
    "train.log_every=1", "train.eval_every=0", "train.mixed_precision=no", "sample.steps=2",
]


@pytest.fixture(scope="module")
def pretrained_gpt2(tokenizer, tmp_path_factory) -> Path:
    """A GPT2Model and its tokenizer in one folder, as `save_pretrained` writes them."""
    folder = tmp_path_factory.mktemp("gpt2")
    tiny_gpt2(tokenizer, seed=3).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def encoder_weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(next(folder.glob("*.safetensors"))))


def train_gpt2_64(pretrained: Path, out: Path, *extra: str) -> Path:
    data = out.parent / f"{out.name}_shapes"
    return train(GPT2_64, out=out, overrides=[*SHRINK, f"data.path={data}", f"text.pretrained={pretrained}", *extra])


@pytest.mark.timeout(300)
def test_gpt2_64_trains_on_a_frozen_pretrained_encoder_and_samples(pretrained_gpt2, tmp_path):
    model_dir = train_gpt2_64(pretrained_gpt2, tmp_path / "run")

    saved, exported = encoder_weights(pretrained_gpt2), encoder_weights(model_dir / "text_encoder")
    assert saved.keys() == exported.keys()
    assert all(torch.equal(saved[k], exported[k]) for k in saved)  # frozen by default: not one weight moved

    pipe = TextToImagePipeline.from_pretrained(model_dir)
    # The pretrained tokenizer, not a BPE trained on the captions; the UNet attends to that GPT-2's states.
    assert pipe.tokenizer.get_vocab() == AutoTokenizer.from_pretrained(pretrained_gpt2).get_vocab()
    assert pipe.unet.config.cross_attention_dim == TEXT_DIM
    assert pipe.unet.config.attention_head_dim == [1, 1, 1, 2]
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red circle on the left", num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                 output_type="pt").images  # (1, 3, 16, 16)
    assert image.shape == (1, 3, 16, 16)
    assert torch.isfinite(image).all() and 0 <= image.min() and image.max() <= 1 and image.std() > 0


@pytest.mark.timeout(300)
def test_the_same_run_with_freeze_false_trains_the_encoder(pretrained_gpt2, tmp_path):
    """The check above can fail: told to train the encoder, the same run moves its weights."""
    model_dir = train_gpt2_64(pretrained_gpt2, tmp_path / "run", "text.freeze=false")
    saved, exported = encoder_weights(pretrained_gpt2), encoder_weights(model_dir / "text_encoder")
    assert not torch.equal(saved["h.0.attn.c_attn.weight"], exported["h.0.attn.c_attn.weight"])
