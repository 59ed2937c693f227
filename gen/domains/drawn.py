"""Writing and finding the data sets a world draws itself (shapes, scenes): one build protocol for all of them.

metadata.jsonl appears only when every image is written (an atomic rename) and info.json records the row count,
so an interrupted build is never read as a smaller finished one (`is_complete`).
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tqdm import tqdm

log = logging.getLogger(__name__)


def write_set(out: str | Path, rows: Iterable[Callable[[Path], dict[str, Any]]], total: int, info: dict[str, Any],
              extra: dict[str, str] | None = None, desc: str = "images") -> Path:
    """Write OUT/images/, then the `extra` files (name → text), OUT/info.json and, last, OUT/metadata.jsonl.

    Each of `rows` writes its image under OUT and returns its metadata row; `info` gets the row count."""
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    for marker in ("metadata.jsonl", "info.json"):  # rebuilding over an old set: unfinished until the end
        (out / marker).unlink(missing_ok=True)
    partial = out / "metadata.jsonl.partial"
    with open(partial, "w") as meta:
        for write_row in tqdm(rows, total=total, desc=desc, unit="img"):
            meta.write(json.dumps(write_row(out)) + "\n")
    for name, text in (extra or {}).items():
        (out / name).write_text(text)
    (out / "info.json").write_text(json.dumps({**info, "count": total}, indent=1))
    os.replace(partial, out / "metadata.jsonl")
    return out


def finished_info(folder: str | Path) -> dict | None:
    """info.json of a finished build: its count equals metadata.jsonl's rows; else None."""
    folder = Path(folder)
    info_file, meta_file = folder / "info.json", folder / "metadata.jsonl"
    if not (info_file.is_file() and meta_file.is_file()):  # is_file(): a FIFO is never opened
        return None
    try:
        info = json.loads(info_file.read_text())
        rows = sum(1 for line in meta_file.read_text(encoding="utf-8").split("\n") if line.strip())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("count") == rows else None


def is_complete(folder: str | Path) -> bool:
    """Whether `folder` holds a finished build (not one interrupted half-way)."""
    return finished_info(folder) is not None


def ensure(folder: str | Path, count: int, size: int, seed: int, make: Callable[..., Path], what: str) -> Path:
    """`make(folder, count=, size=, seed=)` unless a finished set is in `folder`; an unfinished one is rebuilt."""
    folder = Path(folder)
    info = finished_info(folder)
    if info is None:
        if (folder / "metadata.jsonl").exists() or (folder / "metadata.jsonl.partial").exists():
            log.warning("%s holds an unfinished %s build; rebuilding it (%d images)", folder, what, count)
        return make(folder, count=count, size=size, seed=seed)
    asked, held = (count, size, seed), (info.get("count"), info.get("size"), info.get("seed"))
    if asked != held:  # a finished set is data someone may rely on: use it, loudly, rather than overwrite it
        log.warning("%s holds a finished %s set (count, size, seed) = %s, not the %s asked for; using it "
                    "(delete the folder to rebuild)", folder, what, held, asked)
    return folder
