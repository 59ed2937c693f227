"""Run folders and checkpoints: atomic writes, keep-last-K, `latest` lookup. Shared by gen and caption."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, load_model, save_file, save_model

from gen.core.errors import UserError
from gen.core.outputs import atomic_dir

log = logging.getLogger(__name__)
CKPT = re.compile(r"^checkpoint-(\d+)$")


class CorruptCheckpoint(UserError):
    """A checkpoint that cannot be read, or does not fit the model being trained."""


def run_dir_for(config_name: str, out: str | Path | None) -> Path:
    """`--out` when given, else runs/<config name>."""
    return Path(out) if out else Path("runs") / config_name


class Checkpoints:
    """checkpoint-<step> folders under RUN_DIR/checkpoints, each written to a temp name then renamed.

    A process killed mid-write leaves only a .tmp folder, which `latest` ignores and the next save removes.
    Pruning keeps the `keep_last` newest checkpoints up to the one just written, that one always
    included. Checkpoints newer than it belong to an abandoned future (a resume from an older one);
    they are moved aside to checkpoints/abandoned-<time>/, never deleted and never mixed into `latest`.
    """

    def __init__(self, run_dir: str | Path, keep_last: int = 2) -> None:
        self.dir = Path(run_dir) / "checkpoints"
        self.keep_last = keep_last

    def all(self) -> list[tuple[int, Path]]:
        if not self.dir.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.dir.iterdir() if (m := CKPT.match(p.name)) and p.is_dir()]
        return sorted(found)

    def latest(self) -> Path | None:
        found = self.all()
        return found[-1][1] if found else None

    def resolve(self, resume: str) -> Path:
        """`latest` or a path → a checkpoint folder, with a clear error when there is none."""
        path = self.latest() if resume == "latest" else Path(resume)
        if path is None:
            raise FileNotFoundError(f"--resume latest: no checkpoint in {self.dir}; start a fresh run instead "
                                    "(with --overwrite, if the folder holds an earlier run)")
        if not (path / "state.json").is_file():
            raise FileNotFoundError(f"{path} is not a checkpoint folder (no state.json); "
                                    "pass --resume latest or a checkpoints/checkpoint-NNNNNNNN folder")
        return path

    def folder(self, step: int) -> Path:
        return self.dir / f"checkpoint-{step:08d}"

    def save(self, step: int, write: Callable[[Path], None]) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self.folder(step)
        for stale in self.dir.glob(".tmp-checkpoint-*"):  # left by a run killed mid-write
            shutil.rmtree(stale, ignore_errors=True)
        with atomic_dir(final) as tmp:
            write(tmp)
        self.abandon_after(step)
        if self.keep_last > 0:
            kept = [p for s, p in self.all() if s <= step]  # ends with the one just written
            for old in kept[: -self.keep_last]:
                shutil.rmtree(old, ignore_errors=True)
        return final

    def abandon_after(self, step: int) -> Path | None:
        """Move checkpoints newer than `step` to checkpoints/abandoned-<time>/, with a warning.

        Called when a run resumes from an older checkpoint: what came after it is another history, and
        `--resume latest` must never pick it up. Moved rather than deleted, so no run is lost.
        """
        newer = [p for s, p in self.all() if s > step]
        if not newer:
            return None
        aside = self.dir / time.strftime("abandoned-%Y%m%d-%H%M%S")
        while aside.exists():
            aside = aside.with_name(aside.name + "x")
        aside.mkdir()
        for p in newer:
            os.replace(p, aside / p.name)
        log.warning("moved %d checkpoint(s) newer than step %d (%s) to %s: they continue another history; "
                    "delete that folder when you no longer need it", len(newer), step,
                    ", ".join(p.name for p in newer), aside)
        return aside


def check_checkpoint(folder: Path) -> int:
    """The step of a readable checkpoint; CorruptCheckpoint naming the bad file otherwise.

    Reads only headers (safetensors) and the zip directory (optimizer.pt), so it is cheap enough to run
    before anything in the run folder is touched.
    """
    def corrupt(what: str) -> CorruptCheckpoint:
        return CorruptCheckpoint(f"checkpoint {folder} is unreadable ({what}); resume from an earlier one with "
                                 f"--resume {folder.parent}/checkpoint-NNNNNNNN, or start over with --overwrite")
    try:
        info = json.loads((folder / "state.json").read_text())
        step = info["step"]
    except (ValueError, KeyError, TypeError) as err:
        raise corrupt(f"state.json: {err}") from err
    if not isinstance(step, int) or step < 0:
        raise corrupt(f"state.json: step {step!r}")
    rngs = sorted(p.name for p in folder.glob("rng*.safetensors"))
    if not rngs:
        raise corrupt("no rng-rank0.safetensors")
    names = ["model.safetensors", *rngs] + (["ema.safetensors"] if "ema" in info else [])
    for name in names:
        try:
            with safe_open(str(folder / name), "pt"):
                pass
        except (OSError, SafetensorError) as err:
            raise corrupt(f"{name}: {err}") from err
    if not zipfile.is_zipfile(folder / "optimizer.pt"):
        raise corrupt("optimizer.pt is missing or truncated")
    return step


def check_fits(folder: Path, model: torch.nn.Module) -> None:
    """CorruptCheckpoint when the checkpoint's weights do not have the names and shapes of `model`'s.

    Resuming with a changed config (another model size, vocabulary or depth) fails here, before the run
    folder's config.yaml is replaced, instead of deep inside the training loop.
    """
    state = model.state_dict()
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    ptrs = {state[k].data_ptr() for k in shapes if k in state}
    problems = [f"{k} is {shape} there but {tuple(state[k].shape) if k in state else 'absent'} here"
                for k, shape in shapes.items() if k not in state or tuple(state[k].shape) != shape]
    # save_model drops tied duplicates (an LM head shares the embedding), so only untied names must be there.
    problems += [f"{k} is missing there" for k, v in state.items() if k not in shapes and v.data_ptr() not in ptrs]
    if problems:
        raise CorruptCheckpoint(f"checkpoint {folder} does not fit the model this config builds "
                                f"({problems[0]}{f', and {len(problems) - 1} more' if len(problems) > 1 else ''}); "
                                "resume with the config the run was started with (RUN_DIR/config.yaml)")


def check_optimizer_fits(folder: Path, groups: list[dict[str, Any]]) -> None:
    """CorruptCheckpoint when the checkpoint's optimizer state is over other trainable weights than `groups`.

    `groups` are the parameter groups the optimizer will be built with (train_step.param_groups). A config that
    changes which weights train (text.freeze, text.lr_scale) keeps every weight's name and shape, so
    check_fits passes, and torch would fail deep in optimizer.load_state_dict. optimizer.pt is memory-mapped:
    only the shapes are read.
    """
    saved = torch.load(folder / "optimizer.pt", weights_only=True, mmap=True)["optimizer"]
    have = [len(g["params"]) for g in saved["param_groups"]]
    want = [len(g["params"]) for g in groups]
    problem = None
    if have != want:
        problem = f"its optimizer state covers {_tensors(have)}; this config trains {_tensors(want)}"
    else:
        ids = [i for g in saved["param_groups"] for i in g["params"]]
        for i, p in zip(ids, (p for g in groups for p in g["params"])):
            shapes = {tuple(v.shape) for v in saved["state"].get(i, {}).values() if torch.is_tensor(v) and v.dim()}
            if shapes and shapes != {tuple(p.shape)}:
                problem = f"its optimizer state for a {tuple(p.shape)} weight is {shapes.pop()}"
                break
    if problem:
        raise CorruptCheckpoint(f"checkpoint {folder} was trained with other weights frozen or grouped ({problem}); "
                                "a changed text.freeze or text.lr_scale does this: resume with the config the run "
                                "was started with (RUN_DIR/config.yaml), or start over with --overwrite")


def _tensors(sizes: list[int]) -> str:
    groups = " + ".join(map(str, sizes)) or "0"
    return f"{groups} weight tensors in {len(sizes)} learning-rate group{'s' if len(sizes) != 1 else ''}"


def rng_state(device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """This process's random state: torch's CPU generator and, on a GPU, the generator of its own device."""
    state = {"torch": torch.get_rng_state()}
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, torch.Tensor], device: torch.device | None = None) -> None:
    torch.set_rng_state(state["torch"])
    if device is None or device.type != "cuda" or not torch.cuda.is_available():
        return
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
        return
    cuda = [state[k] for k in sorted(state) if k.startswith("cuda")]  # before per-rank files: every device's
    if cuda and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def rng_file(rank: int) -> str:
    return f"rng-rank{rank}.safetensors"


def write_training_state(folder: Path, model: torch.nn.Module, optimizer_state: dict, ema: Any | None,
                         step: int, extra: dict | None = None,
                         rng_states: list[dict[str, torch.Tensor]] | None = None) -> None:
    """Weights as safetensors; optimizer/LR state as a tensor-only torch file (loaded weights_only).

    `rng_states` holds every process's random state, by rank (default: this process's only); each goes to
    its own rng-rank<N>.safetensors, so every rank of a resumed run draws what it would have drawn.
    """
    save_model(model, str(folder / "model.safetensors"))  # save_model handles tied weights
    torch.save(optimizer_state, folder / "optimizer.pt")
    rng_states = rng_states or [rng_state()]
    for rank, state in enumerate(rng_states):
        save_file(state, str(folder / rng_file(rank)))
    info: dict[str, Any] = {"step": step, "processes": len(rng_states), **(extra or {})}
    if ema is not None:
        ema_state = ema.state_dict()
        shadow = ema_state.pop("shadow_params")
        save_file({f"p{i:05d}": p.contiguous() for i, p in enumerate(shadow)}, str(folder / "ema.safetensors"))
        info["ema"] = ema_state
    (folder / "state.json").write_text(json.dumps(info, indent=2))


def read_training_state(folder: Path, model: torch.nn.Module, ema: Any | None, rank: int = 0,
                        processes: int = 1, device: torch.device | None = None) -> tuple[dict, dict]:
    """Load weights, EMA and this rank's RNG in place; return (optimizer/scheduler state, state.json).

    Checkpoints written before per-rank RNG files hold one rng.safetensors, the main process's.
    """
    info = json.loads((folder / "state.json").read_text())
    load_model(model, str(folder / "model.safetensors"))
    if ema is not None and "ema" in info:
        shadow = load_file(str(folder / "ema.safetensors"))
        ema.load_state_dict({**info["ema"], "shadow_params": [shadow[k] for k in sorted(shadow)]})
    saved_by = info.get("processes", 1)
    path = folder / rng_file(rank)
    if not path.is_file() and rank == 0:
        path = folder / "rng.safetensors"
    if path.is_file():
        set_rng_state(load_file(str(path)), device)
    if saved_by != processes and rank == 0:
        log.warning("%s was saved by %d process(es) and is resumed with %d: each process's share of the data and "
                    "its random draws differ from an uninterrupted run, so this resume is not exact",
                    folder, saved_by, processes)
    return torch.load(folder / "optimizer.pt", weights_only=True), info
