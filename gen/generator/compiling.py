"""Optional torch.compile of a UNet for sampling, with a clean fall-back to eager.

Measured on a 2-core AVX2 CPU (docs/PERFORMANCE.md): inductor makes the shapes32 UNet's inference call
1.37× faster once compiled (the whole pipeline 1.24× the reference loop, `gen bench`), after 40-60 s of
compiling, so it pays from about 2,000 images at 10 steps and is off by default. For training it gained 4%
after two minutes of compiling, less than it costs inside a 15-minute budget, so training stays eager.
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
