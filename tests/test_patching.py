"""A UNet that sees p×p pixel patches: the same diffusion in pixel space, a cheaper network call."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel

from gen.core.config import GenConfig, load
from gen.core.errors import ConfigError
from gen.generator.patching import patched_denoise, unet_shape
from gen.generator.pipeline import TextToImagePipeline
from tests.conftest import GEN_TINY, TEXT_DIM


def patch_unet(resolution: int = 16, patch: int = 2, seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        **unet_shape(resolution, patch), block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1, attention_head_dim=8, norm_num_groups=8, cross_attention_dim=TEXT_DIM).eval()


def test_unet_shape_stacks_each_patch_into_channels():
    assert unet_shape(48, 2) == {"in_channels": 12, "out_channels": 12, "sample_size": 24}
    assert unet_shape(32, 1) == {"in_channels": 3, "out_channels": 3, "sample_size": 32}
    with pytest.raises(ValueError, match="divisor"):
        unet_shape(48, 5)


def test_patched_denoise_runs_the_unet_on_the_patches_and_returns_pixels():
    unet = patch_unet()
    x = torch.randn(2, 3, 16, 16)
    t = torch.tensor([10, 500])
    states = torch.randn(2, 4, TEXT_DIM)
    with torch.no_grad():
        out = patched_denoise(unet, x, t, 2, encoder_hidden_states=states)
        direct = F.pixel_shuffle(unet(F.pixel_unshuffle(x, 2), t, encoder_hidden_states=states).sample, 2)
    assert out.shape == x.shape
    assert torch.equal(out, direct)
    # Each output pixel comes from its own patch's channel: moving one pixel within its 2×2 patch moves a channel.
    assert torch.equal(F.pixel_shuffle(F.pixel_unshuffle(x, 2), 2), x)


def test_a_patched_pipeline_draws_full_size_images_and_keeps_its_patch_size(tokenizer, tmp_path):
    from gen.core.config import DiffusionConfig
    from gen.generator.diffusion import noise_scheduler, sampling_scheduler
    from tests.conftest import tiny_gpt2

    pipe = TextToImagePipeline(tokenizer, tiny_gpt2(tokenizer), patch_unet(),
                               sampling_scheduler(noise_scheduler(DiffusionConfig())), patch_size=2)
    pipe.set_progress_bar_config(disable=True)
    gen = torch.Generator().manual_seed(0)
    images = pipe(["a red circle"], num_inference_steps=2, generator=gen, output_type="pt").images
    assert images.shape == (1, 3, 16, 16)

    pipe.save_pretrained(tmp_path / "model")
    assert json.loads((tmp_path / "model" / "model_index.json").read_text())["patch_size"] == 2
    again = TextToImagePipeline.from_pretrained(tmp_path / "model")
    again.set_progress_bar_config(disable=True)
    assert again.config.patch_size == 2
    same = again(["a red circle"], num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                 output_type="pt").images
    assert torch.allclose(images, same, atol=1e-5)


def test_a_pipeline_saved_without_a_patch_size_reads_as_unpatched(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "model")
    index = tmp_path / "model" / "model_index.json"
    data = json.loads(index.read_text())
    data.pop("patch_size")  # as folders exported before patching existed
    index.write_text(json.dumps(data))
    assert TextToImagePipeline.from_pretrained(tmp_path / "model").config.patch_size == 1


def test_patch_size_is_checked_against_the_resolution():
    assert load(GenConfig, GEN_TINY, ["patch_size=2"]).patch_size == 2
    with pytest.raises(ConfigError, match="patch_size"):
        load(GenConfig, GEN_TINY, ["patch_size=3"])  # tiny.yaml is 16 px
    with pytest.raises(ConfigError, match="unet.in_channels"):
        load(GenConfig, GEN_TINY, ["unet.in_channels=12"])


def test_a_patched_config_trains_exports_and_samples(tmp_path):
    from gen.generator.train import train

    model = train(GEN_TINY, out=tmp_path / "run", overrides=["patch_size=2", "train.max_steps=3"])
    pipe = TextToImagePipeline.from_pretrained(model)
    assert pipe.config.patch_size == 2 and pipe.unet.config.in_channels == 12
    pipe.set_progress_bar_config(disable=True)
    image = pipe(["a red circle"], num_inference_steps=2, output_type="pt").images
    assert image.shape[-1] == load(GenConfig, GEN_TINY).data.resolution
