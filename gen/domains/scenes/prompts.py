"""The scenes benchmark's prompt file: GenEval's six tasks over our world, the unseen combinations marked.

`build` draws it from the held-out combinations of seed 0 (the shipped config's data); the committed copy,
geneval_prompts.jsonl beside this module, is what `gen geneval` reads, and a test keeps the two identical.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from gen.domains.scenes.grammar import NUMBERS, PREFIXES, RELATIONS, TASKS, Claim, Group, parse, phrase
from gen.domains.scenes.world import Held, colored_shapes, held_out
from gen.domains.shapes.world import SHAPES

PROMPT_FILE = Path(__file__).with_name("geneval_prompts.jsonl")
# Seen prompts drawn per task beside every unseen one (single object and two objects have none unseen).
SEEN = {"colors": 21, "counting": 30, "position": 36, "color_attr": 40}
UNSEEN_POSITION = 72  # of the many position prompts a held-out relation or pair makes unseen


def _claims(task: str) -> list[Claim]:
    """Every claim of `task` in canonical order."""
    singles = colored_shapes()
    if task == "single_object":
        return [Claim(task, (Group(s),)) for s in SHAPES]
    if task == "two_object":
        return [Claim(task, (Group(a), Group(b))) for a, b in itertools.permutations(SHAPES, 2)]
    if task == "colors":
        return [Claim(task, (Group(s, c),)) for c, s in singles]
    if task == "counting":
        return [Claim(task, (Group(s, c, n),)) for n in range(1, len(NUMBERS) + 1) for c, s in singles]
    pairs = [(a, b) for a, b in itertools.permutations(singles, 2) if a[0] != b[0] and a[1] != b[1]]
    if task == "color_attr":
        return [Claim(task, (Group(a[1], a[0]), Group(b[1], b[0]))) for a, b in pairs]
    return [Claim(task, (Group(a[1], a[0]), Group(b[1], b[0])), r) for a, b in pairs for r in RELATIONS]


def build(held: Held | None = None, seed: int = 0) -> list[dict]:
    """Rows {"prompt", "task", "unseen"}: per task every unseen claim (sampled for position) and a fixed draw of
    seen ones; single object and two objects (which have nothing to hold out) in every phrasing."""
    held = held or held_out(seed)
    rng = np.random.default_rng([seed, 300])
    rows = []
    for task in TASKS:
        claims = _claims(task)
        unseen = [c for c in claims if held.unseen(c)]
        seen = [c for c in claims if not held.unseen(c)]
        if task == "position" and len(unseen) > UNSEEN_POSITION:
            unseen = [unseen[i] for i in sorted(rng.choice(len(unseen), UNSEEN_POSITION, replace=False))]
        if task in SEEN and len(seen) > SEEN[task]:
            seen = [seen[i] for i in sorted(rng.choice(len(seen), SEEN[task], replace=False))]
        if task in ("single_object", "two_object"):
            rows += [{"prompt": phrase(c, p), "task": task, "unseen": False} for c in seen for p in PREFIXES]
            continue
        # Few colour and count combinations are held out: each is asked in every phrasing, for a usable sample.
        says = PREFIXES if task in ("colors", "counting") else ("",)
        rows += [{"prompt": phrase(c, p), "task": task, "unseen": True} for c in unseen for p in says]
        rows += [{"prompt": phrase(c), "task": task, "unseen": False} for c in seen]
    return rows


def write(path: str | Path = PROMPT_FILE, seed: int = 0) -> Path:
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in build(seed=seed)))
    return Path(path)


def load(path: str | Path = PROMPT_FILE) -> list[dict]:
    """The rows of a prompt file; each prompt must parse to the task it is filed under."""
    rows = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").split("\n") if line.strip()]
    for number, row in enumerate(rows, 1):
        claim = parse(row.get("prompt", ""))
        if claim is None or claim.task != row.get("task"):
            raise ValueError(f"{path}:{number}: {row.get('prompt')!r} is not a {row.get('task')} prompt")
    return rows


def eval_prompts(data_dir: str | Path | None = None, seen: int = 28, seed: int = 0) -> list[str]:
    """Every unseen prompt of the benchmark (by DATA_DIR's held-out combinations), then `seen` seen ones."""
    from gen.domains.scenes.world import read_held

    held = read_held(data_dir, seed)
    rows = build(held, seed)
    unseen = [r["prompt"] for r in rows if parse(r["prompt"]) is not None and held.unseen(parse(r["prompt"]))]
    rest = [r["prompt"] for r in rows if r["prompt"] not in unseen]
    picked = [rest[i] for i in sorted(np.random.default_rng(seed).choice(len(rest), min(seen, len(rest)),
                                                                         replace=False))]
    return unseen + picked

