"""The server's job queue: one worker thread runs the model, a bounded line of requests waits for it.

One worker, because a model's forward pass is not re-entrant (its modules, scheduler state and generator
objects are shared), and a second thread would only make both slower on the same device. The line is bounded
so that a flood of requests is refused at once (`QueueFull`, HTTP 429) instead of piling up work nobody waits
for. Cancelling is cooperative: the pipeline's per-step callback raises `Cancelled` between denoising steps.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import threading
import uuid
from typing import Callable

from PIL import Image

from gen.serve.request import DrawRequest

log = logging.getLogger(__name__)
WAITING = 4  # jobs that may wait behind the running one
KEEP = 32  # finished jobs whose images stay downloadable (oldest forgotten first): memory stays bounded
FINISHED = ("done", "cancelled", "failed")


class QueueFull(RuntimeError):
    """More jobs are waiting than the queue holds: the request is refused, not kept."""


class Cancelled(Exception):
    """Raised inside the worker, between two denoising steps, when the job's Cancel was asked for."""


@dataclasses.dataclass
class Result:
    """One drawn image: `index` i has seed request.seed + i; `score` and `caption` are None without a captioner."""

    index: int
    seed: int
    image: Image.Image
    score: float | None = None
    caption: str | None = None


@dataclasses.dataclass
class Job:
    request: DrawRequest
    id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    status: str = "queued"  # queued → running → scoring → done | cancelled | failed
    step: int = 0
    total: int = 0
    results: list[Result] = dataclasses.field(default_factory=list)  # best score first
    error: str | None = None
    cancel_asked: threading.Event = dataclasses.field(default_factory=threading.Event)

    def progress(self, step: int, total: int) -> None:
        """The pipeline's per-step callback: records progress, and stops the job there if it was cancelled."""
        self.step, self.total = step, total
        if self.cancel_asked.is_set():
            raise Cancelled

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


Work = Callable[[Job], list[Result]]  # draws a job's images, calling job.progress after each step


class JobQueue:
    """Jobs by id, a bounded line of waiting ones, and the one thread that runs `work` on each in turn."""

    def __init__(self, work: Work, waiting: int = WAITING, keep: int = KEEP) -> None:
        self.work = work
        self.keep = keep
        self.line: queue.Queue[Job] = queue.Queue(maxsize=waiting)
        self.jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self.lock = threading.Lock()  # guards `jobs`; the route handlers run in several threads
        self.stopping = threading.Event()
        self.worker = threading.Thread(target=self._run, name="gen-serve-worker", daemon=True)
        self.worker.start()

    def submit(self, request: DrawRequest) -> Job:
        """A queued job for `request`; QueueFull when WAITING jobs already wait."""
        job = Job(request)
        with self.lock:
            try:
                self.line.put_nowait(job)
            except queue.Full:
                raise QueueFull(f"the server is busy: {self.line.maxsize} requests are already waiting; try again "
                                "when one has finished") from None
            self.jobs[job.id] = job
            self._forget_old()
        return job

    def get(self, job_id: str) -> Job | None:
        with self.lock:
            return self.jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        """Ask the job to stop: a waiting one never starts, a running one stops after its current step."""
        job = self.get(job_id)
        if job is not None and not job.finished:
            job.cancel_asked.set()
        return job

    def close(self) -> None:
        """Stop the worker after its current job (the server's shutdown)."""
        self.stopping.set()
        self.worker.join(timeout=30)

    def _forget_old(self) -> None:
        finished = [k for k, j in self.jobs.items() if j.finished]
        for key in finished[: max(0, len(finished) - self.keep)]:
            del self.jobs[key]

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                job = self.line.get(timeout=0.2)
            except queue.Empty:
                continue
            self._run_one(job)

    def _run_one(self, job: Job) -> None:
        if job.cancel_asked.is_set():
            job.status = "cancelled"
            return
        job.status, job.total = "running", job.request.steps
        try:
            job.results = self.work(job)
            job.status = "done"
        except Cancelled:
            job.status = "cancelled"
        except Exception as err:  # a bug or an out-of-memory: the job fails, the server keeps serving
            log.exception("job %s failed", job.id)
            job.error, job.status = f"{type(err).__name__}: {err}", "failed"
