"""Processes: the one accelerate state every part of a run shares (`torchrun`, `accelerate launch`), a fresh
accelerator per training, and `python -m gen` run as a child process.

Every module that asks "am I the main process?" goes through `process_state`, so the first call decides for
all of them, before accelerate can decide otherwise.
"""
from __future__ import annotations

import os
import subprocess
import sys

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import parse_flag_from_env

from gen.core.errors import UserError


def _has_accelerator() -> bool:
    if hasattr(torch, "accelerator"):  # torch ≥ 2.6: CUDA, ROCm, MPS, XPU alike
        return torch.accelerator.is_available()
    return torch.cuda.is_available()


def process_state() -> PartialState:
    """accelerate's PartialState; processes launched together on a machine without a GPU join over gloo.

    A bare `PartialState()` forms a CPU process group only when passed cpu=True (accelerate's own
    `Accelerator` reads ACCELERATE_USE_CPU, `PartialState` does not), so without this two processes started
    by torchrun on a CPU-only machine would each train alone, both as "rank 0" of one.
    """
    launched = int(os.environ.get("LOCAL_RANK", -1)) != -1
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or (launched and not _has_accelerator()))


def fresh_accelerator(mixed_precision: str, gradient_accumulation_steps: int = 1) -> Accelerator:
    """An `Accelerator` in `mixed_precision`, whatever an earlier training in this process chose.

    accelerate keeps one `AcceleratorState` per process and refuses a second precision ("AcceleratorState has
    already been initialized and cannot be changed"). Each training picks its own (`auto` may time the captioner
    faster in bf16 and the generator in fp32), so that state is reset here, before every training. The
    `PartialState` underneath (process group, rank, device) is kept: every training of a process shares it.
    """
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()  # the accumulation plugin too: it is also a per-process singleton
    return Accelerator(mixed_precision=mixed_precision, gradient_accumulation_steps=gradient_accumulation_steps)


def run_gen(*args: str, capture: bool = False) -> str:
    """Run `python -m gen ARGS` in a child process, as a user would; returns what it printed when `capture`.

    How the captioner's commands drive the generator (the demo, meta-eval on generated images) without
    importing it; its progress and errors print as they come. A failure is one UserError naming the command.
    """
    done = subprocess.run([sys.executable, "-m", "gen", *args], stdout=subprocess.PIPE if capture else None,
                          text=True)
    if done.returncode != 0:
        raise UserError(f"`python -m gen {' '.join(args)}` failed (exit {done.returncode}); its message is above")
    return done.stdout or ""
