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
    """Fixes `schedule.total` from the measured pace under a time budget, and re-checks it as the run goes.

    The first fix uses steps [skip, skip + measure). A machine can slow down later (another job starts,
    thermal limits), which would cut the cosine short at the hard stop, so at 25%, 50% and 75% of the
    budget the pace since the last check re-fixes the total when it is more than 3% off. A machine can
    also speed up (a job sharing it ends): then the planned steps run out before the budget's checkpoints
    do, so each check also comes at that share of the planned steps, whichever is first. `margin`
    leaves room for checkpoints and evaluation. Everything the plan knows is in `state`, which
    checkpoints store, so a resumed run re-plans exactly as the uninterrupted one would.
    """

    REPLAN_AT = (0.25, 0.5, 0.75)

    def __init__(self, schedule: WarmupCosine, max_steps: int, warmup_steps: int, minutes: float | None,
                 skip: int = 3, measure: int = 20, margin: float = 0.96) -> None:
        self.schedule, self.max_steps, self.warmup_steps = schedule, max_steps, warmup_steps
        self.budget_s = minutes * 60 if minutes is not None else None
        self.skip, self.measure, self.margin = skip, measure, margin
        # from_budget: the budget has fixed the total; mark: (step, seconds) the pace is measured from;
        # checks: how many of REPLAN_AT are done; elapsed_s: training seconds so far, across resumes.
        self.state: dict = {"from_budget": False, "mark": None, "checks": 0, "elapsed_s": 0.0}

    @property
    def from_budget(self) -> bool:
        return self.state["from_budget"]

    def observe(self, step: int, elapsed_s: float) -> bool:
        """Call after each step with the run's training seconds so far; True when the total changed."""
        state = self.state
        state["elapsed_s"] = elapsed_s
        if self.budget_s is None:
            return False
        if not state["from_budget"]:
            if step == self.skip:
                state["mark"] = (step, elapsed_s)
            elif state["mark"] is not None and step == self.skip + self.measure:
                self._refix(step, elapsed_s, first=True)
                return True
            return False
        share = self.REPLAN_AT[state["checks"]] if state["checks"] < len(self.REPLAN_AT) else None
        if share is not None and (elapsed_s >= share * self.budget_s or step >= share * self.schedule.total):
            state["checks"] += 1
            return self._refix(step, elapsed_s, first=False)
        return False

    def _refix(self, step: int, elapsed_s: float, first: bool) -> bool:
        mark_step, mark_s = self.state["mark"]
        per_step = (elapsed_s - mark_s) / max(1, step - mark_step)
        self.state["mark"] = (step, elapsed_s)
        remaining = self.budget_s * self.margin - elapsed_s
        total = max(step + 1, min(self.max_steps, step + int(remaining / per_step)))
        if not first and abs(total - self.schedule.total) <= 0.03 * self.schedule.total:
            return False
        self.schedule.total = total
        if first:  # warm-up keeps its share of the schedule: a run half as long warms up half as many steps
            self.schedule.warmup = min(self.warmup_steps, round(self.warmup_steps * total / self.max_steps))
        self.state["from_budget"] = True
        log.info("time budget %.1f min, %.3f s/step at step %d: schedule fixed at %d steps (cap %d), warm-up %d",
                 self.budget_s / 60, per_step, step, total, self.max_steps, self.schedule.warmup)
        return True

    def set_total(self, total: int) -> None:
        """Take another process's total (several processes must stop at the same step)."""
        self.schedule.total = total
