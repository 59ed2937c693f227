"""Optional torch.compile of a UNet for sampling, with a clean fall-back to eager.

Sampling compiles only on request (`--compile`): the speed-up pays for the compiling time only over long
sampling jobs. Training stays eager: its gain is smaller than the compiling time it costs inside a time budget.
The measurements are in docs/PERFORMANCE.md ("Levers, measured one at a time").
"""
from __future__ import annotations

import logging
import os
import shutil

import torch

log = logging.getLogger(__name__)


def _cxx_compiler() -> str | None:
    """Inductor's CPU backend builds C++ kernels; without a compiler it cannot run at all."""
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return name
    return None


def compile_module(module: torch.nn.Module, device: torch.device | str) -> bool:
    """Compile `module` in place (it keeps its type, config and save_pretrained). True if compiled.

    Shapes are static (dynamic=False): a sampling job repeats one batch shape, and a new shape (a last,
    smaller batch) costs one recompile. Errors inside inductor at the first call fall back to eager
    (dynamo's suppress_errors) with a warning, rather than ending the job.
    """
    if torch.device(device).type == "cpu" and _cxx_compiler() is None:
        log.warning("torch.compile skipped: no C++ compiler found (set CXX); sampling runs eager")
        return False
    torch._dynamo.config.suppress_errors = True
    module.compile(dynamic=False)
    log.info("UNet compiled with torch.compile (inductor); the first batch includes compiling time")
    return True
