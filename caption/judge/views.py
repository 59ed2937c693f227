"""Warped views: the judge's attribute probabilities averaged over an image and elastically warped copies of it.

A captioner trained on warped renders (`augment.warp`) has learnt that a warp can turn one shape's outline into
something that looks like another. On a single lumpy generated object it still often answers with near certainty; on
several warps of that object it answers differently, and the average of its answers is what it knows. That is
test-time augmentation over the captioner's own training distribution (Ashukha et al. 2020, "Pitfalls of in-domain
uncertainty estimation", found it the cheapest calibration gain); docs/judge.md, "Warped views at scoring time", has
the measurements. Only the attribute probabilities use views: the likelihood, the debiased score and R-precision
score the image as it is.

A view's warp is drawn from a seed made of the view's index and the image's pixels, so an image's score never
depends on which batch, or which other candidates, it was scored with, while different images get independent
warps. (One field shared by every image would bend every image the same 8 ways, which measurably lowers shape
AUROC: see docs/judge.md.)
"""
from __future__ import annotations

import dataclasses
import zlib
from pathlib import Path

import torch

from caption.augment import warp
from gen.core.config import read_saved
from gen.core.errors import UserError

# 8 views: 4 gave about half of 8's calibration gain (an offline check of the shipped judge); each costs a pass.
DEFAULT_VIEWS = 8
VIEW_SEED = 20_261_129  # any fixed number; changing it changes every views-averaged probability a little


@dataclasses.dataclass
class JudgeConfig:
    views: int = DEFAULT_VIEWS  # warped copies besides the image; used only if augment.warp > 0; 0: the image alone
    # α of the debiased score log p(t|i) - α log p(t), chosen on held-out shapes renders with `caption meta-eval`
    # (docs/judge.md): the largest α whose worst per-attribute AUROC is within 0.005 of the best.
    alpha: float = 0.25


@dataclasses.dataclass(frozen=True)
class Views:
    """How many warped copies the judge averages over, and how far (pixels) it warps: the captioner's own
    training warp, `augment.warp`, since a warp it never saw would tell it nothing."""

    count: int = 0
    warp: float = 0.0

    @property
    def active(self) -> bool:
        return self.count > 0 and self.warp > 0


def check_views(count: int | None) -> None:
    """A view count is a whole number ≥ 0 (None: the captioner's own); what `--views` may be."""
    if count is not None and count < 0:
        raise UserError(f"--views must be ≥ 0, not {count}")


def views_of_model(model_dir: str | Path, count: int | None = None) -> Views:
    """The views a captioner folder's roundtrip_config.yaml asks for (`judge.views`, `augment.warp`); `count`
    overrides the number. A captioner trained without warps gets none."""
    saved = read_saved(model_dir)
    strength = float((saved.get("augment") or {}).get("warp") or 0.0)
    if count is None:
        count = int((saved.get("judge") or {}).get("views", DEFAULT_VIEWS))
    check_views(count)
    return Views(count if strength > 0 else 0, strength)


def alpha_of_model(model_dir: str | Path) -> float:
    """The α a captioner folder's roundtrip_config.yaml keeps (`judge.alpha`); older folders get the default."""
    return float((read_saved(model_dir).get("judge") or {}).get("alpha", JudgeConfig.alpha))


def warped_view(pixels: torch.Tensor, index: int, strength: float) -> torch.Tensor:
    """(B, C, H, W) in [-1, 1] → view `index` of each image: an elastic warp of strength up to `strength`, drawn
    from a seed made of the view's index and the image's own pixels. So an image gets the same view in any batch,
    and different images get independent warps, as in training. Torch's global generator is left as it was."""
    out = torch.empty_like(pixels)
    with torch.random.fork_rng(devices=[]):
        for b, image in enumerate(pixels):
            torch.manual_seed(VIEW_SEED + index + zlib.crc32(image.detach().cpu().numpy().tobytes()))
            amount = strength * (1 - float(torch.rand(1)))  # (0, strength], as training draws it
            out[b] = warp(image, amount)
    return out.clamp(-1, 1)
