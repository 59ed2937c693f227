"""Run folders: no run lost, none silently reused. Real tiny trainings of 2-4 steps (about 1 s each).

Covers stale tokenizers, pruning across histories, the run-folder lock and refused reuse,
atomic model export, and config.yaml left untouched by a resume that cannot start.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CAPTION_TINY, GEN_TINY, ROOT
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file

from caption.train import CaptionConfig, CaptionTask
from caption.train import train as caption_train
from gen.core import config as config_io
from gen.core.config import GenConfig
from gen.domains.shapes.world import make_dataset
from gen.data.tokenizer import load_tokenizer, train_tokenizer
from gen.generator.train import GenTask
from gen.generator.train import train as gen_train
from gen.training.checkpoint import Checkpoints, CorruptCheckpoint
from gen.training.rundir import LOCK_NAME, RunDirBusy, RunDirInUse, RunDirLock

TRAINERS = {"gen": (gen_train, GEN_TINY), "caption": (caption_train, CAPTION_TINY)}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """One small shapes set shared by every run here, so no run writes its own."""
    return make_dataset(tmp_path_factory.mktemp("shapes") / "data", count=128, size=16, seed=0)


def run(kind: str, out: Path, data: Path, *sets: str, steps: int = 2, **kwargs) -> Path:
    train, config = TRAINERS[kind]
    base = [f"train.max_steps={steps}", "train.ckpt_every=1", "train.keep_last=0", "train.warmup_steps=1",
            f"data.path={data}"]
    return train(config, out, [*base, *sets], **kwargs)


def stale_tokenizer(folder: Path):
    """A tokenizer from another data set, with another vocabulary (what an earlier run leaves behind)."""
    tok = train_tokenizer(["zebra xylophone quartz jukebox"] * 50 + ["wizard vortex kumquat"] * 50, vocab_size=280)
    tok.save_pretrained(folder)
    return tok


# ---------------------------------------------------------------- stale tokenizer


@pytest.mark.parametrize("kind", ["gen", "caption"])
def test_fresh_run_does_not_reuse_stale_tokenizer(kind, data, tmp_path):
    """A fresh task trains its own vocabulary and replaces a leftover one; only a resume loads the saved one."""
    stale_dir = tmp_path / "run" / "tokenizer"
    stale = stale_tokenizer(stale_dir)
    cls, config, task = (GenConfig, GEN_TINY, GenTask) if kind == "gen" else (CaptionConfig, CAPTION_TINY, CaptionTask)
    cfg = config_io.load(cls, config, [f"data.path={data}"])
    make = lambda run_dir, resume_from=None: task(cfg, run_dir, resume_from)  # noqa: E731
    fresh = make(tmp_path / "run").tokenizer
    assert fresh.get_vocab() == make(tmp_path / "clean").tokenizer.get_vocab()  # as in an empty folder
    assert fresh.get_vocab() != stale.get_vocab()
    assert load_tokenizer(str(stale_dir)).get_vocab() == fresh.get_vocab()  # the leftover was replaced

    stale_tokenizer(stale_dir)  # a resume, by contrast, must use the vocabulary its checkpoint was trained with
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-00000001"
    checkpoint.mkdir(parents=True)
    assert make(tmp_path / "run", checkpoint).tokenizer.get_vocab() == stale.get_vocab()


@pytest.mark.parametrize("kind", ["gen", "caption"])
def test_overwrite_run_trains_with_its_own_tokenizer(kind, data, tmp_path):
    """End to end: a leftover tokenizer marks the folder as used; --overwrite starts clean and trains."""
    out = tmp_path / "run"
    stale = stale_tokenizer(out / "tokenizer")
    with pytest.raises(RunDirInUse, match="tokenizer"):
        run(kind, out, data)
    model = run(kind, out, data, overwrite=True)
    exported = load_tokenizer(str(model / "tokenizer")).get_vocab()
    assert exported != stale.get_vocab()
    assert load_tokenizer(str(out / "tokenizer")).get_vocab() == exported


# ---------------------------------------------------------------- pruning across histories


def _write(step: int):
    def write(folder: Path) -> None:
        (folder / "state.json").write_text(json.dumps({"step": step}))
    return write


def test_pruning_keeps_the_checkpoint_just_written(tmp_path, caplog):
    """The reported case: an old run's 900 and 1000 beside a new run's 500. 500 stays and is `latest`;
    the newer ones are moved aside (not deleted), so `--resume latest` cannot mix the two histories."""
    ckpts = Checkpoints(tmp_path, keep_last=2)
    for step in (900, 1000):
        ckpts.save(step, _write(step))
    with caplog.at_level(logging.WARNING, logger="gen.training.checkpoint"):
        ckpts.save(500, _write(500))
    assert [s for s, _ in ckpts.all()] == [500]
    assert ckpts.latest() == ckpts.dir / "checkpoint-00000500"
    (aside,) = [p for p in ckpts.dir.iterdir() if p.name.startswith("abandoned-")]
    assert sorted(p.name for p in aside.iterdir()) == ["checkpoint-00000900", "checkpoint-00001000"]
    assert json.loads((aside / "checkpoint-00001000" / "state.json").read_text()) == {"step": 1000}
    assert "newer than step 500" in caplog.text and str(aside) in caplog.text
    # Pruning after that counts only this history: 500, 600, 700 → the newest two.
    for step in (600, 700):
        ckpts.save(step, _write(step))
    assert [s for s, _ in ckpts.all()] == [600, 700]
    assert len(list(aside.iterdir())) == 2


def test_resume_from_older_checkpoint_moves_newer_ones_aside(data, tmp_path, caplog):
    out = tmp_path / "run"
    run("gen", out, data, steps=4)
    old4 = load_file(str(out / "checkpoints" / "checkpoint-00000004" / "model.safetensors"))
    with caplog.at_level(logging.WARNING, logger="gen.training.checkpoint"):  # another data order: another history
        run("gen", out, data, "train.seed=1", steps=4,
            resume=str(out / "checkpoints" / "checkpoint-00000002"))
    assert "moved 2 checkpoint(s) newer than step 2" in caplog.text
    ckpts = Checkpoints(out)
    assert [s for s, _ in ckpts.all()] == [1, 2, 3, 4]
    (aside,) = [p for p in ckpts.dir.iterdir() if p.name.startswith("abandoned-")]
    assert sorted(p.name for p in aside.iterdir()) == ["checkpoint-00000003", "checkpoint-00000004"]
    new4 = load_file(str(ckpts.latest() / "model.safetensors"))
    assert torch.equal(load_file(str(aside / "checkpoint-00000004" / "model.safetensors"))["unet.conv_in.weight"],
                       old4["unet.conv_in.weight"])
    assert not torch.equal(new4["unet.conv_in.weight"], old4["unet.conv_in.weight"])  # latest is the new history
    assert json.loads((ckpts.latest() / "state.json").read_text())["step"] == 4


# ---------------------------------------------------------------- lock, refused reuse


def _holder_process(run_dir: Path) -> subprocess.Popen:
    """Another process that takes the run folder's lock and holds it until killed."""
    code = ("import sys, time; from gen.training.rundir import RunDirLock; RunDirLock(sys.argv[1]).acquire(); "
            "print('locked', flush=True); time.sleep(120)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


@pytest.mark.timeout(120)
def test_second_process_is_refused_and_a_dead_ones_lock_is_taken_over(data, tmp_path, caplog):
    out = tmp_path / "run"
    out.mkdir()
    holder = _holder_process(out)
    try:
        for kind in TRAINERS:
            with pytest.raises(RunDirBusy, match=f"in use by a running process \\(pid {holder.pid} on "):
                run(kind, out, data)
        assert not (out / "checkpoints").exists() and not (out / "config.yaml").exists()
    finally:
        holder.kill()
        holder.wait()
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == holder.pid  # left behind by the killed process
    with caplog.at_level(logging.WARNING, logger="gen.training.rundir"):
        model = run("gen", out, data)
    assert "taking over the lock" in caplog.text and f"pid {holder.pid}" in caplog.text
    assert (model / "model_index.json").is_file()
    assert not (out / LOCK_NAME).exists()  # released at the end


def test_lock_from_another_host_is_refused_naming_the_file_to_delete(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "started": "x"}))
    with pytest.raises(RunDirBusy, match=f"elsewhere.example.*delete {tmp_path / LOCK_NAME}"):
        RunDirLock(tmp_path).acquire()
    (tmp_path / LOCK_NAME).write_text("")  # unreadable: refused rather than guessed at
    with pytest.raises(RunDirBusy, match="unreadable"):
        RunDirLock(tmp_path).acquire()


def test_lock_holds_pid_and_host_and_is_released_after_an_error(data, tmp_path):
    lock = RunDirLock(tmp_path)
    with lock:
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
        assert json.loads((tmp_path / LOCK_NAME).read_text())["host"] == socket.gethostname()
        with pytest.raises(RunDirBusy):  # held by this very (live) process
            RunDirLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_NAME).exists()
    out = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        run("gen", out, data, resume="latest")
    assert not (out / LOCK_NAME).exists()


@pytest.mark.parametrize("kind", ["gen", "caption"])
def test_fresh_run_in_a_used_folder_needs_resume_or_overwrite(kind, data, tmp_path):
    out = tmp_path / "run"
    run(kind, out, data)
    (out / "logs" / "marker").write_text("from the first run")
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    with pytest.raises(RunDirInUse, match="--resume latest.*--overwrite"):
        run(kind, out, data)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before  # refused before touching anything
    with pytest.raises(ValueError, match="exclude each other"):
        run(kind, out, data, resume="latest", overwrite=True)
    run(kind, out, data, steps=3, resume="latest")  # continuing is allowed
    assert [s for s, _ in Checkpoints(out).all()] == [1, 2, 3]
    run(kind, out, data, overwrite=True)  # starting over clears the earlier run
    assert [s for s, _ in Checkpoints(out).all()] == [1, 2]
    assert not (out / "logs" / "marker").exists()
    assert (data / "metadata.jsonl").is_file()


def test_overwrite_keeps_data_written_into_the_run_folder(tmp_path):
    """Shapes data goes to RUN_DIR/data by default; --overwrite removes the run's outputs, never that."""
    out = tmp_path / "run"
    gen_train(GEN_TINY, out, ["train.max_steps=1", "data.shapes_count=64", "train.batch_size=8"])
    rows = (out / "data" / "metadata.jsonl").read_text()
    gen_train(GEN_TINY, out, ["train.max_steps=1", "data.shapes_count=64", "train.batch_size=8"], overwrite=True)
    assert (out / "data" / "metadata.jsonl").read_text() == rows


# ---------------------------------------------------------------- atomic export


def test_failed_export_keeps_the_previous_model_whole(data, tmp_path, monkeypatch):
    cfg = config_io.load(GenConfig, GEN_TINY, [f"data.path={data}"])
    task = GenTask(cfg, tmp_path / "run")
    out = tmp_path / "run" / "model"
    task.export(task.model, out)
    files = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with torch.no_grad():  # a new model, so a half-written export would show
        for p in task.model.parameters():
            p.add_(1.0)

    def disk_full(self, save_directory, *args, **kwargs):
        Path(save_directory).mkdir(parents=True, exist_ok=True)
        (Path(save_directory) / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 100)  # partial write
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(UNet2DConditionModel, "save_pretrained", disk_full)
    with pytest.raises(OSError, match="No space left"):
        task.export(task.model, out)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
    assert sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".")) == []  # no temp folder left
    monkeypatch.undo()
    task.export(task.model, out)  # and the next export replaces it whole
    weights = load_file(str(out / "text_encoder" / "model.safetensors"))
    assert torch.equal(weights["wte.weight"], task.model.text_encoder.wte.weight.detach())


def test_failed_caption_export_keeps_the_previous_model_whole(data, tmp_path, monkeypatch):
    import caption.model

    cfg = config_io.load(CaptionConfig, CAPTION_TINY, [f"data.path={data}"])
    task = CaptionTask(cfg, tmp_path / "run")
    out = tmp_path / "run" / "model"
    task.export(task.model, out)
    files = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def disk_full(model, filename, *args, **kwargs):
        Path(filename).write_bytes(b"\0" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(caption.model, "save_model", disk_full)
    with pytest.raises(OSError):
        task.export(task.model, out)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
    assert not (out.parent / ".tmp-model").exists()


# ---------------------------------------------------------------- config.yaml and failed resumes


def test_resume_that_cannot_start_leaves_config_yaml_unchanged(data, tmp_path):
    out = tmp_path / "run"
    run("gen", out, data, steps=3)
    config = (out / "config.yaml").read_text()
    ckpts = Checkpoints(out)

    # A checkpoint from another model size: refused before config.yaml or any checkpoint changes.
    with pytest.raises(CorruptCheckpoint, match="does not fit.*config.yaml"):
        run("gen", out, data, "text.n_embd=16", steps=4, resume=str(ckpts.dir / "checkpoint-00000001"))
    assert (out / "config.yaml").read_text() == config
    assert [s for s, _ in ckpts.all()] == [1, 2, 3]  # nothing moved aside for a resume that did not start

    # A truncated checkpoint.
    weights = ckpts.latest() / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CorruptCheckpoint, match="checkpoint-00000003 is unreadable.*model.safetensors"):
        run("gen", out, data, "train.log_every=2", steps=4, resume="latest")
    assert (out / "config.yaml").read_text() == config

    # An older, intact one still resumes, and only then is config.yaml written.
    run("gen", out, data, "train.log_every=2", steps=4, resume=str(ckpts.dir / "checkpoint-00000002"))
    assert config_io.load(GenConfig, out / "config.yaml").train.log_every == 2


def test_atomic_dir_restores_the_previous_folder_after_a_crash_between_renames(tmp_path):
    """The one moment without `model/`: the old one renamed aside, the new one not yet in place."""
    from gen.core.outputs import atomic_dir

    final = tmp_path / "model"
    (tmp_path / ".old-model").mkdir()
    (tmp_path / ".old-model" / "weights").write_text("previous")
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "weights").write_text("half")
            raise RuntimeError("killed")
    assert (final / "weights").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
