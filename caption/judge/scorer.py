"""The captioner as a scorer for best-of-N sampling (`gen sample --rerank CAPTIONER`; protocol in gen/generator/rerank.py).

Two scores, chosen with `kind`:
- "prob": the judge's probability that every attribute is right (caption/judge/attribute_probs.py), a softmax
  over the prompt and its one-word variants in the images' domain (gen/domains/; in a domain of task prompts, the
  prompt against its hard negatives: caption/judge/negatives.py), averaged over warped views of
  the image where the captioner was trained with warps (caption/judge/views.py). A prompt with none (not
  a shapes caption, or a plain domain) is instead set against the run's other prompts, `rivals`: a softmax
  of log p(prompt | image) over it and them, the judge's zero-shot reading as in caption/judge/labels.py (for a
  run with one prompt per class, p(asked class | image)). With no rivals either it falls back to
  "debiased": best-of-N compares only candidates of one prompt, so each prompt may use its own scale.
- "debiased": log p(prompt | image) − α·log p(prompt) (caption/judge/judge.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from caption.judge.attribute_probs import attribute_probs
from caption.judge.judge import Judge
from caption.judge.labels import class_logp
from caption.judge.negatives import AgainstNegatives, has_tasks
from gen import domains

KINDS = ("prob", "debiased")


class JudgeScorer:
    """Scores images against their prompts with a trained captioner; higher means the prompt is better borne out."""

    def __init__(self, model_dir: str | Path, kind: str = "prob", alpha: float | None = None,
                 device: str | None = None, domain: str | None = None, rivals: Sequence[str] = (),
                 views: int | None = None) -> None:
        """`domain`: the images' (`gen sample` passes its generator's); None: the one the captioner was trained in.
        `rivals`: the prompts a prompt without variants competes with (`gen sample` passes its prompts).
        `views`: warped copies the attribute probabilities average over; None: the captioner's own setting."""
        if kind not in KINDS:
            raise ValueError(f"judge score must be one of {', '.join(KINDS)}, not {kind!r}")
        world = domains.get(domain if domain is not None else domains.of_model(model_dir))
        # In a world of task prompts (scenes) the whole claim is scored against its hard negatives, as
        # `caption geneval` measures the judge; elsewhere each stated attribute against its variants.
        self.domain = AgainstNegatives(world) if has_tasks(world) else world
        self.judge = Judge(model_dir, alpha, device, views=views)
        self.kind = kind
        self.rivals = list(dict.fromkeys(rivals))  # unique, in order
        self.name = f"judge:{kind}"

    def __call__(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[float]:
        if not images:
            return []
        pixels = torch.stack([self.judge.pil_to_pixels(im) for im in images])  # (N, 3, S, S)
        tokens = self.judge.encode(pixels)  # (N, T_img, D)
        if self.kind == "debiased":
            return self.judge.debiased(tokens, list(prompts)).tolist()
        # Each prompt is scored one way only: a prompt without variants that has rivals never pays for the
        # attribute softmax's debiased score, which its rivals' softmax would then replace.
        rivals = set(self.rivals)
        contrast = [i for i, p in enumerate(prompts) if not self.domain.variants(p) and rivals - {p}]
        rest = sorted(set(range(len(prompts))) - set(contrast))
        scores = np.empty(len(prompts))
        if contrast:
            scores[contrast] = self.among_rivals(tokens[contrast], [prompts[i] for i in contrast])
        if rest:
            views = self.judge.encode_views(pixels[rest], tokens[rest])  # warped views only where they count
            found = attribute_probs(self.judge, views, [prompts[i] for i in rest], self.domain)
            scores[rest] = np.where(np.isnan(found.all), found.debiased, found.all)
        return scores.tolist()

    def describe(self, images: Sequence[Image.Image]) -> list[str]:
        """The captioner's greedy caption of each image: what the judge reads in it (`gen serve` shows it beside
        the score)."""
        return self.judge.describe(images)

    def among_rivals(self, tokens: torch.Tensor, prompts: Sequence[str]) -> np.ndarray:
        """Per image (tokens (N, T_img, D)): softmax of log p(text | image) over its prompt and the rivals, at its
        prompt."""
        texts = list(dict.fromkeys([*self.rivals, *prompts]))
        logp = class_logp(self.judge, tokens, texts).numpy()  # (N, len(texts)), as the zero-shot reading ranks
        rival = np.isin(texts, self.rivals)
        out = np.empty(len(prompts))
        for i, prompt in enumerate(prompts):
            own = texts.index(prompt)
            row = logp[i, rival | (np.arange(len(texts)) == own)]
            out[i] = 1.0 / np.exp(row - logp[i, own]).sum()
        return out
