"""Resuming: a run killed with SIGKILL and resumed from its latest checkpoint ends bitwise where an
uninterrupted run ends. Plus the checkpoint folder rules (atomic temp folders, keep-last-K, `latest`)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import GEN_TINY, ROOT
from safetensors.torch import load_file

from gen.training.checkpoint import Checkpoints

STEPS, EVERY = 24, 8
WEIGHTS = ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors")


def gen_train(out: Path, *extra: str, log: Path) -> subprocess.Popen:
    """`python -m gen train` in a fresh interpreter, offline, its output in `log`."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "gen", "train", str(GEN_TINY), "--out", str(out),
            "--set", f"train.max_steps={STEPS}", "--set", f"train.ckpt_every={EVERY}", *extra]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 180) -> str:
    rc = proc.wait(timeout=timeout)
    text = log.read_text()
    assert rc == 0, text[-3000:]
    return text


@pytest.mark.timeout(240)
def test_killed_and_resumed_run_matches_uninterrupted_run_bitwise(tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    # A runs through while B is started, killed and resumed next to it.
    proc_a = gen_train(a, log=tmp_path / "a.log")
    proc_b = gen_train(b, log=tmp_path / "b.log")
    first = b / "checkpoints" / f"checkpoint-{EVERY:08d}"
    deadline = time.monotonic() + 180
    while not first.is_dir():
        assert proc_b.poll() is None, (tmp_path / "b.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "no checkpoint within 180 s"
        time.sleep(0.02)
    os.kill(proc_b.pid, signal.SIGKILL)
    assert proc_b.wait(timeout=30) == -signal.SIGKILL
    assert not (b / "model").exists(), "B finished before it was killed; the test proves nothing"
    done = Checkpoints(b).all()
    assert done and done[-1][0] < STEPS

    proc_b = gen_train(b, "--resume", "latest", log=tmp_path / "b_resume.log")
    resumed = finish(proc_b, tmp_path / "b_resume.log")
    finish(proc_a, tmp_path / "a.log")
    assert f"at step {done[-1][0]}" in resumed  # it really resumed rather than starting over

    for name in WEIGHTS:
        wa, wb = load_file(str(a / "model" / name)), load_file(str(b / "model" / name))
        assert wa.keys() == wb.keys()
        differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
        assert not differ, f"{name}: {len(differ)} of {len(wa)} tensors differ, e.g. {differ[:3]}"
    # The final training state too, not only the exported EMA.
    final = f"checkpoints/checkpoint-{STEPS:08d}/model.safetensors"
    wa, wb = load_file(str(a / final)), load_file(str(b / final))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert json.loads((b / "summary.json").read_text())["metrics"]["step"] == STEPS


def test_resume_latest_without_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        Checkpoints(tmp_path).resolve("latest")
    (tmp_path / "not_a_ckpt").mkdir()
    with pytest.raises(FileNotFoundError, match="state.json"):
        Checkpoints(tmp_path).resolve(str(tmp_path / "not_a_ckpt"))


def _write(step: int):
    def write(folder: Path) -> None:
        (folder / "state.json").write_text(json.dumps({"step": step}))
        (folder / "weights.bin").write_bytes(bytes([step % 256]) * 16)
    return write


def test_latest_ignores_a_leftover_temp_folder(tmp_path):
    ckpts = Checkpoints(tmp_path, keep_last=3)
    ckpts.save(4, _write(4))
    leftover = ckpts.dir / ".tmp-checkpoint-00000008"  # what a kill during a write leaves
    leftover.mkdir()
    (leftover / "state.json").write_text(json.dumps({"step": 8}))
    (ckpts.dir / "checkpoint-notanumber").mkdir()
    (ckpts.dir / "checkpoint-00000099").write_text("a file, not a folder")
    assert ckpts.latest() == ckpts.dir / "checkpoint-00000004"
    assert [s for s, _ in ckpts.all()] == [4]
    assert ckpts.resolve("latest") == ckpts.dir / "checkpoint-00000004"
    # Saving that step again replaces the temp folder with a complete checkpoint.
    ckpts.save(8, _write(8))
    assert not leftover.exists()
    assert ckpts.latest() == ckpts.dir / "checkpoint-00000008"
    assert json.loads((ckpts.latest() / "state.json").read_text()) == {"step": 8}


def test_next_save_removes_any_stale_temp_folder(tmp_path):
    """checkpoint.py promises that the next save removes what a killed write left, whatever its step."""
    ckpts = Checkpoints(tmp_path, keep_last=2)
    ckpts.save(10, _write(10))
    stale = ckpts.dir / ".tmp-checkpoint-00000015"
    stale.mkdir()
    ckpts.save(20, _write(20))
    assert sorted(p.name for p in ckpts.dir.iterdir()) == ["checkpoint-00000010", "checkpoint-00000020"]


def test_keep_last_prunes_oldest(tmp_path):
    ckpts = Checkpoints(tmp_path, keep_last=2)
    for step in (1, 2, 3, 10, 11):
        path = ckpts.save(step, _write(step))
        assert path == ckpts.dir / f"checkpoint-{step:08d}"
    assert [s for s, _ in ckpts.all()] == [10, 11]  # numeric order, not string order
    assert (ckpts.latest() / "weights.bin").read_bytes() == bytes([11]) * 16
    assert not list(ckpts.dir.glob(".tmp-*"))


def test_keep_last_zero_keeps_everything(tmp_path):
    ckpts = Checkpoints(tmp_path, keep_last=0)
    for step in (1, 2, 3):
        ckpts.save(step, _write(step))
    assert [s for s, _ in ckpts.all()] == [1, 2, 3]


def test_resaving_a_step_overwrites_it(tmp_path):
    ckpts = Checkpoints(tmp_path, keep_last=2)
    ckpts.save(5, _write(5))
    ckpts.save(5, _write(7))
    assert [s for s, _ in ckpts.all()] == [5]
    assert json.loads((ckpts.latest() / "state.json").read_text()) == {"step": 7}
