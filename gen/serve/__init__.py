"""`gen serve`: a local web page and HTTP API that draw with one generator and, given one, score with a captioner.

FastAPI and uvicorn, not gradio: two small packages (the `serve` extra), a page that fetches nothing from the
network (it is one HTML file with its own script), one server for the page and the documented API, and a job
queue whose bound is ours to choose (jobs.py). The flow: app.py parses a request (request.py) and queues it;
one worker thread draws it (drawing.py); the page polls the job and shows its images best first.
"""
from __future__ import annotations

from gen.core.errors import UserError

INSTALL_HINT = "gen serve needs FastAPI and uvicorn: pip install -e '.[serve]' (or `make setup`)"


def require_extra() -> None:
    """UserError with the install command when the `serve` extra is missing; checked before any model loads."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise UserError(INSTALL_HINT) from None
