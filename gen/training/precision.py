"""`train.mixed_precision: auto`: pick the precision the hardware runs fastest, and say why.

bf16 autocast on a CPU without native bf16 instructions (AVX2-only x86, most laptops) runs 10-25×
slower than fp32, so bf16 is never assumed: on a CPU it must be native *and* measured faster.
"""
from __future__ import annotations

import dataclasses
import logging
import platform
import time
from pathlib import Path
from typing import Callable

import torch

log = logging.getLogger(__name__)

# accelerate's precision names and the dtypes they autocast to; "no" runs fp32.
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """True when the CPU executes bf16 arithmetic in hardware (AVX512-BF16 or AMX on x86, BF16 on Arm)."""
    if platform.machine().lower() in ("x86_64", "amd64"):
        probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        return any(p() for p in probes if p is not None)
    try:  # aarch64: the kernel lists the BF16 extension among the CPU features
        features = Path("/proc/cpuinfo").read_text(errors="replace").split()
    except OSError:
        return False
    return "bf16" in features


@dataclasses.dataclass(frozen=True)
class PrecisionChoice:
    """What a training runs in, why, and the timings that decided it (empty when nothing was timed)."""

    precision: str  # accelerate's name: no (fp32), bf16 or fp16
    reason: str
    seconds_per_step: dict[str, float] = dataclasses.field(default_factory=dict)  # precision → median s/step

    def as_metrics(self) -> dict[str, object]:
        """The keys a run's summary.json and model card record."""
        return {"mixed_precision": self.precision, "mixed_precision_reason": self.reason,
                "mixed_precision_seconds_per_step": dict(self.seconds_per_step)}


def resolve(requested: str, device: torch.device, measure: Callable[[str], float] | None = None,
            native_bf16: Callable[[], bool] = cpu_has_native_bf16) -> PrecisionChoice:
    """The precision for accelerate and the reason; `measure(p)` returns seconds per training step in p."""
    if requested != "auto":  # TrainConfig has already normalised the spelling
        return PrecisionChoice(requested, "set in the config")
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return PrecisionChoice("bf16", f"auto: {torch.cuda.get_device_name(device)} supports bf16")
        return PrecisionChoice("fp16", f"auto: {torch.cuda.get_device_name(device)} has no bf16; fp16 with loss scaling")
    if device.type != "cpu":
        return PrecisionChoice("no", f"auto: fp32 on {device.type}")
    if not native_bf16():
        return PrecisionChoice("no", f"auto: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no native bf16; fp32")
    if measure is None:
        return PrecisionChoice("no", "auto: native bf16, but nothing to measure it on; fp32")
    timed = {"no": measure("no"), "bf16": measure("bf16")}
    fp32, bf16 = timed["no"], timed["bf16"]
    if bf16 < 0.95 * fp32:  # a clear win only: a tie is not worth bf16's rounding
        return PrecisionChoice("bf16", f"auto: native bf16 measured faster ({bf16:.3f} s against {fp32:.3f} s per step)",
                               timed)
    return PrecisionChoice("no", f"auto: native bf16 measured no faster ({bf16:.3f} s against {fp32:.3f} s per step); "
                                 "fp32", timed)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so a wall clock read after it covers that work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], None], precision: str, device: torch.device, repeats: int = 3) -> float:
    """Median seconds of `step()` under the autocast that accelerate would use for `precision`."""
    dtype = AUTOCAST_DTYPES.get(precision)
    times = []
    for i in range(repeats + 1):  # the first call pays for allocation and kernel choice
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            step()
        synchronize(device)
        if i:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]
