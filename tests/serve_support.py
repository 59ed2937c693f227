"""What the `gen serve` tests share: a real uvicorn server on a free loopback port, and a small JSON client."""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from typing import Any, Iterator

FINISHED = ("done", "cancelled", "failed")


@contextmanager
def running(app) -> Iterator[str]:
    """Serve APP with uvicorn in a thread, on a port the OS picks (bound here, so no other test can take it);
    yields the base URL and stops the server afterwards."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@contextmanager
def served(model_dir, captioner_dir) -> Iterator[str]:
    """`gen serve` of MODEL_DIR (scored by CAPTIONER_DIR) as `gen serve` builds it, loopback Host names only, on a
    running test server: yields its base URL, then stops the server and its worker."""
    from gen.serve.server import LOOPBACK_NAMES, build_app

    app, jobs = build_app(model_dir, captioner_dir, "cpu", list(LOOPBACK_NAMES))
    try:
        with running(app) as base:
            yield base
    finally:
        jobs.close()


def call(method: str, url: str, body: Any = None, raw: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(HTTP status, decoded JSON body) of one request; error statuses are returned, not raised."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def wait_for(base: str, job_id: str, timeout: float = 120) -> dict:
    """The job once it has finished (done, cancelled or failed)."""
    deadline = time.monotonic() + timeout
    while True:
        status, job = call("GET", f"{base}/api/jobs/{job_id}")
        assert status == 200, job
        if job["status"] in FINISHED:
            return job
        assert time.monotonic() < deadline, f"job {job_id} still {job['status']} after {timeout} s"
        time.sleep(0.05)
