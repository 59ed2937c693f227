"""`gen bench`'s reference loop and `gen sweep`. Speeds are measured by the commands, never asserted."""
from __future__ import annotations

import json

import pytest
import torch

from gen.bench.reference import reference_sample
from gen.core.errors import UserError
from gen.evaluate.sweep import parse_settings, sweep


def test_reference_sampling_loop_is_the_same_computation_as_the_pipeline(tiny_pipe):
    # The speed ratio only means something if both paths compute the same images.
    prompts = ["a red circle on the left", "a blue square at the top"]
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(len(prompts))]  # noqa: E731
    ours = tiny_pipe(prompts, num_inference_steps=3, guidance_scale=3.0, generator=gens(), output_type="pt").images
    ref = reference_sample(tiny_pipe, tiny_pipe.tokenizer, 16, tiny_pipe.scheduler, prompts, 3, 3.0, gens())
    assert torch.allclose(ours, (ref / 2 + 0.5).clamp(0, 1), atol=1e-5)


def test_sweep_settings_are_parsed_and_checked():
    assert parse_settings("ddpm:1000, dpm++:20") == [("ddpm", 1000), ("dpm++", 20)]
    for bad in ("euler:20", "ddim", "ddim:0", "ddim:x"):
        with pytest.raises(UserError, match="NAME:STEPS"):
            parse_settings(bad)


@pytest.mark.timeout(120)
def test_sweep_samples_every_setting_with_the_same_seeds(gen_run, tmp_path):
    prompts = ["a red circle on the left", "a blue square at the top"]
    rows = sweep(gen_run / "model", prompts, tmp_path, [("dpm++", 2), ("ddim", 2), ("dpm++", 3)])
    assert [(r["sampler"], r["steps"], r["n"]) for r in rows] == [("dpm++", 2, 2), ("ddim", 2, 2), ("dpm++", 3, 2)]
    assert all(0.0 <= r["all"] <= 1.0 and r["seconds_per_image"] > 0 for r in rows)
    assert json.loads((tmp_path / "sweep.json").read_text()) == rows
    meta = [[json.loads(line) for line in (tmp_path / f"{s}/metadata.jsonl").read_text().splitlines()]
            for s in ("dpm++-2", "ddim-2")]
    assert [r["seed"] for r in meta[0]] == [r["seed"] for r in meta[1]] == [0, 1]
    assert meta[0][0]["scheduler"] == "DPMSolverMultistepScheduler" and meta[1][0]["scheduler"] == "DDIMScheduler"


def test_for_sampling_is_channels_last_and_draws_the_same_images(tiny_pipe):
    prompts = ["a red circle on the left", "a blue square at the top"]
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(len(prompts))]  # noqa: E731
    before = tiny_pipe(prompts, num_inference_steps=3, generator=gens(), output_type="pt").images
    tiny_pipe.for_sampling("cpu")
    assert tiny_pipe.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    after = tiny_pipe(prompts, num_inference_steps=3, generator=gens(), output_type="pt").images
    assert torch.allclose(before, after, atol=1e-5)


def test_sampling_defaults_come_from_the_models_saved_config(gen_run, tmp_path):
    from gen.generator.sample import sample_model

    out = sample_model(gen_run / "model", ["a red circle on the left"], tmp_path / "s")
    row = json.loads((out / "metadata.jsonl").read_text().splitlines()[0])
    assert (row["steps"], row["guidance"]) == (4, 3.0)  # configs/gen/tiny.yaml: sample.steps 4
    out = sample_model(gen_run / "model", ["a red circle on the left"], tmp_path / "t", steps=2, guidance=1.5)
    row = json.loads((out / "metadata.jsonl").read_text().splitlines()[0])
    assert (row["steps"], row["guidance"]) == (2, 1.5)


@pytest.mark.timeout(300)
def test_compiled_sampling_draws_the_same_images(tiny_pipe):
    # torch.compile (gen sample --compile) is a speed option: it must not change what is drawn.
    prompts = ["a red circle on the left", "a blue square at the top"]
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(len(prompts))]  # noqa: E731
    before = tiny_pipe(prompts, num_inference_steps=2, generator=gens(), output_type="pt").images
    tiny_pipe.for_sampling("cpu", compile=True)
    after = tiny_pipe(prompts, num_inference_steps=2, generator=gens(), output_type="pt").images
    assert torch.allclose(before, after, atol=1e-4)


def test_compile_falls_back_to_eager_without_a_cxx_compiler(tiny_pipe, monkeypatch, caplog):
    import gen.generator.compiling as compiling

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(compiling.shutil, "which", lambda name: None)
    assert compiling.compile_module(tiny_pipe.unet, "cpu") is False
    assert tiny_pipe.unet._compiled_call_impl is None  # still the eager module
    assert "no C++ compiler" in caplog.text
