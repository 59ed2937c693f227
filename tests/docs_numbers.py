"""Numbers in the README and docs that are read from a committed JSON, checked against it.

A quoted figure carries its source in an HTML comment right after it, invisible on the rendered page:

    all three right in 1.000<!--samples/demo/summary.json:demo.oracle.all--> of the images

The key is a dot path into the JSON (list items by index). The figure must equal the JSON value rounded to the
figure's own number of decimals; thousands separators are allowed ("1,994"). So a re-run that changes a committed
JSON makes the docs that quote it fail here until they are updated, and a typo in a quoted figure fails at once.
Figures without a comment must name the command that made them (docs/README convention), which no check can read.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

QUOTE = re.compile(r"(-?[0-9][0-9,]*(?:\.[0-9]+)?)<!--\s*([^:>\s]+\.json):([^\s>]+?)\s*-->")


@dataclass(frozen=True)
class Mismatch:
    doc: str
    line: int
    quoted: str
    source: str
    key: str
    problem: str

    def __str__(self) -> str:
        return f"{self.doc}:{self.line}: {self.quoted} from {self.source}:{self.key}: {self.problem}"


def lookup(data: Any, key: str) -> Any:
    """DATA at a dot path ("demo.oracle.all", "headline.0.value"); KeyError naming the first missing part.

    A dict key that holds dots itself ("0.25" in "by_alpha.0.25.spearman") is matched whole, the longest first."""
    node, parts, i = data, key.split("."), 0
    while i < len(parts):
        if isinstance(node, list) and parts[i].isdigit() and int(parts[i]) < len(node):
            node, i = node[int(parts[i])], i + 1
            continue
        joined = next((j for j in range(len(parts), i, -1) if ".".join(parts[i:j]) in node), None) \
            if isinstance(node, dict) else None
        if joined is None:
            raise KeyError(parts[i])
        node, i = node[".".join(parts[i:joined])], joined
    return node


def formatted(value: float, like: str) -> str:
    """VALUE written the way the quoted figure LIKE is: the same decimals, commas when it has them."""
    decimals = len(like.split(".")[1]) if "." in like else 0
    return f"{value:,.{decimals}f}" if "," in like else f"{value:.{decimals}f}"


def check_text(text: str, doc: str, root: Path) -> tuple[int, list[Mismatch]]:
    """How many sourced figures DOC's TEXT quotes, and those that do not match their JSON (paths from ROOT)."""
    cache: dict[str, Any] = {}
    bad: list[Mismatch] = []
    count = 0
    for match in QUOTE.finditer(text):
        count += 1
        quoted, source, key = match.groups()
        line = text.count("\n", 0, match.start()) + 1

        def fail(problem: str) -> None:
            bad.append(Mismatch(doc, line, quoted, source, key, problem))  # noqa: B023 - used at once

        path = (root / source).resolve()
        if root.resolve() not in path.parents or not path.is_file():
            fail("no such committed JSON in the repository")
            continue
        if source not in cache:
            cache[source] = json.loads(path.read_text(encoding="utf-8"))
        try:
            value = lookup(cache[source], key)
        except KeyError as err:
            fail(f"the JSON has no {err.args[0]!r}")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(f"the JSON value is {value!r}, not a number")
        elif formatted(value, quoted) != quoted:
            fail(f"the JSON says {value!r}, which reads {formatted(value, quoted)}")
    return count, bad


def check_docs(root: Path) -> tuple[int, list[Mismatch]]:
    """Every sourced figure in ROOT's README.md and docs/*.md: (how many, the mismatches)."""
    total, bad = 0, []
    for doc in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        count, wrong = check_text(doc.read_text(encoding="utf-8"), str(doc.relative_to(root)), root)
        total += count
        bad += wrong
    return total, bad
