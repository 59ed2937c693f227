"""gen.generator.pipeline and gen.generator.diffusion with tiny random models: outputs, seeds, CFG, save/load, scheduler swaps."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import IMAGE_SIZE
from diffusers import (
    DDIMScheduler,
    DDPMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    UNet2DConditionModel,
)
from PIL import Image
from safetensors.torch import load_file
from transformers import AutoTokenizer, GPT2Model

from gen.core.config import DiffusionConfig
from gen.generator.diffusion import min_snr_weight, noise_scheduler, sampling_scheduler, snr, training_losses
from gen.generator.pipeline import TextToImagePipeline, unet_conditioning

PROMPTS = ["a red circle on the left", "a blue square at the top"]
STEPS = 3


def run(pipe, prompt=PROMPTS, seed=0, **kwargs):
    kwargs.setdefault("num_inference_steps", STEPS)
    kwargs.setdefault("output_type", "np")
    return pipe(prompt, generator=torch.Generator().manual_seed(seed), **kwargs).images


# ---------------------------------------------------------------- outputs


def test_output_types_shapes_and_ranges(tiny_pipe):
    pt = run(tiny_pipe, output_type="pt")
    npy = run(tiny_pipe, output_type="np")
    pil = run(tiny_pipe, output_type="pil")
    assert isinstance(pt, torch.Tensor) and pt.shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert isinstance(npy, np.ndarray) and npy.shape == (2, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert isinstance(pil, list) and len(pil) == 2
    assert all(isinstance(im, Image.Image) and im.size == (IMAGE_SIZE, IMAGE_SIZE) and im.mode == "RGB" for im in pil)
    assert pt.min() >= 0 and pt.max() <= 1 and npy.min() >= 0 and npy.max() <= 1
    assert npy.std() > 1e-3  # a real image, not a constant
    # The three are the same images.
    np.testing.assert_allclose(pt.permute(0, 2, 3, 1).numpy(), npy, atol=1e-6)
    np.testing.assert_allclose(np.asarray(pil[1], dtype=np.float32), np.round(npy[1] * 255), atol=1)


def test_return_dict_false_and_bad_output_type(tiny_pipe):
    (images,) = tiny_pipe("a red circle", num_inference_steps=2, output_type="np", return_dict=False)
    assert images.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3)
    with pytest.raises(ValueError, match="output_type"):
        tiny_pipe("a red circle", num_inference_steps=2, output_type="latent")


def test_same_seed_same_images_different_seed_different(tiny_pipe):
    a = run(tiny_pipe, seed=0)
    b = run(tiny_pipe, seed=0)
    c = run(tiny_pipe, seed=1)
    assert np.array_equal(a, b)
    assert np.abs(a - c).max() > 1e-2


def test_pixel_slice_is_stable_across_calls(tiny_pipe):
    """Like diffusers' test_ddpm: a fixed corner of the image, called twice with the same seed."""
    first = run(tiny_pipe, "a green triangle in the center", seed=42)[0, -3:, -3:, -1].flatten()
    second = run(tiny_pipe, "a green triangle in the center", seed=42)[0, -3:, -3:, -1].flatten()
    assert first.shape == (9,)
    assert np.array_equal(first, second)
    assert ((first >= 0) & (first <= 1)).all() and first.std() > 0


def test_one_generator_per_image_reproduces_each_image_alone(tiny_pipe):
    """EDM's one seed per image: image k of a batch is the image made alone with seed k."""
    gens = [torch.Generator().manual_seed(s) for s in (5, 6)]
    batch = tiny_pipe(PROMPTS, generator=gens, num_inference_steps=STEPS, output_type="np").images
    alone = run(tiny_pipe, PROMPTS[1], seed=6)
    np.testing.assert_allclose(batch[1], alone[0], atol=1e-4)


def test_num_images_per_prompt(tiny_pipe):
    images = run(tiny_pipe, num_images_per_prompt=3)
    assert images.shape == (6, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert np.abs(images[0] - images[1]).max() > 1e-2  # different noise for each copy
    pil = run(tiny_pipe, "a red circle", num_images_per_prompt=2, output_type="pil")
    assert len(pil) == 2


def test_prompt_matters(tiny_pipe):
    red = run(tiny_pipe, "a red circle on the left", seed=3)
    blue = run(tiny_pipe, "a blue square at the top", seed=3)
    assert np.abs(red - blue).max() > 1e-3


def test_negative_prompt_changes_guided_images(tiny_pipe):
    plain = run(tiny_pipe, seed=0, guidance_scale=3.0)
    negative = run(tiny_pipe, seed=0, guidance_scale=3.0, negative_prompt="a green triangle in the center")
    per_prompt = run(tiny_pipe, seed=0, guidance_scale=3.0,
                     negative_prompt=["a green triangle in the center", "a green triangle in the center"])
    assert np.abs(plain - negative).max() > 1e-3
    np.testing.assert_allclose(negative, per_prompt, atol=1e-5)
    with pytest.raises(ValueError, match="negative prompts"):
        run(tiny_pipe, negative_prompt=["one", "two", "three"])


def test_guidance_one_skips_the_unconditional_branch(tiny_pipe):
    """At scale 1 CFG reduces to the conditional model, so a negative prompt has no effect."""
    a = run(tiny_pipe, seed=0, guidance_scale=1.0)
    b = run(tiny_pipe, seed=0, guidance_scale=1.0, negative_prompt="a green triangle in the center")
    c = run(tiny_pipe, seed=0, guidance_scale=5.0)
    assert np.array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


# ---------------------------------------------------------------- save / load


@pytest.fixture
def saved(tiny_pipe, tmp_path):
    tiny_pipe.save_pretrained(tmp_path / "pipe", safe_serialization=True)
    return tmp_path / "pipe"


def test_save_pretrained_layout(saved):
    index = json.loads((saved / "model_index.json").read_text())
    assert index["_class_name"] == "TextToImagePipeline"
    assert set(index) >= {"tokenizer", "text_encoder", "unet", "scheduler"}
    assert index["scheduler"] == ["diffusers", "DPMSolverMultistepScheduler"]
    assert (saved / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (saved / "text_encoder" / "model.safetensors").is_file()
    assert (saved / "tokenizer" / "tokenizer.json").is_file()
    assert list(saved.rglob("*.bin")) == [] and list(saved.rglob("*.pt")) == []


def test_save_load_round_trip_gives_identical_images(tiny_pipe, saved):
    loaded = TextToImagePipeline.from_pretrained(saved)
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded.scheduler) is DPMSolverMultistepScheduler
    assert loaded.scheduler.config.prediction_type == "v_prediction"
    assert np.array_equal(run(tiny_pipe, seed=9), run(loaded, seed=9))


def test_stock_loaders_read_the_saved_folder(tiny_pipe, saved):
    unet = UNet2DConditionModel.from_pretrained(saved, subfolder="unet")
    text = GPT2Model.from_pretrained(saved, subfolder="text_encoder")
    tok = AutoTokenizer.from_pretrained(saved, subfolder="tokenizer")
    sched = DPMSolverMultistepScheduler.from_pretrained(saved, subfolder="scheduler")
    for mine, theirs in ((tiny_pipe.unet, unet), (tiny_pipe.text_encoder, text)):
        ref = mine.state_dict()
        got = theirs.state_dict()
        assert set(ref) == set(got)
        assert all(torch.equal(ref[k], got[k]) for k in ref)
    assert tok.get_vocab() == tiny_pipe.tokenizer.get_vocab()
    assert sched.config.algorithm_type == "dpmsolver++" and sched.config.timestep_spacing == "trailing"
    assert sched.config.beta_schedule == "squaredcos_cap_v2"
    weights = load_file(str(saved / "unet" / "diffusion_pytorch_model.safetensors"))
    assert torch.equal(weights["conv_in.weight"], tiny_pipe.unet.conv_in.weight)


# ---------------------------------------------------------------- schedulers


@pytest.mark.parametrize("scheduler_cls", [EulerDiscreteScheduler, DDIMScheduler, DDPMScheduler])
def test_swapped_scheduler_runs_and_differs_from_dpm(tiny_pipe, scheduler_cls):
    dpm = run(tiny_pipe, seed=0)
    tiny_pipe.scheduler = scheduler_cls.from_config(tiny_pipe.scheduler.config)
    assert type(tiny_pipe.scheduler) is scheduler_cls
    first = run(tiny_pipe, seed=0)
    again = run(tiny_pipe, seed=0)
    assert first.shape == dpm.shape
    assert np.isfinite(first).all() and first.min() >= 0 and first.max() <= 1
    assert np.array_equal(first, again)  # stochastic samplers draw from the given generator
    assert np.abs(first - dpm).max() > 1e-3


# ---------------------------------------------------------------- diffusion maths


def test_min_snr_weight_known_values():
    s = torch.tensor([0.5, 1.0, 5.0, 10.0, 100.0])
    # Plain min-SNR (no floor) — ε: min(SNR, γ) / SNR; v: min(SNR, γ) / (SNR + 1)  (Hang et al. 2023)
    eps = min_snr_weight(s, 5.0, "epsilon", floor=None)
    v = min_snr_weight(s, 5.0, "v_prediction", floor=None)
    torch.testing.assert_close(eps, torch.tensor([1.0, 1.0, 1.0, 0.5, 0.05]))
    torch.testing.assert_close(v, torch.tensor([0.5 / 1.5, 0.5, 5 / 6, 5 / 11, 5 / 101]))
    torch.testing.assert_close(min_snr_weight(s, None, "epsilon"), torch.ones(5))
    torch.testing.assert_close(min_snr_weight(s, None, "v_prediction"), torch.ones(5))


def test_min_snr_floor_keeps_high_noise_steps_weighted():
    s = torch.tensor([0.01, 0.5, 1.0, 5.0, 100.0])
    v = min_snr_weight(s, 5.0, "v_prediction", floor=1.0)  # x0 weight clamp(SNR, 1, γ), over SNR + 1
    torch.testing.assert_close(v, torch.tensor([1 / 1.01, 1 / 1.5, 0.5, 5 / 6, 5 / 101]))
    # For ε the floor is not applied: it would weight the noisiest steps by 1/SNR.
    torch.testing.assert_close(min_snr_weight(s, 5.0, "epsilon", floor=1.0), min_snr_weight(s, 5.0, "epsilon", floor=None))
    # Without the floor the noisiest step would get almost no weight.
    assert min_snr_weight(s, 5.0, "v_prediction", floor=None)[0] < 0.01 < v[0]


def test_snr_matches_alphas_cumprod():
    sched = noise_scheduler(DiffusionConfig(schedule="linear"))
    t = torch.tensor([0, 500, 999])
    abar = sched.alphas_cumprod[t]
    torch.testing.assert_close(snr(sched, t), abar / (1 - abar))
    assert snr(sched, torch.tensor([0]))[0] > snr(sched, torch.tensor([999]))[0]
    assert sched.config.beta_schedule == "linear" and sched.config.clip_sample is False
    with pytest.raises(ValueError, match="schedule"):
        noise_scheduler(DiffusionConfig(schedule="sigmoid"))


def test_sampling_scheduler_is_dpm_plus_plus():
    train = noise_scheduler(DiffusionConfig(prediction_type="epsilon"))
    sample = sampling_scheduler(train)
    assert isinstance(sample, DPMSolverMultistepScheduler)
    assert sample.config.prediction_type == "epsilon" and sample.config.solver_order == 2
    assert sample.config.num_train_timesteps == train.config.num_train_timesteps


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_training_losses_shape_and_value(prediction_type):
    sched = noise_scheduler(DiffusionConfig(prediction_type=prediction_type))
    x0 = torch.rand(6, 3, 8, 8) * 2 - 1
    torch.manual_seed(0)
    losses = training_losses(lambda x_t, t: torch.zeros_like(x_t), x0, sched, snr_gamma=5.0)
    assert losses.shape == (6,) and torch.isfinite(losses).all() and (losses >= 0).all()
    # Replay the same draws: the loss of a zero prediction is the weighted mean square of the target.
    torch.manual_seed(0)
    t = torch.randint(0, 1000, (6,))
    noise = torch.randn_like(x0)
    target = noise if prediction_type == "epsilon" else sched.get_velocity(x0, noise, t)
    expected = target.pow(2).mean(dim=(1, 2, 3)) * min_snr_weight(snr(sched, t), 5.0, prediction_type)
    torch.testing.assert_close(losses, expected)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_training_losses_vanish_for_a_perfect_denoiser(prediction_type):
    sched = noise_scheduler(DiffusionConfig(prediction_type=prediction_type, schedule="linear"))
    x0 = torch.rand(8, 3, 8, 8) * 2 - 1
    abar = sched.alphas_cumprod

    def oracle(x_t, t):  # knows x0, so recovers the noise exactly
        a = abar[t].view(-1, 1, 1, 1)
        noise = (x_t - a.sqrt() * x0) / (1 - a).sqrt()
        return noise if prediction_type == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * x0

    torch.manual_seed(1)
    losses = training_losses(oracle, x0, sched, snr_gamma=None)
    assert losses.shape == (8,)
    assert losses.max() < 1e-6
    torch.manual_seed(1)
    wrong = training_losses(lambda x_t, t: oracle(x_t, t) + 0.5, x0, sched, snr_gamma=None)
    assert math.isclose(float(wrong.mean()), 0.25, rel_tol=1e-4)


def test_unet_conditioning_pools_the_mean_of_real_tokens(tokenizer):
    from diffusers import UNet2DConditionModel

    states = torch.randn(2, 5, 32)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    config = dict(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), norm_num_groups=8,
                  cross_attention_dim=32, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                  up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), layers_per_block=1)
    plain = UNet2DConditionModel(**config)
    assert set(unet_conditioning(plain, states, mask)) == {"encoder_hidden_states", "encoder_attention_mask"}
    pooled = UNet2DConditionModel(**config, class_embed_type="projection", projection_class_embeddings_input_dim=32)
    kwargs = unet_conditioning(pooled, states, mask)
    # Padding must not leak into the summary: row 0 averages its 3 real tokens only.
    torch.testing.assert_close(kwargs["class_labels"], torch.stack([states[0, :3].mean(0), states[1].mean(0)]))
    out = pooled(torch.randn(2, 3, 8, 8), torch.tensor([10, 500]), **kwargs).sample
    assert out.shape == (2, 3, 8, 8) and torch.isfinite(out).all()
