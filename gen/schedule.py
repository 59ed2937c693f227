"""Learning-rate schedule and the step plan under a wall-clock budget.

With `train.max_minutes` a fixed step count is wrong on every machine but the one it was tuned on: a
slower one stops with the cosine schedule cut short and the learning rate still high. So the run
times its first steps, fixes its total step count from the budget, and keeps a step-based schedule
from then on. The total lives in the schedule object, which LambdaLR saves in its state dict, so a
resumed run follows exactly the schedule the first run fixed.
"""
from __future__ import annotations

import logging
import math

log = logging.getLogger(__name__)


class WarmupCosine:
    """LR multiplier: linear warm-up over `warmup` steps, then a half cosine to 0 at `total`.

    The same curve as diffusers' get_cosine_schedule_with_warmup, as a callable object rather than a
    closure so that LambdaLR.state_dict() stores `warmup` and `total` with the optimizer state.
    """

    def __init__(self, warmup: int, total: int) -> None:
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return step / max(1, self.warmup)
        progress = (step - self.warmup) / max(1, self.total - self.warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress))))


class BudgetPlan:
    """Fixes `schedule.total` from the measured speed of steps [skip, skip + measure) under a budget.

    `margin` leaves room for checkpoints, evaluation and a machine that slows down later; the hard
    stop at `minutes` still applies, so a run never overshoots its budget by more than one step.
    """

    def __init__(self, schedule: WarmupCosine, max_steps: int, warmup_steps: int, minutes: float | None,
                 skip: int = 3, measure: int = 20, margin: float = 0.96) -> None:
        self.schedule, self.max_steps, self.warmup_steps = schedule, max_steps, warmup_steps
        self.budget_s = minutes * 60 if minutes is not None else None
        self.skip, self.measure, self.margin = skip, measure, margin
        self.fixed = self.budget_s is None  # without a budget the plan is max_steps from the start
        self.from_budget = False  # True once the budget has fixed the total (saved in checkpoints)
        self._t0: float | None = None

    def observe(self, step: int, elapsed_s: float) -> bool:
        """Call after each step with seconds since training began; True when this call fixed the plan."""
        if self.fixed:
            return False
        if step == self.skip:
            self._t0 = elapsed_s
        elif self._t0 is not None and step == self.skip + self.measure:
            per_step = (elapsed_s - self._t0) / self.measure
            remaining = self.budget_s * self.margin - elapsed_s
            total = max(step + 1, min(self.max_steps, step + int(remaining / per_step)))
            self.fix(total, per_step)
            return True
        return False

    def fix(self, total: int, per_step: float | None = None) -> None:
        # Warm-up keeps its share of the schedule: a run half as long warms up half as many steps.
        self.schedule.total = total
        self.schedule.warmup = min(self.warmup_steps, round(self.warmup_steps * total / self.max_steps))
        self.fixed = self.from_budget = True
        speed = f" at {per_step:.3f} s/step" if per_step else ""
        log.info("time budget %.1f min%s: schedule fixed at %d steps (cap %d), warm-up %d",
                 (self.budget_s or 0) / 60, speed, total, self.max_steps, self.schedule.warmup)
