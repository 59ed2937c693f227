"""How often the strict oracle calls fresh, clean renders right: its false-alarm rate.

The counting is generic (gen/evaluate/oracle.py: renders_verdicts over any domain that renders); this name
stays for callers that ask the shapes world directly.
"""
from __future__ import annotations

from typing import Any

from gen.domains.shapes import Shapes


def renders_verdicts(count: int, size: int = 32, seed: int = 1) -> dict[str, Any]:
    """Share of right / wrong / unsure per attribute and overall on `count` shapes renders."""
    from gen.evaluate.oracle import renders_verdicts as generic  # gen.evaluate sits above the domains

    return generic(Shapes(), count, size, seed)
