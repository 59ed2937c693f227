"""`mixed_precision: auto`, the time-budget schedule and the frozen-text-state cache."""
from __future__ import annotations

import itertools
import json

import pytest
import torch
from conftest import GEN_TINY
from diffusers.optimization import get_cosine_schedule_with_warmup
from safetensors.torch import load_file

from gen.core import config as config_io
from gen.core.config import ConfigError, GenConfig
from gen.data.tokenizer import tokenize
from gen.generator.text import StateCache, encode
from gen.training.precision import resolve
from gen.training.schedule import BudgetPlan, WarmupCosine

CPU = torch.device("cpu")


def test_auto_picks_fp32_on_a_cpu_without_native_bf16():
    timed = []
    choice = resolve("auto", CPU, measure=lambda p: timed.append(p) or 1.0, native_bf16=lambda: False)
    assert choice.precision == "no" and "no native bf16" in choice.reason
    assert timed == [] and choice.seconds_per_step == {}, "no measurement is needed when the hardware has no bf16"


@pytest.mark.parametrize("bf16_seconds, expected", [(0.5, "bf16"), (0.97, "no"), (12.0, "no")])
def test_auto_with_native_bf16_keeps_it_only_when_measured_clearly_faster(bf16_seconds, expected):
    speed = {"no": 1.0, "bf16": bf16_seconds}
    choice = resolve("auto", CPU, measure=speed.__getitem__, native_bf16=lambda: True)
    assert choice.precision == expected and "measured" in choice.reason
    assert choice.seconds_per_step == speed  # the evidence is kept for summary.json and the model card


def test_an_explicit_precision_is_kept():
    choice = resolve("bf16", CPU, native_bf16=lambda: False)
    assert (choice.precision, choice.reason, choice.seconds_per_step) == ("bf16", "set in the config", {})


@pytest.mark.parametrize("spelling", ["no", "No", "fp32", "false", "off"])
def test_every_documented_spelling_of_no_is_accepted(spelling):
    # `--set train.mixed_precision=no` reaches the config as the YAML boolean False.
    cfg = config_io.load(GenConfig, GEN_TINY, [f"train.mixed_precision={spelling}"])
    assert cfg.train.mixed_precision == "no"


def test_an_unknown_precision_is_a_config_error():
    with pytest.raises(ConfigError, match="mixed_precision"):
        config_io.load(GenConfig, GEN_TINY, ["train.mixed_precision=fp8"])


def test_warmup_cosine_is_diffusers_cosine_schedule():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    ref = get_cosine_schedule_with_warmup(opt, num_warmup_steps=10, num_training_steps=100)
    ours = WarmupCosine(10, 100)
    for step in range(100):
        assert ours(step) == pytest.approx(ref.lr_lambdas[0](step), abs=1e-12)
    assert ours(100) == 0.0 and ours(150) == 0.0


def test_budget_plan_refixes_the_total_when_the_machine_slows_down():
    schedule = WarmupCosine(100, 1600)
    plan = BudgetPlan(schedule, max_steps=1600, warmup_steps=100, minutes=10)
    elapsed, step = 0.0, 0
    while elapsed < 150:  # 1 s a step for the first quarter of the budget
        step += 1
        elapsed += 1.0
        plan.observe(step, elapsed)
    first = schedule.total
    assert first == 23 + int((576 - 23) / 1.0)
    while elapsed < 300:  # then twice as slow: the total must shrink, or the hard stop cuts the cosine short
        step += 1
        elapsed += 2.0
        plan.observe(step, elapsed)
    assert plan.state["checks"] == 2
    assert schedule.total < first
    # The first check came at a quarter of the 576 planned steps (step 144, 144 s); the second, at half the
    # budget, re-fixes from the pace since then: 6 steps at 1 s and 75 at 2 s.
    assert (step, elapsed) == (225, 300.0)
    assert schedule.total == 225 + int((576 - 300) / ((300 - 144) / (225 - 144)))


def test_budget_plan_refixes_the_total_when_the_machine_speeds_up():
    # Slow while another job shares the machine (5 s a step), then fast (0.1 s): the 115 planned steps would
    # run out at 124 s, before the first re-check by time (150 s), ending the run with 4/5 of its budget unused.
    schedule = WarmupCosine(100, 10000)
    plan = BudgetPlan(schedule, max_steps=10000, warmup_steps=100, minutes=10)
    elapsed, step = 0.0, 0
    while step < 23:
        step += 1
        elapsed += 5.0
        plan.observe(step, elapsed)
    assert schedule.total == 23 + int((576 - 115) / 5.0) == 115
    while step < schedule.total and step < 20000:
        step += 1
        elapsed += 0.1
        plan.observe(step, elapsed)
    # Re-fixed at a quarter of the planned steps (step 29) from the faster pace; the run now fills its budget.
    assert schedule.total == step > 4000
    assert 0.9 * 576 < elapsed < 577  # 576 s: the budget less its 4% margin


def test_budget_plan_fixes_the_total_from_the_measured_speed():
    schedule = WarmupCosine(100, 1600)
    plan = BudgetPlan(schedule, max_steps=1600, warmup_steps=100, minutes=10, skip=3, measure=20, margin=0.96)
    # 2 s of start-up, then 1.5 s a step: a machine too slow for 1600 steps in 10 minutes.
    fixed = [plan.observe(step, 2.0 + 1.5 * step) for step in range(1, 24)]
    assert fixed == [False] * 22 + [True]
    remaining = 600 * 0.96 - (2.0 + 1.5 * 23)
    assert schedule.total == 23 + int(remaining / 1.5) == 382
    assert schedule.warmup == round(100 * 382 / 1600) == 24
    assert schedule(schedule.total) == 0.0


def test_budget_plan_caps_at_max_steps_on_a_fast_machine():
    schedule = WarmupCosine(100, 1600)
    plan = BudgetPlan(schedule, 1600, 100, minutes=10)
    for step in range(1, 24):
        plan.observe(step, 0.01 * step)
    assert (schedule.total, schedule.warmup) == (1600, 100)


class FakeClock:
    """One second per reading; raises after `stop_after` readings, as a kill would stop the run."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.ticks = itertools.count()
        self.stop_after = stop_after

    def __call__(self) -> float:
        t = next(self.ticks)
        if self.stop_after is not None and t >= self.stop_after:
            raise KeyboardInterrupt
        return float(t)


def _budget_run(out, clock, resume=None):
    from gen.generator.train import GenTask
    from gen.training.engine import fit

    cfg = config_io.load(GenConfig, GEN_TINY, ["train.max_steps=500", "train.max_minutes=1", "train.ckpt_every=8",
                                              "train.warmup_steps=50", "sample.prompts=[]"])
    torch.manual_seed(cfg.train.seed)
    task = GenTask(cfg, out)
    return fit(task, cfg.train, out, resume=resume, clock=clock)


@pytest.mark.timeout(300)
def test_budgeted_run_completes_its_schedule_and_resumes_exactly(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    metrics = _budget_run(a, FakeClock())
    # 1 s a step (one clock reading each): 23 + int(60 * 0.96 - 23) = 57 steps, far below the cap of 500.
    assert metrics["total_steps"] == metrics["step"] == 57
    state = json.loads((a / "checkpoints" / "checkpoint-00000057" / "state.json").read_text())
    assert state["total_steps"] == 57 and state["budget"]["from_budget"] is True

    with pytest.raises(KeyboardInterrupt):
        _budget_run(b, FakeClock(stop_after=45))  # dies after the checkpoint at step 40
    resumed = _budget_run(b, FakeClock(), resume="latest")
    assert resumed["total_steps"] == 57, "a resumed run keeps the schedule the first run fixed"
    for part in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        wa, wb = load_file(a / "model" / part), load_file(b / "model" / part)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), part


def test_state_cache_gives_the_encoders_states_and_reuses_them(tokenizer):
    from conftest import tiny_gpt2

    encoder = tiny_gpt2(tokenizer).eval()
    cache = StateCache(tokenizer, max_length=16)
    texts = ["a red circle on the left", "", "a blue square", "a red circle on the left"]
    states, mask = cache(encoder, texts)
    ids, ref_mask = tokenize(tokenizer, texts, 16)
    with torch.no_grad():
        ref, _ = encode(encoder, ids, ref_mask)
    assert torch.equal(mask, ref_mask)
    real = mask.bool()
    assert torch.allclose(states[real], ref[real], atol=1e-5)
    assert torch.count_nonzero(states[~real]) == 0
    assert len(cache.states) == 3
    with torch.no_grad():
        encoder.wte.weight.add_(1.0)  # a cache hit must not run the encoder again
    again, _ = cache(encoder, texts[:2])
    assert torch.equal(again, states[:2, : again.shape[1]])
