"""Model cards: every exported model/ folder has a README.md, and the generator card's stock-diffusers code,
run as written, draws the same image as TextToImagePipeline (the pooled prompt goes in as class_labels)."""
from __future__ import annotations

import json
import re

import torch
from conftest import CAPTION_STEPS, GEN_STEPS, GEN_TINY

from gen.core import config as config_io
from gen.core.config import GenConfig
from gen.core.model_card import model_card


def test_generator_card_says_data_run_scores_and_class_labels(gen_run):
    card = (gen_run / "model" / "README.md").read_text()
    examples = json.loads((gen_run / "summary.json").read_text())["examples"]
    assert "- source: `shapes`, `RUN_DIR/data`" in card and f"- examples used: {examples}\n" in card
    assert f"- steps: {GEN_STEPS} of {GEN_STEPS} planned" in card and "- minutes of training: " in card
    assert "TextToImagePipeline.from_pretrained" in card and 'subfolder="unet"' in card
    assert "class_embed_type: projection`: it needs `class_labels`" in card
    assert "the mean of the real (unpadded) tokens' GPT-2 states, as `class_labels`" in card
    assert "block_out_channels:" in card  # the resolved config


def test_card_without_projection_or_run_metrics():
    cfg = config_io.load(GenConfig, GEN_TINY, ["unet.class_embed_type=null"])
    card = model_card("generator", cfg, examples=10, metrics={"step": 5, "total_steps": 5, "minutes": 0.25,
                                                               "mixed_precision": "no", "fid": 12.5})
    assert "This UNet has no class embedding" in card and "- minutes of training: 0.2" in card
    assert "- fid: 12.5" in card  # a score beside the run's own numbers
    assert "Not recorded" in model_card("generator", cfg)
    assert "timed before choosing" not in card  # nothing was timed: the precision was set


def test_card_records_the_timings_that_chose_the_precision():
    cfg = config_io.load(GenConfig, GEN_TINY)
    metrics = {"step": 5, "total_steps": 5, "minutes": 0.25, "mixed_precision": "bf16",
               "mixed_precision_reason": "auto: native bf16 measured faster (0.155 s against 0.217 s per step)",
               "mixed_precision_seconds_per_step": {"no": 0.217, "bf16": 0.155}}
    card = model_card("generator", cfg, examples=10, metrics=metrics)
    assert "- mixed precision: bf16 (auto: native bf16 measured faster" in card
    assert "- timed before choosing: fp32 0.217 s, bf16 0.155 s per step" in card
    assert "mixed_precision_seconds_per_step" not in card  # run facts are not listed again among the scores


def test_stock_diffusers_code_in_the_card_matches_the_pipeline(gen_run):
    """Run the card's second code block as written (stock diffusers + transformers only)."""
    from gen.generator.pipeline import TextToImagePipeline

    folder = gen_run / "model"
    card = (folder / "README.md").read_text()
    code = re.findall(r"```python\n(.*?)```", card, flags=re.S)[1]
    assert "from gen" not in code
    scope: dict = {}
    exec(code.replace("MODEL_DIR", str(folder)), scope)  # noqa: S102 - our own card's text
    prompt = re.search(r'cond, uncond = condition\("(.*?)"\)', code)[1]
    steps = int(re.search(r"set_timesteps\((\d+)\)", code)[1])
    pipe = TextToImagePipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    expected = pipe([prompt], num_inference_steps=steps, guidance_scale=3.0,
                    generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert scope["image"].shape == expected.shape == (1, 3, 16, 16)
    assert torch.allclose(scope["image"], expected, atol=1e-4)


def test_captioner_card(caption_run):
    card = (caption_run / "model" / "README.md").read_text()
    assert "Captioner.from_pretrained" in card and f"- steps: {CAPTION_STEPS} of {CAPTION_STEPS}" in card
    assert "val/exact_match" in card or "None measured" in card
