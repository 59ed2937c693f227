"""Generation parameters inside a PNG: what drew an image travels with it, and can draw it again.

The parameters go into one PNG text chunk (keyword `roundtrip`) as JSON, the way other diffusion tools store
theirs in a `parameters` chunk. `gen sample --from-png FILE` and the web UI read them back. A PNG from anywhere
is untrusted input: reading it never runs anything, its chunk is size-capped, and every field is type-checked
before it is used.
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

from gen.core.errors import UserError

KEYWORD = "roundtrip"
MAX_PROMPT = 2_000  # characters of each text field; far beyond any tokenizer's max_length
# Bytes of JSON: four text fields of MAX_PROMPT characters fit even at 6 bytes each (a control character's
# \uXXXX), so every DrawParams that params_from_dict accepts can be written; more is not ours.
MAX_CHUNK = 65_536
MAX_SEED = 2**63 - 1  # torch generators and most JSON readers hold seeds as signed 64-bit integers


@dataclasses.dataclass(frozen=True)
class DrawParams:
    """Everything that decides one image, given the model: the same values give the same pixels (up to float
    rounding across machines)."""

    prompt: str
    seed: int
    steps: int
    guidance: float
    negative_prompt: str = ""
    scheduler: str = "DPMSolverMultistepScheduler"
    model: str = ""  # the model folder's name, for the reader's information; never opened from here

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), ensure_ascii=False, sort_keys=True)


def save_png(image: Image.Image, path: str | Path, params: DrawParams) -> None:
    """Write IMAGE to PATH as a PNG whose `roundtrip` text chunk holds PARAMS. PARAMS are checked as a reader
    checks them first, so no PNG is written that `read_params` would refuse."""
    params_from_dict(dataclasses.asdict(params))
    info = PngImagePlugin.PngInfo()
    info.add_itxt(KEYWORD, params.to_json())  # iTXt: UTF-8, so any prompt survives
    image.save(path, format="PNG", pnginfo=info)


def png_bytes_params(image: Image.Image) -> DrawParams:
    """The DrawParams stored in an opened PNG; UserError naming what is missing or wrong."""
    raw = getattr(image, "text", {}).get(KEYWORD) if image.format == "PNG" else None
    if raw is None:
        raise UserError(f"the image holds no generation parameters (no {KEYWORD!r} PNG text chunk); only PNGs "
                        "written by `gen sample` or `gen serve` carry them")
    if len(raw.encode("utf-8")) > MAX_CHUNK:
        raise UserError(f"the {KEYWORD!r} PNG text chunk is over {MAX_CHUNK} bytes; it was not written by roundtrip")
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as err:  # RecursionError: deeply nested brackets
        raise UserError(f"the {KEYWORD!r} PNG text chunk is not JSON ({err})") from None
    return params_from_dict(data)


def read_params(path: str | Path) -> DrawParams:
    """The DrawParams stored in the PNG at PATH; UserError naming PATH when it is not a readable PNG with them."""
    try:
        with Image.open(path) as image:
            image.load()  # text chunks after the image data are read only with the pixels
            return png_bytes_params(image)
    except UserError as err:
        raise UserError(f"{path}: {err}") from None
    # PIL's ways of saying "not an image I can read", and of refusing one too large to decode.
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as err:
        raise UserError(f"{path}: not a readable PNG ({type(err).__name__}: {err})") from None


def params_from_dict(data: Any) -> DrawParams:
    """DrawParams from decoded JSON, every field type- and range-checked; UserError names the first bad one."""
    if not isinstance(data, dict):
        raise UserError("the generation parameters are not a JSON object")
    fields = {f.name: f for f in dataclasses.fields(DrawParams)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(f"unknown generation parameter {unknown[0]!r}")
    missing = [name for name in ("prompt", "seed", "steps", "guidance") if name not in data]
    if missing:
        raise UserError(f"the generation parameters lack {missing[0]!r}")
    for name in ("prompt", "negative_prompt", "scheduler", "model"):
        if name in data and not _is_text(data[name]):
            raise UserError(f"generation parameter {name!r} must be UTF-8 text of at most {MAX_PROMPT} characters")
    for name, low in (("seed", 0), ("steps", 1)):
        if isinstance(data[name], bool) or not isinstance(data[name], int) or not low <= data[name] <= MAX_SEED:
            raise UserError(f"generation parameter {name!r} must be a whole number from {low} to {MAX_SEED}, "
                            f"not {_shown(data[name])}")
    guidance = data["guidance"]
    if isinstance(guidance, bool) or not isinstance(guidance, (int, float)) or not math.isfinite(guidance):
        raise UserError(f"generation parameter 'guidance' must be a finite number, not {_shown(guidance)}")
    return DrawParams(**{**data, "guidance": float(guidance)})


def _is_text(value: Any) -> bool:
    """A str of at most MAX_PROMPT characters that UTF-8 can write: JSON's \\ud800 escapes decode to lone
    surrogates, which would fail later, when the image's row or PNG is written."""
    if not isinstance(value, str) or len(value) > MAX_PROMPT:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(value: Any) -> str:
    """A bad value as an error message quotes it: its repr, cut short (a PNG's chunk may hold anything)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def model_label(model_dir: str | Path, checkpoint: str | Path | None = None) -> str:
    """What DrawParams.model records: the model folder's name, with its run's when it is a run's model/
    (runs/demo/gen/model → gen/model), and the checkpoint's; never the full path, which would carry the
    user's own folders into every image they share."""
    path = Path(model_dir).resolve()  # only names are kept; resolving gives "." one
    label = f"{path.parent.name}/{path.name}" if path.name == "model" and path.parent.name else path.name
    return f"{label} ({Path(checkpoint).name})" if checkpoint is not None else label
