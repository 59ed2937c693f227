"""Build and run `gen serve`: load the models once, then serve the page and the API with uvicorn."""
from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import TYPE_CHECKING

from gen.serve import require_extra

if TYPE_CHECKING:  # fastapi is the optional `serve` extra: imported only once require_extra has passed
    from fastapi import FastAPI

    from gen.serve.jobs import JobQueue

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    """Whether HOST (a name or an address, IPv6 with or without brackets) is this machine only."""
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build_app(model_dir: str | Path, captioner_dir: str | Path | None = None, device: str = "cpu",
              allowed_hosts: list[str] | None = None) -> tuple[FastAPI, JobQueue]:
    """The FastAPI app and its job queue for MODEL_DIR (and CAPTIONER_DIR's scores and captions)."""
    require_extra()
    from gen.generator.png_params import model_label
    from gen.generator.sample import load_for_sampling, require_model
    from gen.serve.app import create_app
    from gen.serve.drawing import Drawer, load_captioner
    from gen.serve.jobs import JobQueue

    require_model(model_dir)
    if captioner_dir is not None and not (Path(captioner_dir) / "config.json").is_file():
        raise FileNotFoundError(f"--captioner {captioner_dir} is not a captioner model folder (no config.json); "
                                "pass the model/ folder of a `caption train` run")
    pipe = load_for_sampling(model_dir, device=device)
    scorer = load_captioner(captioner_dir, model_dir, device) if captioner_dir is not None else None
    drawer = Drawer(pipe, scorer, model_label(model_dir))  # as `gen sample` labels its PNGs
    jobs = JobQueue(drawer)
    return create_app(drawer, jobs, allowed_hosts), jobs


def serve(model_dir: str | Path, captioner_dir: str | Path | None = None, host: str = "127.0.0.1",
          port: int = 8000, device: str = "cpu") -> None:
    """Serve until interrupted. On a loopback host only loopback Host headers are accepted (DNS rebinding)."""
    require_extra()
    import uvicorn

    allowed = list(LOOPBACK_NAMES) if is_loopback(host) else None
    app, jobs = build_app(model_dir, captioner_dir, device, allowed)
    print(f"gen serve: open http://{host if ':' not in host else f'[{host}]'}:{port}/ (Ctrl-C stops)", flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        jobs.close()
