"""How a samples folder's images were chosen, read from its metadata.jsonl rows.

`gen sample --rerank SCORER --candidates N` keeps one of N candidates per image and writes `rerank` (the
scorer's name), `kept` and `candidates` into that image's row; a plain `gen sample` row has none of them.
Best-of-N changes what every score of the folder means (a judge's pick is read right far more often than a plain
sample: docs/benchmarks.md, "Real data"), so `gen evaluate` records the selection beside the scores and shows it
with them.
"""
from __future__ import annotations

import collections
from typing import Any, Mapping, Sequence

from gen.data.records import Record


def row_selection(meta: Mapping[str, Any]) -> dict[str, Any]:
    """One row's selection: {"kind": "best_of_n", "n": N, "scorer": NAME} when it was reranked, else
    {"kind": "plain"}. N is the number of candidates the row lists (None if it lists none)."""
    if "rerank" not in meta:
        return {"kind": "plain"}
    candidates = meta.get("candidates")
    n = len(candidates) if isinstance(candidates, list) else None
    return {"kind": "best_of_n", "n": n, "scorer": str(meta["rerank"])}


def folder_selection(records: Sequence[Record]) -> dict[str, Any]:
    """The selection of every image in RECORDS: the one all rows share, else {"kind": "mixed", "groups": [...]}
    with each distinct selection and how many images it covers (largest first). No rows: plain."""
    counts = collections.Counter(tuple(sorted(row_selection(r.meta).items())) for r in records)
    if len(counts) <= 1:
        return dict(next(iter(counts))) if counts else {"kind": "plain"}
    return {"kind": "mixed", "groups": [dict(key) | {"images": k} for key, k in counts.most_common()]}


def describe(selection: Mapping[str, Any]) -> str:
    """SELECTION in words, for the evaluation page and the command's summary line."""
    if selection["kind"] == "plain":
        return "plain samples: one sample per image, nothing chosen (no --rerank)"
    if selection["kind"] == "best_of_n":
        n = selection["n"] if selection["n"] is not None else "N"
        if selection["scorer"] == "random":
            return f"one of {n} candidates per image kept at random (--rerank random, the baseline)"
        return f"best of {n} candidates per image by {selection['scorer']} (gen sample --rerank)"
    return "mixed: " + "; ".join(f"{g['images']} images {describe(g)}" for g in selection["groups"])
