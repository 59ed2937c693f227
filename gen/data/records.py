"""Data-set rows: a folder's metadata.jsonl or COCO-captions JSON → Records, with the row checks every reader
shares (training, `caption score`, `gen check-data`).

Bad rows never stop a run: each is skipped, counted by reason (with its row) and warned about, its name
printed with control characters escaped (gen.core.terminal.printable). Nothing outside the data-set folder
is read and only regular files are accepted, so a FIFO or device is never opened. No torch here, so
`gen check-data` starts in a second.
"""
from __future__ import annotations

import collections
import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gen.core.errors import DataError, UserError
from gen.core.terminal import printable

log = logging.getLogger(__name__)


@dataclass
class Record:
    path: Path  # the image file; with `image` set, only a name for messages (no such file exists)
    texts: list[str]
    meta: dict[str, Any] = field(default_factory=dict)  # the row's other fields (shapes: true attributes, split)
    row: int | None = None  # metadata.jsonl line number (COCO: index in "images"), for messages
    image: bytes | None = None  # an encoded image held in memory (a `datasets` Image column), read instead of path


def label_of(rec: Record) -> str | None:
    """A row's label as text (metadata.jsonl may hold 3 or "cat"), or None without one."""
    label = rec.meta.get("label")
    return str(label) if isinstance(label, (str, int)) and not isinstance(label, bool) else None


class SkipLog:
    """Counts skipped items by reason (with their rows), and notes: items used but changed on the way in."""

    def __init__(self, warn: bool = True) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.items: list[dict[str, Any]] = []
        self.notes: collections.Counter[str] = collections.Counter()
        self.warn = warn  # False: only count (gen check-data prints its own list)

    def skip(self, what: str, reason: str, row: int | None = None) -> None:
        self.counts[reason] += 1
        self.items.append({"file_name": what, "reason": reason} | ({"row": row} if row is not None else {}))
        if self.warn:
            log.warning("skipped %s%s: %s", printable(what), f" (row {row})" if row is not None else "", reason)

    def note(self, what: str, reason: str) -> None:
        """Warned about once per reason (a data set of 16-bit scans would otherwise warn per image), always counted."""
        self.notes[reason] += 1
        if self.warn and self.notes[reason] == 1:
            log.warning("%s: %s (warned once; every such image is counted)", printable(what), reason)

    def summary(self) -> dict[str, int]:
        return dict(self.counts)


def resolve_inside(root: Path, name: str) -> Path | None:
    """The file `name` under `root`, or None if it is absolute or escapes `root` (../../etc/passwd, or a symlink
    whose target lies outside), or cannot be resolved at all (a symlink loop, a NUL byte)."""
    if not name or Path(name).is_absolute():
        return None
    try:
        root = root.resolve()
        path = (root / name).resolve()  # follows symlinks without opening anything
    except (OSError, RuntimeError, ValueError):  # RuntimeError: a symlink loop (Python ≤ 3.12)
        return None
    return path if path.is_relative_to(root) else None


def file_problem(path: Path) -> str | None:
    """Why `path` cannot be read as a data file ("missing file", "not a regular file"), or None. Uses stat only,
    so a FIFO or a device is never opened."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing file"
    except OSError as err:
        return f"file cannot be read ({err.strerror})"
    return None if stat.S_ISREG(mode) else "not a regular file"


def clean_texts(text: Any) -> list[str]:
    texts = text if isinstance(text, list) else [text]
    return [t.strip() for t in texts if isinstance(t, str) and t.strip()]


def _add_record(records: list[Record], skips: SkipLog, root: Path, name: Any, text: Any, meta: dict,
                row: int) -> None:
    """The row checks every reader shares (gen check-data reports what they skip)."""
    if not isinstance(name, str) or not name:
        return skips.skip(repr(name), "row has no file_name", row)
    path = resolve_inside(root, name)
    if path is None:
        return skips.skip(name, "file_name is outside the data-set folder", row)
    texts = clean_texts(text)
    if not texts:
        return skips.skip(name, "empty caption", row)
    problem = file_problem(path)
    if problem:
        return skips.skip(name, problem, row)
    records.append(Record(path, texts, meta, row))


def split_lines(text: str) -> list[str]:
    """Lines split at "\\n" (and "\\r\\n") only: str.splitlines also splits at U+2028, form feeds and other separators
    that can sit inside one caption or prompt."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def read_prompts(path: str | Path) -> list[str]:
    """One prompt per non-empty line; lines end at "\\n" only (splitlines also cuts at U+2028 or a form feed)."""
    try:
        text = Path(path).read_bytes().decode("utf-8")  # bytes: text mode would also end lines at a bare "\r"
    except UnicodeDecodeError as err:
        raise UserError(f"prompts file {path} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    return [line.strip() for line in split_lines(text) if line.strip()]


def read_folder(folder: str | Path, split: str | None = None, skips: SkipLog | None = None) -> list[Record]:
    """Rows of `folder/metadata.jsonl` ({"file_name", "text", ...}); `split` keeps rows of that split."""
    root = Path(folder)
    meta_file = root / "metadata.jsonl"
    problem = file_problem(meta_file)
    if problem == "missing file":
        raise FileNotFoundError(f"{meta_file} not found: a data-set folder needs a metadata.jsonl")
    if problem:
        raise DataError(f"{meta_file}: {problem}; it must be a text file of JSON rows")
    skips = skips if skips is not None else SkipLog()
    records: list[Record] = []
    # Decoded from bytes, not read as text: text mode also ends a line at a bare "\r", which JSON Lines does not.
    for lineno, line in enumerate(split_lines(meta_file.read_bytes().decode("utf-8", errors="replace")), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
        except ValueError:
            skips.skip(f"metadata.jsonl line {lineno}", "row is not valid JSON", lineno)
            continue
        except RecursionError:  # "[[[[…]]]]" nested deeper than the parser's stack: one bad row, not a crash
            skips.skip(f"metadata.jsonl line {lineno}", "row is nested too deep to read", lineno)
            continue
        if split is not None and row.get("split", split) != split:
            continue
        meta = {k: v for k, v in row.items() if k not in ("file_name", "text")}
        _add_record(records, skips, root, row.get("file_name"), row.get("text"), meta, lineno)
    return records


def read_coco(json_path: str | Path, image_root: str | Path | None = None, skips: SkipLog | None = None) -> list[Record]:
    """COCO-captions JSON: `images` [{id, file_name}] and `annotations` [{image_id, caption}].

    A file that is not such JSON is a DataError; a bad row in it is a counted skip (`row` = its list index).
    """
    json_path = Path(json_path)
    data = _coco_json(json_path)
    root = Path(image_root) if image_root else json_path.parent
    skips = skips if skips is not None else SkipLog()
    captions: dict[int | str, list[Any]] = collections.defaultdict(list)
    for i, ann in enumerate(data.get("annotations", [])):
        if not isinstance(ann, dict):
            skips.skip(f"annotations[{i}]", "annotation is not an object", i)
        elif not _is_id(ann.get("image_id")):
            skips.skip(f"annotations[{i}]", "annotation has no image_id", i)
        else:
            captions[ann["image_id"]].append(ann.get("caption"))
    records: list[Record] = []
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict):
            skips.skip(f"images[{i}]", "image row is not an object", i)
            continue
        texts = captions.get(image.get("id"), []) if _is_id(image.get("id")) else []
        _add_record(records, skips, root, image.get("file_name"), texts, {"image_id": image.get("id")}, i)
    return records


def _is_id(value: Any) -> bool:
    return isinstance(value, (int, str)) and not isinstance(value, bool)


def _coco_json(json_path: Path) -> dict[str, Any]:
    """The parsed file, or one DataError line that names the file and what to do about it."""
    if not json_path.is_file():  # is_file() is False for a FIFO too, so one is never opened
        raise FileNotFoundError(f"{json_path}: no such COCO captions file (data.path names the JSON file itself)")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8-sig"))  # -sig: a BOM some editors add is fine
    except UnicodeDecodeError as err:
        raise DataError(f"{json_path}: not UTF-8 (bad byte at offset {err.start}); re-save it as UTF-8") from None
    except json.JSONDecodeError as err:
        raise DataError(f"{json_path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
                        "fix the file or re-download it") from None
    except ValueError as err:  # valid syntax json cannot convert, e.g. an integer of over 4300 digits
        raise DataError(f"{json_path}: not usable JSON ({err}); fix the file or re-download it") from None
    except RecursionError:
        raise DataError(f"{json_path}: JSON nested too deep to read; fix the file or re-download it") from None
    if not isinstance(data, dict):
        raise DataError(f"{json_path}: the top level is a JSON {type(data).__name__}, not an object; a COCO captions "
                        'file is {"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}')
    for key in ("images", "annotations"):
        if not isinstance(data.get(key, []), list):
            raise DataError(f'{json_path}: "{key}" is a JSON {type(data[key]).__name__}, not a list; '
                            "is this a COCO captions file?")
    if "images" not in data:
        raise DataError(f'{json_path}: no "images" list; a COCO captions file (captions_*.json) has one')
    return data
