"""The HTTP routes of `gen serve`: the page, and the JSON API it and scripts use (README.md, "Web UI and HTTP API").

    GET    /                          the page (gen/serve/page.html: one file, no external scripts or fonts)
    GET    /api/info                  model, samplers, defaults and caps
    POST   /api/generate              JSON request → 202 and the job (its id); 400 bad input; 429 queue full
    GET    /api/jobs/{id}             status, progress (step of total), results best first
    DELETE /api/jobs/{id}             cancel: a waiting job never starts, a running one stops between steps
    GET    /api/images/{id}/{n}.png   image n (seed + n) as a PNG carrying its parameters (`gen sample --from-png`)

Errors are JSON {"error": message}, a message meant for a person; the page shows it as it is.
"""
from __future__ import annotations

import dataclasses
import io
from importlib.resources import files
from typing import Any, Sequence

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.middleware.trustedhost import TrustedHostMiddleware

from gen.core.errors import UserError
from gen.generator.png_params import save_png
from gen.serve.drawing import Drawer
from gen.serve.jobs import Job, JobQueue, QueueFull
from gen.serve.request import DEFAULT_COUNT, MAX_COUNT, MAX_PROMPT, MAX_STEPS, parse_request


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def job_json(job: Job) -> dict[str, Any]:
    results = [{"index": r.index, "seed": r.seed, "score": r.score, "caption": r.caption,
                "url": f"/api/images/{job.id}/{r.index}.png"} for r in job.results]
    return {"id": job.id, "status": job.status, "step": job.step, "total": job.total, "error": job.error,
            "request": dataclasses.asdict(job.request), "results": results}


def create_app(drawer: Drawer, jobs: JobQueue, allowed_hosts: Sequence[str] | None = None) -> FastAPI:
    """The app for one model. `allowed_hosts`: the Host names accepted (a loopback server names only its own,
    so a web page elsewhere cannot reach it by DNS rebinding); None accepts any."""
    app = FastAPI(title="roundtrip gen serve", docs_url=None, redoc_url=None, openapi_url=None)
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    page = files("gen.serve").joinpath("page.html").read_text(encoding="utf-8")
    max_steps = drawer.pipe.scheduler.config.get("num_train_timesteps")

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        defaults = drawer.pipe.sample_defaults
        return {"model": drawer.model_name, "captioner": drawer.scorer is not None, "samplers": drawer.samplers,
                "defaults": {"steps": defaults.steps, "guidance": defaults.guidance, "count": DEFAULT_COUNT,
                             "scheduler": drawer.samplers[0]},
                "limits": {"count": MAX_COUNT, "steps": min(MAX_STEPS, max_steps or MAX_STEPS),
                           "prompt": MAX_PROMPT, "waiting": jobs.line.maxsize}}

    @app.post("/api/generate", status_code=202)
    async def generate(request: Request) -> Any:
        # JSON only: a form on another site can post text/plain without asking, but not application/json.
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return error(415, "send the request as JSON (Content-Type: application/json)")
        try:
            data = await request.json()
        except ValueError:
            return error(400, "the request body is not valid JSON")
        try:
            draw = parse_request(data, drawer.samplers, drawer.pipe.sample_defaults, max_steps)
            return job_json(jobs.submit(draw))
        except UserError as err:
            return error(400, str(err))
        except QueueFull as err:
            return error(429, str(err))

    @app.get("/api/jobs/{job_id}")
    def job(job_id: str) -> Any:
        found = jobs.get(job_id)
        return job_json(found) if found is not None else _unknown(job_id)

    @app.delete("/api/jobs/{job_id}")
    def cancel(job_id: str) -> Any:
        found = jobs.cancel(job_id)
        return job_json(found) if found is not None else _unknown(job_id)

    @app.get("/api/images/{job_id}/{index:int}.png")
    def image(job_id: str, index: int) -> Response:
        found = jobs.get(job_id)
        result = next((r for r in found.results if r.index == index), None) if found is not None else None
        if result is None:
            return error(404, f"no image {index} of job {job_id!r} (jobs are kept until {jobs.keep} newer ones "
                              "have finished)")
        buffer = io.BytesIO()
        save_png(result.image, buffer, found.request.params(index, drawer.model_name))
        name = f"roundtrip-seed{result.seed}.png"
        return Response(buffer.getvalue(), media_type="image/png",
                        headers={"Content-Disposition": f'inline; filename="{name}"'})

    return app


def _unknown(job_id: str) -> JSONResponse:
    return error(404, f"no job {job_id!r}: it never existed, or it finished long ago and was forgotten")
