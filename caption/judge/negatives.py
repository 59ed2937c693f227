"""Distractors for R-precision: the wrong captions a prompt must outscore.

What counts as a near miss is the domain's knowledge (gen/domains/: shapes offers one-word hard
negatives, plain offers none); this file only fills the list up from the other prompts of the folder.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from gen.domains import Domain

CLAIM = "claim"  # the one "attribute" of a task prompt: the whole claim
ANY_KIND = "hard negative"  # the kind of every negative of a domain that names no kinds


def _draw(pool: Sequence[str], k: int, rng: np.random.Generator) -> list[str]:
    """Up to k of `pool`, in pool order, drawn without replacement."""
    take = min(k, len(pool))
    return [pool[i] for i in sorted(rng.choice(len(pool), take, replace=False))] if take > 0 else []


def distractors(prompt: str, pool: Sequence[str], k: int, rng: np.random.Generator, domain: Domain) -> list[str]:
    """Up to k wrong captions: every hard negative the domain offers, then other prompts that mean something else."""
    hard = domain.hard_negatives(prompt)
    if len(hard) >= k:
        return _draw(hard, k, rng)
    others = sorted({p for p in pool if not domain.same_caption(p, prompt)} - set(hard))
    return hard + _draw(others, k - len(hard), rng)


def other_label_distractors(prompt: str, label: str, pool: Sequence[tuple[str, str | None]], k: int,
                            rng: np.random.Generator, domain: Domain) -> list[str]:
    """Up to k prompts of other labels from (prompt, label) pairs. A prompt any row of `label` uses is never one,
    so a paraphrase of the image's own class cannot count against it; neither can an unlabelled prompt."""
    own = {p for p, lab in pool if lab == label}
    others = sorted({p for p, lab in pool if lab is not None and lab != label} - own)
    return _draw([p for p in others if not domain.same_caption(p, prompt)], k, rng)


def has_tasks(domain: Domain) -> bool:
    """Whether the domain poses GenEval tasks (scenes does; shapes and plain do not)."""
    return bool(getattr(domain, "tasks", ()))


def negatives_by_kind(domain: Domain, prompt: str) -> list[tuple[str, str]]:
    """(kind of edit, caption) for each hard negative of `prompt`, each caption once and never the prompt: the
    kinds the domain names (`hard_negative_kinds`), else ANY_KIND for every one."""
    named = getattr(domain, "hard_negative_kinds", None)
    pairs = named(prompt) if callable(named) else [(ANY_KIND, text) for text in domain.hard_negatives(prompt)]
    seen, out = {prompt}, []
    for kind, text in pairs:
        if text not in seen:
            seen.add(text)
            out.append((kind, text))
    return out


class AgainstNegatives:
    """A domain as attribute_probs sees it when the whole claim is the one attribute: its values are the prompt and
    its hard negatives, so the softmax at the prompt is the judge's probability that the image shows the claim."""

    attributes = (CLAIM,)

    def __init__(self, domain: Domain) -> None:
        self.domain = domain

    def variants(self, prompt: str) -> dict[str, list[tuple[str, str]]]:
        rivals = [text for _, text in negatives_by_kind(self.domain, prompt)]
        return {CLAIM: [(t, t) for t in (prompt, *rivals)]} if rivals else {}  # none: nothing to compare
