"""`gen bench`: our training and sampling speed against a plain diffusers-style baseline, on the same model.

A measurement, not a test. Both paths run in one process on copies of one model and the same batches,
timed in interleaved blocks (so drift in machine speed hits both alike), and compared by medians.
"""
from __future__ import annotations

import copy
import dataclasses
import gc
import json
import os
import platform
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from accelerate import PartialState
from accelerate.utils import set_seed

from gen.bench import measure
from gen.bench.reference import reference_sample, reference_train_step
from gen.core import config as config_io
from gen.core.config import GenConfig
from gen.core.outputs import atomic_write_text, refuse_existing
from gen.core.processes import fresh_accelerator
from gen.data import EpochBatchSampler, collate
from gen.generator.diffusion import sampling_scheduler
from gen.generator.train import GenTask
from gen.training import precision as precision_io
from gen.training.engine import choose_precision
from gen.training.precision import synchronize
from gen.training.train_step import TrainingStep


def _interleaved(paths: dict[str, Callable[[], Any]], blocks: int, per_block: int, device: torch.device,
                 warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each path, timed in alternating blocks after `warmup` calls each.

    Each call is timed to the end of its device work: our step never waits for the GPU by itself.
    """
    times: dict[str, list[float]] = {name: [] for name in paths}
    for fn in paths.values():
        for _ in range(warmup):
            fn()
    for _ in range(blocks):
        for name, fn in paths.items():
            for _ in range(per_block):
                synchronize(device)
                start = time.perf_counter()
                fn()
                synchronize(device)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def our_train_step(task: GenTask, cfg: GenConfig, precision: str) -> TrainingStep:
    """The step `gen train` takes (train_step.TrainingStep: accelerate, fused AdamW, clipping, the finiteness
    check, LR schedule, EMA), one batch per call (no gradient accumulation) like the reference."""
    accelerator = fresh_accelerator(precision)
    step = TrainingStep.build(task, dataclasses.replace(cfg.train, grad_accum=1), accelerator.device)
    step.prepare(accelerator)
    return step


def _step_on_next(step: Callable[[dict[str, Any]], Any], data: Iterator[dict[str, Any]]) -> None:
    step(next(data))


def _batches(task: GenTask, batch_size: int) -> Iterator[dict[str, Any]]:
    sampler = iter(EpochBatchSampler(len(task.dataset), batch_size, 0))
    while True:
        yield collate([task.dataset[k] for k in next(sampler)])


def train_step_flops(task: GenTask, batch: dict[str, Any], device: torch.device) -> int:
    """Model FLOPs of one training step (forward and backward of our loss) on a copy of the model.

    The optimizer and the reference's per-step text encoder are left out: MFU counts what the model
    needs, so both paths are held to the same FLOPs and their MFUs differ exactly as their speeds do.
    """
    model = copy.deepcopy(task.model).to(device)
    if task.text_cache is not None:  # a miss would add the frozen encoder, which a step does not run
        task.text_cache(task.model.text_encoder, [*batch["text"], ""])
    return measure.count_flops(lambda: task.loss(model, batch).backward())


def train_speed(cfg: GenConfig, run_dir: Path, device: torch.device, blocks: int = 6,
                per_block: int = 5) -> dict[str, Any]:
    """Training images/s, ours (in its `auto` precision) and the reference (fp32), same model and batches."""
    set_seed(0)
    task = GenTask(cfg, run_dir)
    reference_model = copy.deepcopy(task.model).to(device)
    precision = choose_precision(task, cfg.train, device).precision  # as a training run would
    ours = our_train_step(task, cfg, precision)
    ref = reference_train_step(reference_model, task.tokenizer, task.max_length, task.scheduler,
                               cfg.diffusion.cond_drop, cfg.train.grad_clip)
    data = _batches(task, cfg.train.batch_size)
    flops = train_step_flops(task, next(data), device)
    seconds = _interleaved({"ours": partial(ours, data), "reference": partial(_step_on_next, ref, data)},
                           blocks, per_block, device=device)
    b = cfg.train.batch_size
    return {"ours_images_per_s": b / seconds["ours"], "reference_images_per_s": b / seconds["reference"],
            "ours_precision": precision, "flops_per_step": flops,
            "ours_flop_per_s": flops / seconds["ours"], "reference_flop_per_s": flops / seconds["reference"]}


def sample_speed(cfg: GenConfig, run_dir: Path, device: torch.device, n: int = 16, blocks: int = 4,
                 compiled: bool = True) -> dict[str, Any]:
    """Sampling images/s at cfg.sample.steps DPM++ steps with CFG: our pipeline against the reference loop.

    With `compiled`, also `gen sample --compile`'s pipeline; its first call (the compiling) is timed apart
    and left out of the median, as it is paid once per job.
    """
    task = GenTask(cfg, run_dir)
    model = task.model.eval().to(device)
    prompts = ((cfg.sample.prompts or ["a red circle on the left"]) * n)[:n]
    steps, guidance = cfg.sample.steps, cfg.sample.guidance
    ref_scheduler = sampling_scheduler(task.scheduler)
    gens = [torch.Generator().manual_seed(i) for i in range(n)]

    def ours(compile: bool) -> Callable[[], Any]:
        pipe = task.pipeline(copy.deepcopy(model)).for_sampling(device, compile=compile)  # as `gen sample` loads it
        pipe.set_progress_bar_config(disable=True)
        return lambda: pipe(prompts, num_inference_steps=steps, guidance_scale=guidance, generator=gens, output_type="pt")

    paths = {"ours": ours(False),
             "reference": lambda: reference_sample(model, task.tokenizer, task.max_length, ref_scheduler, prompts,
                                                   steps, guidance, gens)}
    result: dict[str, Any] = {"steps": steps, "flops_per_call": measure.count_flops(paths["reference"])}
    if compiled:
        paths["ours_compiled"] = ours(True)
        start = time.perf_counter()
        paths["ours_compiled"]()
        synchronize(device)
        result["compile_s"] = time.perf_counter() - start
    seconds = _interleaved(paths, blocks, 1, warmup=1, device=device)
    result.update({f"{name}_images_per_s": n / s for name, s in seconds.items()})
    result.update({f"{name}_flop_per_s": result["flops_per_call"] / s for name, s in seconds.items()})
    return result


def precision_speeds(cfg: GenConfig, run_dir: Path, precisions: list[str], device: torch.device,
                     steps: int = 6) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """Training steps/s of our step under each precision (bf16 on a CPU without it can be 10-25× slower),
    and the peak memory of each (on a CPU, the process's peak so far: see measure.peak_memory)."""
    rates, peaks = {}, {}
    for precision in precisions:
        set_seed(0)
        task = GenTask(cfg, run_dir)
        step, data = our_train_step(task, cfg, precision), _batches(task, cfg.train.batch_size)
        gc.collect()  # the models of earlier stages, held in reference cycles, would count in the peak
        measure.reset_peak_memory(device)
        rates[precision] = 1.0 / _interleaved({precision: partial(step, data)}, 1, steps, warmup=1,
                                              device=device)[precision]
        peaks[precision] = measure.peak_memory(device)
    return rates, peaks


def utilisation(train: dict[str, Any], sample: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Matmul ceilings measured here, in fp32 and in our training precision, and each path's MFU against
    the ceiling of the dtype it runs in (the reference and sampling run fp32)."""
    ours = {"no": "fp32"}.get(train["ours_precision"], train["ours_precision"])
    ceilings = {name: measure.matmul_ceiling(device, precision_io.AUTOCAST_DTYPES.get(name, torch.float32))
                for name in dict.fromkeys(["fp32", ours])}
    ours_ceiling = ceilings[ours]
    mfu = {"train_ours": train["ours_flop_per_s"] / ours_ceiling,
           "train_reference": train["reference_flop_per_s"] / ceilings["fp32"]}
    mfu.update({f"sample_{name.removesuffix('_flop_per_s')}": value / ceilings["fp32"]
                for name, value in sample.items() if name.endswith("_flop_per_s")})
    return {"matmul_ceiling_flop_per_s": ceilings, "mfu": mfu}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    return {"cpu": cpu_name(), "arch": platform.machine(), "cores": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": precision_io.cpu_has_native_bf16(), "threads": torch.get_num_threads(),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu", "torch": torch.__version__}


def bench(config_path: str, overrides: list[str], precisions: list[str] | None = None,
          out: str | None = None, compiled: bool = True, overwrite: bool = False) -> dict[str, Any]:
    """Speeds, ratios ours / reference, and steps/s per precision; printed, and written to `out` as JSON.

    `out` is rewritten after each stage, so a run stopped by a time limit (a lent GPU machine's) keeps the
    stages it finished; sampling, with its one-off compiling, comes last. An existing `out` is refused
    unless `overwrite`, before the minutes of timing, not after.
    """
    if out and not overwrite:
        refuse_existing([Path(out)], "gen bench")
    cfg = config_io.load(GenConfig, config_path, overrides)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    device = PartialState().device
    result: dict[str, Any] = {"config": str(config_path), "batch_size": cfg.train.batch_size, "machine": machine()}

    def stage_done() -> None:
        if out:
            atomic_write_text(out, json.dumps(result, indent=2))

    with tempfile.TemporaryDirectory() as tmp:
        train = train_speed(cfg, Path(tmp) / "t", device)
        result.update(train=train, train_ratio=train["ours_images_per_s"] / train["reference_images_per_s"])
        stage_done()
        per_precision, peaks = precision_speeds(cfg, Path(tmp) / "p", precisions or ["no", "bf16"], device)
        result.update(train_steps_per_s=per_precision, peak_memory=peaks)
        stage_done()
        sample = sample_speed(cfg, Path(tmp) / "s", device, compiled=compiled)
    result.update(sample=sample, **utilisation(train, sample, device),
                  sample_ratio=sample["ours_images_per_s"] / sample["reference_images_per_s"])
    if "ours_compiled_images_per_s" in sample:  # `gen sample --compile`, after its one-off compile_s
        result["sample_ratio_compiled"] = sample["ours_compiled_images_per_s"] / sample["reference_images_per_s"]
    print(json.dumps(result, indent=2))
    stage_done()
    return result
