"""The captioner as a scorer for best-of-N sampling (`gen sample --rerank CAPTIONER`; protocol in gen/rerank.py).

Two scores, chosen with `kind`:
- "prob": the judge's probability that every attribute is right (caption/attribute_probs.py), a softmax
  over the prompt and its one-word variants in the images' domain (gen/domains.py). Prompts with none (not
  shapes captions, or a plain domain) fall back to "debiased": best-of-N compares only candidates of one
  prompt, so each prompt may use its own scale.
- "debiased": log p(prompt | image) − α·log p(prompt) (caption/judge.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from gen import domains

from .attribute_probs import attribute_probs
from .judge import Judge

KINDS = ("prob", "debiased")


class JudgeScorer:
    """Scores images against their prompts with a trained captioner; higher means the prompt is better borne out."""

    def __init__(self, model_dir: str | Path, kind: str = "prob", alpha: float | None = None,
                 device: str | None = None, domain: str | None = None) -> None:
        """`domain`: the images' (`gen sample` passes its generator's); None: the one the captioner was trained in."""
        if kind not in KINDS:
            raise ValueError(f"judge score must be one of {', '.join(KINDS)}, not {kind!r}")
        self.domain = domains.get(domain if domain is not None else domains.of_model(model_dir))
        self.judge = Judge(model_dir, alpha, device)
        self.kind = kind
        self.name = f"judge:{kind}"

    def __call__(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[float]:
        if not images:
            return []
        tokens = self.judge.encode(torch.stack([self.judge.pil_to_pixels(im) for im in images]))  # (N, T_img, D)
        if self.kind == "debiased":
            return self.judge.debiased(tokens, list(prompts)).tolist()
        found = attribute_probs(self.judge, tokens, prompts, self.domain)
        return np.where(np.isnan(found.all), found.debiased, found.all).tolist()
