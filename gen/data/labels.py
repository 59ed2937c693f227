"""Class labels of labelled data sets: a row's label, or the label its caption stands for.

`gen evaluate --real` and `caption score`'s label-aware path both map samples to the class they asked for.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from gen.data.records import Record, label_of


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def row_name(rec: Record, folder: str | Path) -> str:
    """The image as its row names it: the path relative to the data-set folder (rows hold resolved paths)."""
    return rec.path.relative_to(Path(folder).resolve()).as_posix()


def caption_labels(records: Sequence[Record]) -> dict[str, str]:
    """Every caption phrasing of the real set → its label; a phrasing used by two labels maps to neither."""
    table: dict[str, str | None] = {}
    for rec in records:
        label = label_of(rec)
        for text in rec.texts if label is not None else []:
            key = normalise(text)
            table[key] = label if table.get(key, label) == label else None
    return {k: v for k, v in table.items() if v is not None}


def labelled(records: Sequence[Record], split: str, classes: Sequence[str] | None = None) -> list[Record]:
    """Rows of `split` that carry a label (of `classes`, when given)."""
    return [r for r in records if r.meta.get("split") == split and label_of(r) is not None
            and (classes is None or label_of(r) in classes)]


def sample_labels(samples: Sequence[Record], table: dict[str, str], classes: Sequence[str]) -> list[str | None]:
    """The class each sample was asked for: its row's label, else its prompt's; None when neither is known."""
    found = []
    for rec in samples:
        label = label_of(rec)
        found.append(label if label in classes else table.get(normalise(rec.texts[0])))
    return found
