"""The judge's probability that each attribute of a prompt is right, and its own reading of the image.

For one attribute, the prompt competes only with its hard negatives for that attribute (the same
prompt with that one word changed; the domain's `variants`, gen/domains/). A softmax of the debiased scores over those
captions is the judge's probability that the image shows the prompt's value rather than another, with
everything else the prompt says held fixed; its argmax is the judge's reading of that attribute. The
product over attributes is its probability that the whole prompt is right, treating them as
independent. Prompts with no variants (not shapes captions, or a domain with no attributes) get NaN:
there is nothing to compare. Given warped views of the images as well (caption/judge/views.py), each softmax is
averaged over the image and its views.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from caption.judge.judge import Judge
from gen.domains import Domain


@dataclass
class AttributeProbs:
    """Per image: the prompt's debiased score, and per attribute the judge's probability and reading."""

    debiased: np.ndarray  # (N,) the prompt's debiased score
    probs: dict[str, np.ndarray]  # attribute -> (N,) p(prompt's value | image), NaN where not stated
    reading: dict[str, list[str | None]]  # attribute -> the value the judge scores highest
    all: np.ndarray  # (N,) product of the stated attributes' probabilities, NaN when none is stated


def attribute_probs(judge: Judge, tokens: torch.Tensor | Sequence[torch.Tensor], prompts: Sequence[str],
                    domain: Domain, temperature: float = 1.0) -> AttributeProbs:
    """Score each image against its prompt and every one-word variant the domain makes. `tokens`: the images'
    tokens (N, T_img, D), or a list of them, the images first and then warped views (`Judge.encode_views`);
    each attribute's softmax is then averaged over the views, and the reading is the average's argmax. The
    debiased score is always that of the images themselves."""
    views = [tokens] if isinstance(tokens, torch.Tensor) else list(tokens)
    attributes = domain.attributes
    plans = [domain.variants(p) for p in prompts]
    owner, texts = [], []
    for i, (prompt, plan) in enumerate(zip(prompts, plans)):
        unique = [prompt] + sorted({text for options in plan.values() for _, text in options} - {prompt})
        owner += [i] * len(unique)
        texts += unique
    scores = [dict(zip(zip(owner, texts), judge.debiased(view[owner], texts).numpy())) if texts else {}
              for view in views]  # per view: (image, text) -> debiased score
    n = len(prompts)
    probs = {a: np.full(n, np.nan) for a in attributes}
    reading: dict[str, list[str | None]] = {a: [None] * n for a in attributes}
    for i, plan in enumerate(plans):
        for attribute, options in plan.items():
            logits = np.array([[view[i, text] for _, text in options] for view in scores]) / temperature  # (V, O)
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p = (p / p.sum(axis=1, keepdims=True)).mean(axis=0)  # (O,)
            probs[attribute][i] = p[0]
            reading[attribute][i] = options[int(np.argmax(p))][0]
    stacked = np.stack([probs[a] for a in attributes]) if attributes else np.full((1, n), np.nan)  # (A, N)
    stated = ~np.isnan(stacked)
    joint = np.where(stated.any(axis=0), np.prod(np.where(stated, stacked, 1.0), axis=0), np.nan)
    return AttributeProbs(np.array([scores[0][i, p] for i, p in enumerate(prompts)]), probs, reading, joint)
