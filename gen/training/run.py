"""One training run in a run folder, for both models: lock, resume checks, config, fit, summary.

gen/generator/train.py and caption/train.py differ only in the task they build; everything around it is here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from accelerate.utils import set_seed

from gen.core import config as config_io
from gen.core.config import DataConfig
from gen.core.errors import ConfigError, DataError
from gen.core.outputs import atomic_write_text, dumps
from gen.core.processes import process_state
from gen.data import ImageCaptionDataset, SkipLog
from gen.training.engine import Task, fit
from gen.training.rundir import confirm_resume, start_run, undone_on_failure
from gen.training.train_step import param_groups


def train_in_run_dir(cfg: Any, run_dir: Path, make_task: Callable[[Path | None], Task], resume: str | None,
                     overwrite: bool) -> Task:
    """Build the task (given the checkpoint it resumes from, or None) and train it; returns the task.

    `cfg` is a GenConfig or CaptionConfig: anything with `train` and `data` sections.
    """
    check_data_source(cfg.data)
    with start_run(run_dir, resume, overwrite) as checkpoint:
        with undone_on_failure(run_dir):  # a start that fails here leaves nothing that blocks the corrected rerun
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


def check_data_source(data: DataConfig) -> None:
    """Training needs a place to read data from (drawn data such as shapes defaults to RUN_DIR/data): refused
    before the run folder is touched. Not a config rule: a config without data is fine for everything else."""
    if data.source in ("folder", "coco") and not data.path:
        what = "a folder with metadata.jsonl" if data.source == "folder" else "a COCO captions JSON file"
        raise ConfigError(f"data.source={data.source} needs data.path: {what} (--set data.path=...)")
    if data.source == "hf" and not (data.path or data.name):
        raise ConfigError("data.source=hf needs data.path (a save_to_disk folder or parquet) or data.name (hub)")


def check_enough_data(dataset: ImageCaptionDataset, skips: SkipLog, batch_size: int) -> None:
    """At least one usable item and one full global batch (the loop drops ragged batches), or one DataError line
    that says what was skipped: called by the tasks as soon as their data set is read, before they write anything."""
    batch = batch_size * process_state().num_processes
    why = f" ({sum(skips.counts.values())} rows skipped: {skips.summary()})" if skips.counts else ""
    if dataset.usable() == 0:
        raise DataError(f"the data set has no usable items{why}; `python -m gen check-data` lists every problem")
    if len(dataset) < batch:
        raise DataError(f"the data set has {len(dataset)} items, fewer than one batch of {batch}{why}; "
                        "lower train.batch_size or add data")
