"""Writing results without losing or mixing them: refuse to replace unless asked, atomic files and folders.

The rule every command follows (gen sample, caption score, caption search --html): an output that
already exists is refused unless `--overwrite` is given, so an earlier result is never replaced by
accident; and each file or folder appears whole or not at all.
"""
from __future__ import annotations

import json
import math
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from gen.core.errors import UserError


class OutputExists(UserError):
    """An output is already there and --overwrite was not given."""


def refuse_existing(paths: Iterable[Path], command: str) -> None:
    """Raise OutputExists naming every path of `paths` that exists; the fix is --overwrite or another place."""
    found = [str(p) for p in paths if p.exists()]
    if found:
        raise OutputExists(f"{', '.join(found)} already exist(s), from an earlier `{command}`; "
                           f"pass --overwrite to replace, or write somewhere else")


def require_dir_or_missing(path: Path, what: str = "--out") -> None:
    """An output folder that is a file is a user error, not a FileExistsError from mkdir."""
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{what} {path} is a file, not a folder; pass a folder")


def finite(value: Any) -> Any:
    """NaN and ±inf → None, recursively: JSON has no NaN, and many readers reject it."""
    if isinstance(value, float):  # also numpy float64, a float subclass
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy / torch scalars
        return finite(value.item())
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """json.dumps that writes NaN/inf as null and fails loudly on anything else non-JSON."""
    return json.dumps(finite(value), allow_nan=False, **kwargs)


def _fsync_tree(folder: Path) -> None:
    for f in folder.rglob("*"):  # data on disk before the rename makes it visible
        if f.is_file():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write `text` to a temp file beside `path`, then os.replace: readers see the old file or the new one."""
    path = Path(path)
    tmp = path.with_name(f".tmp-{path.name}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


@contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield an empty temp folder beside `final`; on success it replaces `final`, on failure it is removed.

    `final` stays whole until the new folder is complete. Two renames swap them (POSIX has no atomic swap
    of non-empty folders from Python); a crash between them leaves the previous folder as .old-<name>,
    which the next call puts back first.
    """
    final = Path(final)
    tmp, old = final.with_name(f".tmp-{final.name}"), final.with_name(f".old-{final.name}")
    if old.exists() and not final.exists():
        os.replace(old, final)
    for stale in (tmp, old):  # left by a process killed mid-write; callers hold the run-dir lock
        if stale.exists():
            shutil.rmtree(stale)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


@contextmanager
def atomic_entries(folder: str | Path, names: Sequence[str]) -> Iterator[Path]:
    """Yield an empty temp folder beside `folder`; on success its entries replace `names` in `folder`, whose
    other files stay; on failure it is removed and `folder` is as it was.

    atomic_dir for a folder the user shares with us. Everything is written before the first rename, so the
    swap is a few renames: the replaced entries go out in the order of `names` and the new ones come in the
    reverse order, so an index listed first (metadata.jsonl) never names files that are not there. A crash
    among the renames leaves .tmp-<name> and .old-<name>; the next call finishes that swap first.
    """
    folder = Path(folder).resolve()  # "." has no name to put beside; a link's target is where the files go
    tmp, old = folder.with_name(f".tmp-{folder.name}"), folder.with_name(f".old-{folder.name}")
    if old.is_dir() and tmp.is_dir() and folder.is_dir():  # a swap had begun, so `tmp` was complete: finish it
        _move_entries(tmp, folder, names)
    for stale in (tmp, old):
        if stale.exists():
            shutil.rmtree(stale)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        unnamed = sorted({e.name for e in tmp.iterdir()} - set(names))
        if unnamed:  # it could replace a file of the user's
            raise ValueError(f"{unnamed} are not among the entries {list(names)} that may be replaced")
        _fsync_tree(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not folder.exists():
        os.replace(tmp, folder)  # nothing to keep: one rename
        return
    old.mkdir()
    for name in names:
        if (folder / name).exists() or (folder / name).is_symlink():
            os.replace(folder / name, old / name)
    _move_entries(tmp, folder, names)
    shutil.rmtree(old)


def _move_entries(source: Path, target: Path, names: Sequence[str]) -> None:
    """Every entry of `source` into `target`, in the reverse order of `names`; then `source` goes."""
    rank = {name: i for i, name in enumerate(names)}
    for entry in sorted(source.iterdir(), key=lambda e: -rank.get(e.name, len(names))):
        remove_path(target / entry.name)  # only after a crashed swap: an older version the new one replaces
        os.replace(entry, target / entry.name)
    source.rmdir()


def remove_path(path: Path) -> bool:
    """Delete a file or a whole folder; False when there was nothing there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    else:
        return False
    return True
