"""Several processes (`torchrun`, `accelerate launch`): the one accelerate state every part of a run shares.

Every module that asks "am I the main process?" goes through `process_state`, so the first call decides for
all of them, before accelerate can decide otherwise.
"""
from __future__ import annotations

import os

import torch
from accelerate import PartialState
from accelerate.utils import parse_flag_from_env


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
