"""What `gen bench` reports besides speed: model FLOPs, the measured matmul ceiling, MFU, peak memory.

Speeds are measured by the command, never asserted; these tests check the arithmetic and the bookkeeping.
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from accelerate.utils import set_seed
from conftest import GEN_TINY, ROOT

from gen.bench.speed import measure, our_train_step, train_step_flops, utilisation
from gen.core import config as config_io
from gen.core.config import GenConfig
from gen.data import collate
from gen.generator.train import GenTask
from gen.training.train_step import TrainingStep


def test_cpu_flash_attention_is_counted_forward_and_backward():
    # SDPA on a CPU runs a kernel torch's counter does not know; uncounted, attention would be 0 FLOPs.
    b, h, n, d = 2, 2, 64, 32
    q = torch.randn(b, h, n, d, requires_grad=True)
    forward = 2 * (2 * b * h * n * n * d)  # QK^T and PV
    assert measure.count_flops(lambda: F.scaled_dot_product_attention(q, q, q)) == forward
    # The backward recomputes the scores and makes dQ, dK, dV and dP: 5 products to the forward's 2.
    assert measure.count_flops(lambda: F.scaled_dot_product_attention(q, q, q).sum().backward()) == forward * 7 // 2


def test_matmul_ceiling_is_the_timed_products_rate():
    rate = measure.matmul_ceiling(torch.device("cpu"), size=256, repeats=3)
    assert 1e8 < rate < 1e13  # 0.1 GFLOP/s to 10 TFLOP/s: any CPU, and not a unit slip


def test_mfu_holds_each_path_to_the_ceiling_of_its_dtype():
    train = {"ours_precision": "no", "ours_flop_per_s": 4e9, "reference_flop_per_s": 2e9}
    sample = {"ours_flop_per_s": 3e9, "reference_flop_per_s": 1e9, "ours_images_per_s": 5.0}
    out = utilisation(train, sample, torch.device("cpu"))
    ceiling = out["matmul_ceiling_flop_per_s"]
    assert list(ceiling) == ["fp32"]  # "no" is fp32: one ceiling, measured once
    assert out["mfu"] == pytest.approx({"train_ours": 4e9 / ceiling["fp32"], "train_reference": 2e9 / ceiling["fp32"],
                                        "sample_ours": 3e9 / ceiling["fp32"], "sample_reference": 1e9 / ceiling["fp32"]})


@pytest.mark.timeout(120)
def test_training_step_flops_leave_out_the_frozen_text_encoder(tmp_path):
    cfg = config_io.load(GenConfig, str(GEN_TINY), ["text.freeze=true"])
    task = GenTask(cfg, tmp_path / "run")
    batch = collate([task.dataset[i] for i in range(8)])
    set_seed(0)
    flops = train_step_flops(task, batch, torch.device("cpu"))
    # Counted again with the encoder's states cached, as they are during training: the same model FLOPs.
    model = copy.deepcopy(task.model)
    set_seed(0)
    assert measure.count_flops(lambda: task.loss(model, batch).backward()) == flops
    # With an empty cache the same step also runs the encoder: counting that would inflate MFU.
    task.text_cache.states.clear()
    set_seed(0)
    assert measure.count_flops(lambda: task.loss(model, batch).backward()) > flops


@pytest.mark.timeout(120)
def test_bench_times_the_training_step_a_run_takes(tmp_path):
    # The bench must time the step fit takes, not a copy of it: a copy can drift (an EMA left on the CPU beside a
    # GPU model, a skipped finiteness check). Both step train_step.TrainingStep; a CPU cannot show the device
    # mistake, but the skipped step it can.
    cfg = config_io.load(GenConfig, str(GEN_TINY), ["train.grad_accum=2"])
    task = GenTask(cfg, tmp_path / "run")
    trainer = our_train_step(task, cfg, "no")
    assert isinstance(trainer, TrainingStep) and trainer.cfg.grad_accum == 1  # one batch a call, as the reference
    batch = collate([task.dataset[i] for i in range(4)])
    loss, ok = trainer(iter([batch]))
    assert ok and torch.isfinite(loss) and trainer.lr_schedule.last_epoch == 1 and trainer.ema.optimization_step == 1
    weights = [p.detach().clone() for p in trainer.params]
    loss, ok = trainer(iter([{**batch, "pixel_values": torch.full_like(batch["pixel_values"], float("nan"))}]))
    assert not ok  # skipped: no update, and neither the LR schedule nor the EMA moves
    assert trainer.lr_schedule.last_epoch == 1 and trainer.ema.optimization_step == 1
    assert all(torch.equal(w, p) for w, p in zip(weights, trainer.params))


@pytest.mark.timeout(300)
def test_gpu_bench_script_runs_the_bench_and_it_reports_flops_mfu_and_memory(tmp_path):
    # .ci/gpu_bench is what a lent GPU machine runs; CI has no GPU, so it runs here on the CPU, with this
    # environment's python3 first on PATH as the GPU machine's would be.
    env = {**os.environ, "OUT": str(tmp_path), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run([str(ROOT / ".ci" / "gpu_bench"), str(GEN_TINY), "--set", "data.generate.count=64",
                           "--precisions", "no", "--no-compile"], env=env, timeout=280, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]  # say why, not only that it failed
    assert "diffusers" in (tmp_path / "env.txt").read_text()
    result = json.loads((tmp_path / "bench.json").read_text())
    train, sample, mfu = result["train"], result["sample"], result["mfu"]
    assert result["train_ratio"] == pytest.approx(train["ours_images_per_s"] / train["reference_images_per_s"])
    # Both paths are held to the same model FLOPs and (fp32 on this CPU) the same ceiling, so their MFUs
    # differ exactly as their speeds do.
    assert mfu["train_ours"] / mfu["train_reference"] == pytest.approx(result["train_ratio"])
    assert mfu["sample_ours"] / mfu["sample_reference"] == pytest.approx(result["sample_ratio"])
    assert all(0 < value < 1 for value in mfu.values())
    # A training step is forward + backward of the images: about 3 forwards. A sampling call is `steps`
    # forwards of 2 × 16 images (CFG by batch doubling) and the text encoder once.
    per_image_forward = sample["flops_per_call"] / (sample["steps"] * 2 * 16)
    assert 2.5 < train["flops_per_step"] / (result["batch_size"] * per_image_forward) < 3.2
    assert result["peak_memory"]["no"]["bytes"] > 10 * 2**20


@pytest.mark.timeout(300)
def test_gpu_train_script_trains_samples_the_demo_prompts_and_scores_them(tmp_path):
    # .ci/gpu_train is the other command a lent GPU machine runs; here on the CPU, with a UNet shrunk
    # through the script's pass-through options so that it trains and samples in seconds.
    out, run = tmp_path / "out", tmp_path / "run"
    env = {**os.environ, "OUT": str(out), "RUN_DIR": str(run),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    tiny = config_io.load(GenConfig, GEN_TINY, [])
    options = ["--set", f"data.path={tmp_path / 'data'}", "--set", "data.resolution=32", "--set", "data.generate.count=64",
               "--set", "train.batch_size=8", "--set", "train.max_steps=6", "--set", "sample.steps=2",
               *(x for key, value in tiny.unet.items() for x in ("--set", f"unet.{key}={json.dumps(value)}")),
               *(x for key in ("vocab_size", "n_embd", "n_layer", "n_head") for x in ("--set", f"text.{key}={getattr(tiny.text, key)}"))]
    proc = subprocess.run([str(ROOT / ".ci" / "gpu_train"), "5", *options], env=env, timeout=280,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert sorted(p.name for p in out.iterdir()) == ["env.txt", "grid.png", "oracle.json", "sample.log",
                                                    "summary.json", "train.log"]
    summary = json.loads((out / "summary.json").read_text())["metrics"]
    # The 5-minute budget is far from spent, so max_steps caps the run.
    assert summary["step"] == summary["total_steps"] == 6
    oracle = json.loads((out / "oracle.json").read_text())
    prompts = (ROOT / "samples" / "demo" / "prompts.txt").read_text().split("\n")
    assert oracle["n"] == 2 * len([p for p in prompts if p.strip()]) == 80
    assert len(list((run / "samples").glob("*.png"))) == 80 + 1  # and the grid
