"""Two trainings in one process, each in the precision it chose: accelerate's per-process state must not leak.

`make demo` trains the captioner and then the generator in one process; with `auto` the two can pick
different precisions (bf16 timed faster for one, fp32 for the other on the same CPU).
"""
from __future__ import annotations

import json

import pytest
from accelerate.state import AcceleratorState
from conftest import CAPTION_TINY, GEN_TINY


def _precision_of(run_dir) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())["metrics"]
    return {k: summary[k] for k in ("mixed_precision", "mixed_precision_reason")}


@pytest.mark.parametrize("first, second", [("no", "bf16"), ("bf16", "no")])
def test_a_second_training_in_one_process_runs_in_its_own_precision(tmp_path, first, second):
    from caption.train import train as train_captioner
    from gen.generator.train import train as train_generator

    steps = ["train.max_steps=2"]
    train_generator(GEN_TINY, out=tmp_path / "gen", overrides=[*steps, f"train.mixed_precision={first}"])
    train_captioner(CAPTION_TINY, out=tmp_path / "cap", overrides=[*steps, f"train.mixed_precision={second}"])

    assert _precision_of(tmp_path / "gen") == {"mixed_precision": first, "mixed_precision_reason": "set in the config"}
    assert _precision_of(tmp_path / "cap") == {"mixed_precision": second, "mixed_precision_reason": "set in the config"}
    assert AcceleratorState().mixed_precision == second  # the state the last training built, not the first's
    card = (tmp_path / "cap" / "model" / "README.md").read_text()
    assert f"- mixed precision: {second} (set in the config)" in card


def test_two_generator_runs_in_one_process_may_differ_in_precision(tmp_path):
    from gen.generator.train import train as train_generator

    steps = ["train.max_steps=1"]
    for name, precision in (("a", "bf16"), ("b", "no"), ("c", "bf16")):
        train_generator(GEN_TINY, out=tmp_path / name, overrides=[*steps, f"train.mixed_precision={precision}"])
        assert _precision_of(tmp_path / name)["mixed_precision"] == precision
