"""Run folders and checkpoints: atomic writes, keep-last-K, `latest` lookup. Shared by gen and caption."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

CKPT = re.compile(r"^checkpoint-(\d+)$")


def run_dir_for(config_name: str, out: str | Path | None) -> Path:
    """`--out` when given, else runs/<config name>."""
    return Path(out) if out else Path("runs") / config_name


class Checkpoints:
    """checkpoint-<step> folders under RUN_DIR/checkpoints, each written to a temp name then renamed.

    A process killed mid-write leaves only a .tmp folder, which `latest` ignores and the next save removes.
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
            raise FileNotFoundError(f"--resume latest: no checkpoint in {self.dir}")
        if not (path / "state.json").is_file():
            raise FileNotFoundError(f"{path} is not a checkpoint folder (no state.json)")
        return path

    def save(self, step: int, write: Callable[[Path], None]) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        final = self.dir / f"checkpoint-{step:08d}"
        tmp = self.dir / f".tmp-checkpoint-{step:08d}"
        for stale in self.dir.glob(".tmp-checkpoint-*"):  # left by a run killed mid-write
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
        write(tmp)
        for f in tmp.iterdir():  # data on disk before the rename makes it visible
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        for _, old in self.all()[: -self.keep_last] if self.keep_last > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        return final


def rng_state() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            state[f"cuda{i}"] = s
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    cuda = [state[k] for k in sorted(state) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def write_training_state(folder: Path, model: torch.nn.Module, optimizer_state: dict, ema: Any | None,
                         step: int, extra: dict | None = None) -> None:
    """Weights as safetensors; optimizer/LR state as a tensor-only torch file (loaded weights_only)."""
    save_model(model, str(folder / "model.safetensors"))  # save_model handles tied weights
    torch.save(optimizer_state, folder / "optimizer.pt")
    save_file(rng_state(), str(folder / "rng.safetensors"))
    info: dict[str, Any] = {"step": step, **(extra or {})}
    if ema is not None:
        ema_state = ema.state_dict()
        shadow = ema_state.pop("shadow_params")
        save_file({f"p{i:05d}": p.contiguous() for i, p in enumerate(shadow)}, str(folder / "ema.safetensors"))
        info["ema"] = ema_state
    (folder / "state.json").write_text(json.dumps(info, indent=2))


def read_training_state(folder: Path, model: torch.nn.Module, ema: Any | None) -> tuple[dict, dict]:
    """Load weights, EMA and RNG in place; return (optimizer/scheduler state, state.json)."""
    info = json.loads((folder / "state.json").read_text())
    load_model(model, str(folder / "model.safetensors"))
    if ema is not None and "ema" in info:
        shadow = load_file(str(folder / "ema.safetensors"))
        ema.load_state_dict({**info["ema"], "shadow_params": [shadow[k] for k in sorted(shadow)]})
    set_rng_state(load_file(str(folder / "rng.safetensors")))
    return torch.load(folder / "optimizer.pt", weights_only=True), info
