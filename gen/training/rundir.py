"""A run folder belongs to one run at a time: a lock while training, and no silent reuse of an earlier run.

`start_run` is what `gen train` and `caption train` both call before they touch RUN_DIR:
- a lock file (pid + host) refuses a second process; one left by a dead process is taken over with a warning;
- a fresh run into a folder that holds an earlier run is refused unless `--overwrite` (which clears it)
  or `--resume` (which continues it) is given;
- a resume checkpoint is resolved and checked before anything is written; once the model is built,
  `confirm_resume` checks that the checkpoint fits it and moves checkpoints newer than it aside
  (see checkpoint.Checkpoints). Only then do the trainers write config.yaml.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from accelerate.utils import broadcast_object_list

from gen.core.errors import UserError
from gen.core.outputs import remove_path, require_dir_or_missing
from gen.core.processes import process_state
from gen.training.checkpoint import Checkpoints, check_checkpoint, check_fits, check_optimizer_fits

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"
# What a run writes into RUN_DIR. The first four mark the folder as used; --overwrite removes all of them.
# Not listed, so never removed: data/ (shapes data written there by default) and anything else of the user's.
USED_MARKERS = ("checkpoints", "model", "tokenizer", "logs")
RUN_OUTPUTS = (*USED_MARKERS, "summary.json", "config.yaml", ".tmp-model", ".old-model")


class RunDirBusy(UserError):
    """Another live process holds the run folder's lock."""


class RunDirInUse(UserError):
    """A fresh run was asked for in a folder that holds an earlier run."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def process_start_time(pid: int) -> int | None:
    """When process PID started, in clock ticks since boot (field 22 of Linux's /proc/PID/stat); None where there is
    no /proc or PID is gone. A pid and its start time name one process: a pid alone may be reused by another."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 2 is the command name in parentheses and may itself hold spaces or ")": count from the last ")".
    after_name = stat.rpartition(")")[2].split()
    try:
        return int(after_name[22 - 3])
    except (IndexError, ValueError):
        return None


class RunDirLock:
    """RUN_DIR/.lock, created exclusively, holding {"pid", "host", "started"} of the process that trains there, and
    on Linux its "start_time" (process_start_time).

    A lock whose pid is dead on this host is stale (a killed run) and is taken over with a warning; so is one whose
    pid is alive but started at another time than the lock says (the pid was reused by an unrelated process). A lock
    from another host cannot be checked, so it is refused with the command that removes it. Two processes
    taking over the same stale lock within microseconds could both succeed; an flock would close that
    window but does not work on every network file system, and a pid in a file is what a user can read.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.mine: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname()}
        start_time = process_start_time(os.getpid())
        if start_time is not None:
            self.mine["start_time"] = start_time

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as fh:
            json.dump({**self.mine, "started": time.strftime("%Y-%m-%d %H:%M:%S")}, fh)
        return True

    def holder(self) -> dict | None:
        """The lock's content, or None when it is gone or unreadable."""
        try:
            found = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return found if isinstance(found, dict) else None

    def acquire(self) -> None:
        if self._create():
            return
        holder = self.holder()
        busy = f"{self.path.parent} is in use"
        if holder is None or not isinstance(holder.get("pid"), int):
            raise RunDirBusy(f"{busy}: {self.path} exists but is unreadable; if no run is training there, "
                             f"delete {self.path}")
        who = f"pid {holder['pid']} on {holder.get('host')}, started {holder.get('started', '?')}"
        if holder.get("host") != self.mine["host"]:
            raise RunDirBusy(f"{busy} by {who}; this host cannot check that process: if it has ended, "
                             f"delete {self.path}, or pass another --out")
        gone = "is gone"
        if _pid_alive(holder["pid"]):
            recorded, now = holder.get("start_time"), process_start_time(holder["pid"])
            if recorded is None or now is None or recorded == now:  # without both times, today's answer: busy
                raise RunDirBusy(f"{busy} by a running process ({who}); wait for it to finish, stop it, "
                                 f"or pass another --out")
            gone = f"is gone (pid {holder['pid']} now belongs to another process, started at another time)"
        log.warning("taking over the lock of %s: its process (%s) %s", self.path.parent, who, gone)
        self.path.unlink(missing_ok=True)
        if not self._create():
            raise RunDirBusy(f"{busy}: another process took over its stale lock just now; pass another --out")

    def release(self) -> None:
        """Remove the lock only if it is still ours (a takeover may have replaced it)."""
        held = self.holder()
        if held is not None and all(held.get(k) == v for k, v in self.mine.items()):
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunDirLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _settle(run_dir: Path, resume: str | None, overwrite: bool) -> Path | None:
    """Check what RUN_DIR holds against what was asked for; returns the checkpoint to resume from."""
    ckpts = Checkpoints(run_dir)
    if resume:
        folder = ckpts.resolve(resume)
        check_checkpoint(folder)
        return folder
    used = [name for name in USED_MARKERS if (run_dir / name).exists()]
    if used and not overwrite:
        raise RunDirInUse(f"{run_dir} holds an earlier run ({', '.join(used)}); pass --resume latest to continue "
                          "it, --overwrite to delete it and start over, or another --out")
    if overwrite:
        for name in RUN_OUTPUTS:
            path = run_dir / name
            if remove_path(path):
                log.warning("--overwrite: removed %s", path)
    return None


@contextmanager
def start_run(run_dir: Path, resume: str | None = None, overwrite: bool = False) -> Iterator[Path | None]:
    """Lock RUN_DIR and settle its state; yields the checkpoint to resume from (None for a fresh run).

    With several processes (torchrun, accelerate launch) only the main one locks and changes the folder. The
    others receive its outcome, the checkpoint or the error, so every process stops with the same one-line
    error instead of waiting for ever on a main process that has stopped.
    """
    if resume and overwrite:
        raise UserError("--resume and --overwrite exclude each other: --resume continues the run in the folder, "
                        "--overwrite deletes it")
    require_dir_or_missing(run_dir)
    state = process_state()
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunDirLock(run_dir) if state.is_main_process else None
    outcome: list[Any] = [None, None]  # the checkpoint to resume from, the error
    if lock is not None:
        try:
            lock.acquire()
            outcome[0] = _settle(run_dir, resume, overwrite)
        except Exception as err:
            lock.release()  # only if it is ours
            if state.num_processes == 1:
                raise
            outcome[1] = err
    if state.num_processes > 1:
        broadcast_object_list(outcome)
    folder, error = outcome
    if error is not None:
        raise error
    try:
        yield folder
    finally:
        if lock is not None:
            lock.release()


@contextmanager
def undone_on_failure(run_dir: Path) -> Iterator[None]:
    """Remove the run outputs (RUN_OUTPUTS) that this block created if it fails, so that a start which cannot
    begin training (bad data, a model the config cannot build) leaves no tokenizer/ or logs/ that would make
    the corrected rerun look like an earlier run. What was there before the block is never touched."""
    before = {name for name in RUN_OUTPUTS if (run_dir / name).exists()}
    try:
        yield
    except BaseException:
        if process_state().is_main_process:
            for name in RUN_OUTPUTS:
                if name not in before:
                    remove_path(run_dir / name)
        raise


def confirm_resume(run_dir: Path, checkpoint: Path | None, model: torch.nn.Module,
                   groups: list[dict[str, Any]] | None = None) -> None:
    """Once the model is built: the checkpoint must fit it, and its optimizer state the parameter `groups` the
    optimizer will get (gen.training.train_step.param_groups); then checkpoints newer than it are moved aside.

    Until this passes, a resume has changed nothing in RUN_DIR.
    """
    if checkpoint is None:
        return
    check_fits(checkpoint, model)
    if groups is not None:
        check_optimizer_fits(checkpoint, groups)
    if process_state().is_main_process:  # what came after the resume point is another history
        Checkpoints(run_dir).abandon_after(check_checkpoint(checkpoint))


def tokenizer_of(checkpoint: Path) -> Path:
    """The tokenizer a checkpoint was trained with: RUN_DIR/tokenizer of the run that wrote it."""
    folder = checkpoint.resolve().parent.parent / "tokenizer"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found: resuming from {checkpoint} needs the tokenizer its run "
                                "saved beside checkpoints/")
    return folder
