"""Several processes: two CPU processes over gloo train configs/gen/tiny.yaml, as `torchrun
--nproc_per_node 2 -m gen train` would run it, rendezvous on the loopback address only.

Each process is forked from this one (as torch.multiprocessing does) and runs gen.generator.train.train with its
rank in the environment: a fresh interpreter would spend ~10 s per process on imports. A kill is a real
SIGKILL of both processes.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from accelerate.state import AcceleratorState, GradientState
from conftest import GEN_TINY
from safetensors.torch import load_file

import gen.generator.train
from gen.domains.shapes.world import make_dataset
from gen.generator.train import GenTask, train  # imported here, so the forked processes start with it
from gen.training.checkpoint import Checkpoints
from gen.training.rundir import LOCK_NAME

STEPS, EVERY = 12, 4
SETS = [f"train.max_steps={STEPS}", f"train.ckpt_every={EVERY}", "train.keep_last=0", "train.batch_size=8",
        "train.threads=1", "train.log_every=4"]
WEIGHTS = ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors")


class InfOnRank1(GenTask):
    """The generator's task, whose loss on rank 1 alone is inf at the third attempt (its gradients stay finite)."""

    calls = 0

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        InfOnRank1.calls += 1
        loss = super().loss(model, batch)
        return loss + float("inf") if os.environ["RANK"] == "1" and InfOnRank1.calls == 3 else loss


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("shapes") / "data", count=128, size=16, seed=0)


def _rank_main(rank: int, port: int, out: str, sets: list[str], resume: str | None, log: str,
               task: type[GenTask] = GenTask) -> None:
    """One of the two processes: what torchrun would put in its environment, then `gen train`."""
    gen.generator.train.GenTask = task  # in this forked process only
    sys.stdout = sys.stderr = open(log, "w", buffering=1)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True, format="%(asctime)s %(name)s %(message)s")
    loopback = next((name for _, name in socket.if_nameindex() if name.startswith("lo")), "lo")
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", LOCAL_WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME=loopback)
    # Forked from the test process, which may have trained alone already: start from no accelerate state, as a
    # fresh interpreter does (these are the resets accelerate's own tests use).
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    train(GEN_TINY, out, sets, resume=resume)


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def launch(out: Path, data: Path, port: int, resume: str | None = None, sets: tuple[str, ...] = (),
           task: type[GenTask] = GenTask) -> list[multiprocessing.Process]:
    ctx = multiprocessing.get_context("fork")
    sets = [*SETS, f"data.path={data}", *sets]
    procs = [ctx.Process(target=_rank_main, args=(r, port, str(out), sets, resume,
                                                  f"{out}.{resume or 'run'}.{r}.log", task)) for r in range(2)]
    for p in procs:
        p.start()
    return procs


def logs(out: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text()[-2500:]}" for p in sorted(out.parent.glob(f"{out.name}.*.log")))


def finish(procs: list[multiprocessing.Process], out: Path, timeout: float = 120) -> list[int | None]:
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    hung = [p for p in procs if p.is_alive()]
    for p in hung:
        p.kill()
        p.join()
    assert not hung, f"{len(hung)} process(es) still running after {timeout} s\n{logs(out)}"
    return [p.exitcode for p in procs]


@pytest.mark.timeout(240)
def test_several_processes_draw_their_own_noise_agree_and_resume_exactly(data, tmp_path):
    a, b = tmp_path / "A", tmp_path / "B"
    start = time.monotonic()
    # A runs through while B is started, killed after its first checkpoint, and resumed.
    port_a, port_b, port_b2, port_a2 = _free_ports(4)
    run_a, run_b = launch(a, data, port_a), launch(b, data, port_b)
    first = b / "checkpoints" / f"checkpoint-{EVERY:08d}"
    while not first.is_dir():
        assert all(p.is_alive() for p in run_b), logs(b)
        assert time.monotonic() < start + 120, "no checkpoint within 120 s\n" + logs(b)
        time.sleep(0.02)
    for p in run_b:  # SIGKILL, both at once: what a lost machine does
        p.kill()
    assert [p.join(30) or p.exitcode for p in run_b] == [-9, -9]
    assert not (b / "model").exists(), "B finished before it was killed; the test proves nothing"
    done = Checkpoints(b).all()
    assert done and done[-1][0] < STEPS

    assert finish(launch(b, data, port_b2, resume="latest"), b) == [0, 0], logs(b)
    assert finish(run_a, a) == [0, 0], logs(a)
    assert f"resumed from {done[-1][1]} at step {done[-1][0]}" in (tmp_path / "B.latest.0.log").read_text()

    final = f"checkpoints/checkpoint-{STEPS:08d}"
    # (1) Each rank has its own random stream: different states, so different noise, timesteps and dropout.
    rng = [load_file(str(a / final / f"rng-rank{r}.safetensors"))["torch"] for r in (0, 1)]
    assert not torch.equal(rng[0], rng[1])
    with torch.random.fork_rng(devices=[]):
        noise = []
        for state in rng:
            torch.set_rng_state(state)
            noise.append(torch.randn(64))
    assert not torch.allclose(noise[0], noise[1])

    # (2) The ranks' weights agree bitwise at every checkpoint, and the weights do change between them.
    digests = [json.loads((a / "checkpoints" / f"checkpoint-{s:08d}" / "state.json").read_text())["weights_sha256"]
               for s in range(EVERY, STEPS + 1, EVERY)]
    assert all(len(d) == 2 and d[0] == d[1] for d in digests), digests
    assert len({d[0] for d in digests}) == len(digests)

    # (3) Killed and resumed ends bitwise where the uninterrupted run ends: weights, EMA export, every rank's RNG.
    for name in WEIGHTS:
        wa, wb = load_file(str(a / "model" / name)), load_file(str(b / "model" / name))
        differ = [k for k in wa if not torch.equal(wa[k], wb[k])]
        assert wa.keys() == wb.keys() and not differ, f"{name}: {len(differ)} of {len(wa)} tensors differ"
    for name in ("model.safetensors", "rng-rank0.safetensors", "rng-rank1.safetensors"):
        wa, wb = load_file(str(a / final / name)), load_file(str(b / final / name))
        assert all(torch.equal(wa[k], wb[k]) for k in wa), name
    assert json.loads((b / "summary.json").read_text())["metrics"]["step"] == STEPS

    # Only the main process locks the folder (so nothing is refused), and the lock is gone at the end. A fresh
    # run into the used folder is refused on both ranks, and neither waits for the other.
    assert not (a / LOCK_NAME).exists() and not (b / LOCK_NAME).exists()
    codes = finish(launch(a, data, port_a2, resume=None), a, timeout=60)
    assert codes == [1, 1], logs(a)
    for r in (0, 1):
        assert "RunDirInUse" in (tmp_path / f"A.run.{r}.log").read_text()
    print(f"2-process test: {time.monotonic() - start:.1f} s")


@pytest.mark.timeout(120)
def test_several_processes_skip_a_step_together_when_one_rank_s_loss_is_not_finite(data, tmp_path):
    """Rank 1's loss alone is inf (finite gradients, so DDP's all-reduce shows nothing): both ranks must skip,
    or rank 0 would step and the replicas would part."""
    out = tmp_path / "run"
    (port,) = _free_ports(1)
    sets = ("train.max_steps=4", "train.ckpt_every=2")
    assert finish(launch(out, data, port, sets=sets, task=InfOnRank1), out) == [0, 0], logs(out)
    assert "step 3: the loss or a gradient is not finite" in (tmp_path / "run.run.0.log").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["step"] == 4 and summary["metrics"]["bad_steps"] == 1
    for step in (2, 4):
        state = json.loads((out / "checkpoints" / f"checkpoint-{step:08d}" / "state.json").read_text())
        assert state["weights_sha256"][0] == state["weights_sha256"][1] and state["batches"] == step + (step > 2)


def test_several_processes_a_checkpoint_from_before_per_rank_rng_files_resumes_exactly(data, tmp_path):
    """One process's checkpoint in the old layout (rng.safetensors, no "processes" or "batches") still resumes
    bitwise: its RNG file is read as rank 0's."""
    sets = [f"data.path={data}", "train.max_steps=4", "train.ckpt_every=2", "train.keep_last=0", "train.batch_size=8"]
    a, b = tmp_path / "A", tmp_path / "B"
    train(GEN_TINY, a, sets)
    shutil.copytree(a, b)
    old = b / "checkpoints" / "checkpoint-00000002"
    (old / "rng-rank0.safetensors").rename(old / "rng.safetensors")
    info = json.loads((old / "state.json").read_text())
    (old / "state.json").write_text(json.dumps({k: v for k, v in info.items()
                                                if k not in ("processes", "batches", "bad_steps")}))
    shutil.rmtree(b / "checkpoints" / "checkpoint-00000004")
    train(GEN_TINY, b, sets, resume=str(old))
    final = "checkpoints/checkpoint-00000004/model.safetensors"
    wa, wb = load_file(str(a / final)), load_file(str(b / final))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
