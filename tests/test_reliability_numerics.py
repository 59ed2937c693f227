"""Numerics: a step with a non-finite loss or gradient is skipped and counted; train.max_bad_steps of
them in a row stop training with a one-line error and a checkpoint that `--resume` loads.

The bad steps are real: a GenTask whose loss is multiplied by NaN (NaN gradients) or has inf added (a
non-finite loss whose gradients stay finite) on chosen calls. One loss call is one step here (grad_accum 1).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import GEN_TINY
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gen.__main__ import main as gen_main
from gen.core import config as config_io
from gen.core.cli import error_message
from gen.core.config import GenConfig
from gen.domains.shapes.world import make_dataset
from gen.generator.train import GenTask
from gen.training.checkpoint import check_checkpoint
from gen.training.engine import fit
from gen.training.numerics import TrainingDiverged

STEPS = 6


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("shapes") / "data", count=128, size=16, seed=0)


class BadLossTask(GenTask):
    """The generator's task, with its loss spoiled on chosen calls (1-based): "nan" (NaN gradients too) or
    "inf" (an inf loss whose gradients stay finite, so only the loss check can catch it)."""

    def __init__(self, *args: Any, spoil: dict[int, str] | None = None, spoil_from: int | None = None) -> None:
        super().__init__(*args)
        self.spoil, self.spoil_from, self.calls = spoil or {}, spoil_from, 0

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        self.calls += 1
        loss = super().loss(model, batch)
        how = self.spoil.get(self.calls, "nan" if self.spoil_from and self.calls >= self.spoil_from else None)
        if how == "nan":
            return loss * float("nan")
        if how == "inf":
            return loss + float("inf")
        return loss


def config(data: Path, *sets: str) -> GenConfig:
    base = [f"data.path={data}", f"train.max_steps={STEPS}", "train.warmup_steps=1", "train.log_every=1",
            "train.ckpt_every=1", "train.keep_last=0", "train.batch_size=8"]
    return config_io.load(GenConfig, GEN_TINY, [*base, *sets])


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(run_dir / "logs"), size_guidance={"scalars": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def test_numerics_bad_steps_are_skipped_counted_and_training_goes_on(data, tmp_path, caplog):
    cfg = config(data)
    out = tmp_path / "run"
    task = BadLossTask(cfg, out, spoil={2: "nan", 3: "nan", 5: "inf"})
    with caplog.at_level(logging.WARNING, logger="gen.training.numerics"):
        metrics = fit(task, cfg.train, out)
    assert task.calls == STEPS + 3 and metrics["step"] == STEPS and metrics["bad_steps"] == 3
    # Attempts 2 and 3 would have been step 2, attempt 5 step 3 (after 2 bad ones, attempt 4 made step 2).
    warned = [r.getMessage() for r in caplog.records if "not finite" in r.getMessage()]
    assert [w.split(":")[0] for w in warned] == ["step 2", "step 2", "step 3"]
    assert "(2 in a row, 2 in all" in warned[1] and "(1 in a row, 3 in all" in warned[2]
    assert (2, 1.0) in scalars(out, "train/bad_steps") and scalars(out, "train/bad_steps")[-1] == (STEPS, 3.0)

    final = out / "checkpoints" / f"checkpoint-{STEPS:08d}"
    weights = load_file(str(final / "model.safetensors"))
    assert all(torch.isfinite(w).all() for w in weights.values())
    state = json.loads((final / "state.json").read_text())
    # Skipped steps moved nothing: STEPS optimizer and EMA updates, STEPS + 3 batches used.
    assert state["ema"]["optimization_step"] == STEPS and state["batches"] == STEPS + 3 and state["bad_steps"] == 3
    optimizer = torch.load(final / "optimizer.pt", weights_only=True)
    assert {float(s["step"]) for s in optimizer["optimizer"]["state"].values()} == {float(STEPS)}
    assert optimizer["lr_scheduler"]["last_epoch"] == STEPS  # the schedule did not move on a skipped step
    # Steps 1 and 2 are the same updates a clean run makes; the inf loss would have given a finite update.
    ema = load_file(str(out / "model" / "unet" / "diffusion_pytorch_model.safetensors"))
    assert all(torch.isfinite(w).all() for w in ema.values())


def test_numerics_every_step_bad_stops_with_a_checkpoint_that_resumes(data, tmp_path, capsys):
    cfg = config(data, "train.max_bad_steps=3")
    out = tmp_path / "run"
    task = BadLossTask(cfg, out, spoil_from=3)  # two good steps, then NaN for ever
    with pytest.raises(TrainingDiverged) as caught:
        fit(task, cfg.train, out)
    assert task.calls == 2 + 3
    saved = out / "checkpoints" / "checkpoint-00000002"
    message = error_message(caught.value)
    assert message.startswith("training diverged: 3 steps in a row after step 2 had a non-finite loss or gradient "
                              "(train.max_bad_steps=3); the last good state, step 2, is saved in ")
    assert f"saved in {saved}. " in message and f"--resume {saved} " in message and "\n" not in str(caught.value)
    assert check_checkpoint(saved) == 2
    state = json.loads((saved / "state.json").read_text())
    assert state["batches"] == 5 and state["bad_steps"] == 3 and state["ema"]["optimization_step"] == 2
    assert all(torch.isfinite(w).all() for w in load_file(str(saved / "model.safetensors")).values())
    assert scalars(out, "train/bad_steps")[-1] == (3, 3.0)

    # The CLI resumes from it with the plain task and trains to the end, past the skipped batches.
    sets = [a for s in [f"data.path={data}", f"train.max_steps={STEPS}", "train.warmup_steps=1", "train.ckpt_every=1",
                        "train.keep_last=0", "train.batch_size=8"] for a in ("--set", s)]
    assert gen_main(["train", str(GEN_TINY), "--out", str(out), *sets, "--resume", str(saved)]) == 0
    final = json.loads((out / "checkpoints" / f"checkpoint-{STEPS:08d}" / "state.json").read_text())
    assert final["batches"] == 5 + (STEPS - 2) and final["bad_steps"] == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["step"] == STEPS and summary["metrics"]["bad_steps"] == 3


def test_numerics_diverged_is_one_line_in_the_cli(data, tmp_path, capsys, monkeypatch):
    """What `gen train` prints when training diverges: one `error:` line naming the checkpoint, exit status 2."""
    import gen.generator.train

    monkeypatch.setattr(gen.generator.train, "GenTask", lambda *a: BadLossTask(*a, spoil_from=1))  # our task, not a mock
    sets = [a for s in [f"data.path={data}", "train.max_bad_steps=2", "train.batch_size=8"] for a in ("--set", s)]
    assert gen_main(["train", str(GEN_TINY), "--out", str(tmp_path / "run"), *sets]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    (line,) = [x for x in err.splitlines() if x.startswith("error: ")]
    assert line.startswith("error: training diverged: 2 steps in a row after step 0")
    assert str(tmp_path / "run" / "checkpoints" / "checkpoint-00000000") in line
    assert not (tmp_path / "run" / ".lock").exists()

