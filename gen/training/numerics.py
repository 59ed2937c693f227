"""Non-finite losses and gradients: such a step is skipped and counted; too many in a row end the run.

A skipped step changes nothing that training carries forward (weights, optimizer moments, EMA, learning-rate
schedule, step counter); only its batch is used up, so the data order stays what it would have been.

Deciding to skip needs the answer on the host before the schedule, the EMA and the step counter move: one
small device-to-host read per optimizer step (on a CPU it costs nothing). Megatron-LM's mixed-precision
optimizer reads its found-inf flag the same way. Skipping on the device alone (fused AdamW's found_inf, as
the fp16 GradScaler does) would leave the schedule, the EMA and the step counter advancing on skipped steps.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from accelerate import Accelerator

from gen.core.errors import UserError

log = logging.getLogger(__name__)


class TrainingDiverged(UserError):
    """train.max_bad_steps steps in a row had a non-finite loss or gradient; the last good state was saved."""


def all_finite(finite: torch.Tensor, accelerator: Accelerator) -> bool:
    """`finite` (a bool tensor on the device) as a bool that every process agrees on.

    Gradients are the same on every rank after DDP's all-reduce, but a loss is each rank's own: a rank
    that skipped alone would leave the others' weights behind.
    """
    bad = (~finite).reshape(1).float()
    if accelerator.num_processes > 1:
        bad = accelerator.reduce(bad, reduction="max")
    return not bool(bad.item())


class BadSteps:
    """Counts skipped steps: all of them (for the log and summary), and the current run of them in a row."""

    def __init__(self, limit: int, total: int = 0, warn: bool = True) -> None:
        self.limit, self.total, self.in_a_row, self.warn = limit, total, 0, warn

    def good(self) -> None:
        self.in_a_row = 0

    def bad(self, step: int) -> bool:
        """Record a skipped attempt at `step`; True when that makes `limit` in a row."""
        self.total += 1
        self.in_a_row += 1
        if self.warn:
            log.warning("step %d: the loss or a gradient is not finite; the update is skipped (%d in a row, %d in "
                        "all; training stops after train.max_bad_steps=%d in a row)", step, self.in_a_row,
                        self.total, self.limit)
        return self.in_a_row >= self.limit

    def diverged(self, step: int, folder: Path) -> TrainingDiverged:
        return TrainingDiverged(
            f"training diverged: {self.in_a_row} steps in a row after step {step} had a non-finite loss or gradient "
            f"(train.max_bad_steps={self.limit}); the last good state, step {step}, is saved in {folder}. Check "
            f"the data and train.lr, then resume from it with --resume {folder} (its data order continues past "
            "the skipped batches) or start over with --overwrite")
