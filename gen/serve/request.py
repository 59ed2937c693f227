"""One drawing request of the web UI or the HTTP API: its JSON checked field by field, with the server's caps.

Every value comes from a browser or a script, so nothing is trusted: unknown fields, wrong types, empty prompts
and values past the caps are a UserError whose message names the field and what it accepts; the app answers
it with HTTP 400 and the page shows it as it is.
"""
from __future__ import annotations

import dataclasses
import math
import secrets
from typing import Any, Sequence

from gen.core.config import SampleConfig
from gen.core.errors import UserError
from gen.generator.png_params import DrawParams
from gen.generator.sample import MAX_GUIDANCE

# Caps of one request: a local UI should answer in seconds, and one request must not hold the model for long.
MAX_COUNT = 8
MAX_STEPS = 100  # the shipped samplers are done by 20-30 steps (docs/PERFORMANCE.md)
MAX_PROMPT = 300  # characters; the tokenizer keeps far fewer tokens than that
DEFAULT_COUNT = 4
# Seeds travel through JavaScript, whose numbers hold integers exactly only up to 2**53 - 1.
MAX_SEED = 2**53 - 1
RANDOM_SEEDS = 2**32  # a seed left empty is drawn below this: short enough to read and retype
FIELDS = ("prompt", "negative_prompt", "seed", "steps", "guidance", "scheduler", "count")


@dataclasses.dataclass(frozen=True)
class DrawRequest:
    """`count` images of one prompt; image i has seed `seed + i`, as in `gen sample`."""

    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float
    scheduler: str
    count: int

    def params(self, index: int, model: str = "") -> DrawParams:
        """What drew image `index`, for its PNG (gen/generator/png_params.py)."""
        return DrawParams(prompt=self.prompt, seed=self.seed + index, steps=self.steps, guidance=self.guidance,
                          negative_prompt=self.negative_prompt, scheduler=self.scheduler, model=model)


def parse_request(data: Any, schedulers: Sequence[str], defaults: SampleConfig,
                  max_steps: int | None = None) -> DrawRequest:
    """A DrawRequest from decoded JSON; absent fields take the model's defaults (`defaults`, the first of
    `schedulers`, DEFAULT_COUNT, a random seed). `max_steps`: the model's noise levels, when fewer than MAX_STEPS."""
    if not isinstance(data, dict):
        raise UserError("the request must be a JSON object with a 'prompt'")
    unknown = sorted(set(data) - set(FIELDS))
    if unknown:
        raise UserError(f"unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}")
    prompt = _text(data, "prompt", "")
    if not prompt.strip():
        raise UserError("the prompt is empty; describe the image to draw, e.g. 'a red circle on the left'")
    steps_cap = min(MAX_STEPS, max_steps) if max_steps else MAX_STEPS
    count = _whole(data, "count", DEFAULT_COUNT, 1, MAX_COUNT)
    seed = _whole(data, "seed", None, 0, MAX_SEED - (count - 1))
    scheduler = data.get("scheduler") or schedulers[0]
    if scheduler not in schedulers:
        raise UserError(f"unknown sampler {scheduler!r}; choose one of {', '.join(schedulers)}")
    return DrawRequest(prompt=prompt.strip(), negative_prompt=_text(data, "negative_prompt", "").strip(),
                       seed=secrets.randbelow(RANDOM_SEEDS) if seed is None else seed,
                       steps=_whole(data, "steps", defaults.steps, 1, steps_cap),
                       guidance=_number(data, "guidance", defaults.guidance, 0.0, MAX_GUIDANCE),
                       scheduler=scheduler, count=count)


def _text(data: dict, name: str, default: str) -> str:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise UserError(f"{name} must be text, not {value!r}")
    if len(value) > MAX_PROMPT:
        raise UserError(f"{name} is {len(value)} characters long; at most {MAX_PROMPT}")
    return value


def _present(data: dict, name: str) -> Any:
    """The field's value, None when absent, null or blank (a form's empty box)."""
    value = data.get(name)
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def _whole(data: dict, name: str, default: int | None, low: int, high: int) -> int | None:
    """A whole number in [low, high]; a form's digits ("20") count, 2.5 or "abc" do not."""
    value = _present(data, name)
    if value is None:
        return default
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{name} must be a whole number, not {value!r}")
    if not low <= value <= high:
        raise UserError(f"{name} must be from {low} to {high}, not {value}")
    return value


def _number(data: dict, name: str, default: float, low: float, high: float) -> float:
    value = _present(data, name)
    if value is None:
        return default
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise UserError(f"{name} must be a number, not {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, not {value!r}")
    if not low <= value <= high:
        raise UserError(f"{name} must be from {low:g} to {high:g}, not {value:g}")
    return float(value)
