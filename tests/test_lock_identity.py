"""A run folder's lock names its holder by pid and start time: a pid that the system has since given to an
unrelated process does not keep the folder busy, while the real holder still does."""
from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
from pathlib import Path

import pytest

from gen.training.rundir import LOCK_NAME, RunDirBusy, RunDirLock

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="start times come from Linux's /proc")


def start_ticks(pid: int) -> int:
    """Field 22 of /proc/PID/stat, read here independently of the code under test; the command name (field 2)
    may hold spaces, so fields are counted from its closing parenthesis."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[19])  # fields[0] is field 3


@pytest.fixture
def unrelated_process():
    """A live process that has nothing to do with any run: it stands for a pid the system reused."""
    proc = subprocess.Popen(["sleep", "120"])
    yield proc
    proc.kill()
    proc.wait()


def write_lock(run_dir: Path, pid: int, start_time: int) -> None:
    (run_dir / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(),
                                                  "started": "2026-01-01 00:00:00", "start_time": start_time}))


def test_lock_records_the_holders_start_time(tmp_path):
    with RunDirLock(tmp_path):
        held = json.loads((tmp_path / LOCK_NAME).read_text())
        assert held["pid"] == os.getpid()
        assert held["start_time"] == start_ticks(os.getpid())
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_of_a_reused_pid_is_taken_over_with_a_warning(tmp_path, unrelated_process, caplog):
    pid = unrelated_process.pid
    write_lock(tmp_path, pid, start_ticks(pid) + 1)  # the lock's process started at another time: not this one
    lock = RunDirLock(tmp_path)
    with caplog.at_level(logging.WARNING, logger="gen.training.rundir"):
        lock.acquire()
    held = json.loads((tmp_path / LOCK_NAME).read_text())
    assert held["pid"] == os.getpid() and held["start_time"] == start_ticks(os.getpid())
    assert f"taking over the lock of {tmp_path}" in caplog.text
    assert f"pid {pid} now belongs to another process" in caplog.text
    assert unrelated_process.poll() is None  # a stale lock is dropped; the process that reused its pid is left be
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_of_a_live_holder_with_its_start_time_is_refused(tmp_path, unrelated_process):
    pid = unrelated_process.pid
    write_lock(tmp_path, pid, start_ticks(pid))
    with pytest.raises(RunDirBusy, match=f"in use by a running process \\(pid {pid} on "):
        RunDirLock(tmp_path).acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == pid  # untouched


def test_lock_without_a_start_time_of_a_live_pid_is_refused_as_before(tmp_path, unrelated_process):
    """Locks written before start times were recorded: a live pid is all there is to go on."""
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": unrelated_process.pid, "host": socket.gethostname()}))
    with pytest.raises(RunDirBusy, match="in use by a running process"):
        RunDirLock(tmp_path).acquire()
