"""How often the strict oracle calls fresh, clean renders right: its false-alarm rate.

A render shows exactly what its caption says, so every "wrong" or "unsure" here is the oracle's own
error. docs/judge.md records the measurement (`python -m gen oracle-renders --count 2000`).
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from gen.domains.shapes.world import ATTRIBUTES, VERDICTS, all_combinations, check_strict, phrasings, render


def renders_verdicts(count: int, size: int = 32, seed: int = 1) -> dict:
    """Share of right / wrong / unsure per attribute and overall on `count` renders of all combinations in turn.

    Each render gets its own generator from (seed, index), as make_dataset's rows do; seed 0 is the
    demo's training set, so the default is fresh images.
    """
    combos = all_combinations()
    tally: Counter = Counter()
    for index in range(count):
        spec = combos[index % len(combos)]
        image = render([spec], size, np.random.default_rng([seed, index]))
        verdict = check_strict(image, phrasings([spec])[0])
        tally.update((a, v) for a, v in verdict.attributes.items())
        tally["all", verdict.overall] += 1
    return {"count": count, "size": size, "seed": seed,
            **{a: {v: tally[a, v] / count for v in VERDICTS} for a in (*ATTRIBUTES, "all")}}
