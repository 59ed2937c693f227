"""What `gen bench` measures besides time: model FLOPs, the matmul ceiling they are held against, and peak memory.

Model FLOP utilisation (MFU, PaLM appendix B) is the model's FLOPs per second over what the hardware can
do. The ceiling here is not a datasheet figure but a large matrix product timed on the same device, in the
same dtype and threads, by the same command: a CPU's vector units, a GPU's clocks and a shared machine's
load all differ from the book.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from gen.training.precision import synchronize

aten = torch.ops.aten

def _cpu_sdpa(query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_sdpa_backward(grad_out: Any, query: Any, key: Any, value: Any, *args: Any, **kwargs: Any) -> int:
    return sdpa_backward_flop_count(grad_out, query, key, value)


# torch's counter knows the CUDA attention kernels but not the CPU flash kernel that SDPA dispatches to
# here: without these its attention would count as zero FLOPs.
_CPU_ATTENTION = {getattr(aten, name): formula for name, formula in (
    ("_scaled_dot_product_flash_attention_for_cpu", _cpu_sdpa),
    ("_scaled_dot_product_flash_attention_for_cpu_backward", _cpu_sdpa_backward)) if hasattr(aten, name)}


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs (a multiply-add is 2) of the matmuls, convolutions and attention that `fn()` runs."""
    with FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_ceiling(device: torch.device, dtype: torch.dtype = torch.float32, size: int | None = None,
                   repeats: int = 5) -> float:
    """FLOP/s of a square matrix product of `size` (default: 2048 on a CPU, 8192 on a GPU), median of `repeats`."""
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    times = []
    for i in range(repeats + 2):  # two warm-ups: allocation, kernel choice, clocks
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        if i >= 2:
            times.append(time.perf_counter() - start)
    return 2 * size**3 / sorted(times)[len(times) // 2]


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: torch.device) -> dict[str, Any]:
    """Peak bytes: the device's allocations since `reset_peak_memory` on a GPU; on a CPU the process's peak
    resident memory over its whole life, which no call can reset (so it bounds every stage run so far)."""
    if device.type == "cuda":
        return {"kind": "cuda_max_memory_allocated", "bytes": int(torch.cuda.max_memory_allocated(device))}
    try:
        import resource  # Unix only
    except ImportError:
        return {"kind": "unavailable", "bytes": None}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"kind": "process_peak_rss", "bytes": int(peak if sys.platform == "darwin" else peak * 1024)}
