"""One training run in a run folder, for both models: lock, resume checks, config, fit, summary.

gen/generator/train.py and caption/train.py differ only in the task they build; everything around it is here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from accelerate.utils import set_seed

from gen.core import config as config_io
from gen.core.outputs import atomic_write_text, dumps
from gen.core.processes import process_state
from gen.training.engine import Task, fit
from gen.training.rundir import confirm_resume, start_run
from gen.training.train_step import param_groups


def train_in_run_dir(cfg: Any, run_dir: Path, make_task: Callable[[Path | None], Task], resume: str | None,
                     overwrite: bool) -> Task:
    """Build the task (given the checkpoint it resumes from, or None) and train it; returns the task.

    `cfg` is a GenConfig or CaptionConfig: anything with `train` and `data` sections.
    """
    with start_run(run_dir, resume, overwrite) as checkpoint:
        set_seed(cfg.train.seed)  # model initialisation is part of what a seed reproduces
        with process_state().main_process_first():  # shapes data and the tokenizer are written by one process
            task = make_task(checkpoint)
        confirm_resume(run_dir, checkpoint, task.model, param_groups(task.model, cfg.train.lr, task.lr_scale))
        config_io.save(cfg, run_dir / "config.yaml")  # only now: a resume that cannot start leaves it as it was
        metrics = fit(task, cfg.train, run_dir, str(checkpoint) if checkpoint else None, cfg.data.num_workers)
        summary = {"metrics": metrics, "skipped": task.skips.summary(), "notes": dict(task.skips.notes),
                   "examples": len(task.dataset)}
        if process_state().is_main_process:
            atomic_write_text(run_dir / "summary.json", dumps(summary, indent=2))
    return task
