"""The captioner as a judge: log p(text | image), the text prior from null images, and debiased scores.

Debiasing follows VisualGPTScore (Lin et al. 2023): log p(t|i) − α·log p(t), where p(t) is estimated
by averaging p(t | null image) over a bank of noise and blank images, so captions that are merely
likely a priori (short, common phrasings) stop winning by default.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator, Sequence

import torch
from PIL import Image

from caption.judge.views import alpha_of_model, views_of_model, warped_view
from caption.model import Captioner
from gen.data import image_to_tensor, load_image
from gen.data.tokenizer import tokenize

def null_images(size: int, count: int = 16, seed: int = 0) -> torch.Tensor:
    """Half Gaussian noise, half flat grey levels: images that say nothing. (count, 3, size, size) in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(count - count // 2, 3, size, size, generator=gen).clamp(-1, 1)
    levels = torch.linspace(-1, 1, count // 2).view(-1, 1, 1, 1).expand(-1, 3, size, size)
    return torch.cat([noise, levels])


class Judge:
    """Scores (image, text) pairs with a trained captioner."""

    def __init__(self, model_dir: str | Path, alpha: float | None = None, device: str | None = None,
                 null_count: int = 16, batch_size: int = 256, views: int | None = None) -> None:
        """`views`: warped copies the attribute probabilities average over (caption/judge/views.py); None: the
        captioner's own `judge.views`, none if it was trained without warps."""
        self.views = views_of_model(model_dir, views)  # first: a bad count is refused before the model loads
        self.model, self.tokenizer = Captioner.from_pretrained(model_dir)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        self.alpha = alpha_of_model(model_dir) if alpha is None else alpha  # the captioner's saved judge.alpha
        self.size = self.model.cfg.encoder.image_size
        self.batch_size = batch_size
        self.set_prior_bank(null_images(self.size, null_count))

    @torch.no_grad()
    def set_prior_bank(self, pixels: torch.Tensor) -> None:
        """Images over which p(t) is averaged: null images by default, or real ones for the marginal p(t)."""
        self.bank_tokens = self.encode(pixels)  # (M, N, D)
        self._prior: dict[str, float] = {}

    def load(self, path: Path) -> torch.Tensor:
        """An image file as the captioner sees it, (3, S, S) in [-1, 1]."""
        return load_image(path, self.size).float() / 127.5 - 1.0

    def pil_to_pixels(self, image: Image.Image) -> torch.Tensor:
        """The same preprocessing as training (gen.data), so the judge sees what the captioner learned from."""
        return image_to_tensor(image, self.size).float() / 127.5 - 1.0

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Image tokens (B, N, D), computed once and reused for every text scored against the image."""
        return torch.cat([self.model.encoder(pixels[i:i + self.batch_size].to(self.device))
                          for i in range(0, len(pixels), self.batch_size)])

    def encode_warped(self, pixels: torch.Tensor) -> list[torch.Tensor]:
        """Image tokens (B, N, D) of each warped view of the images (caption/judge/views.py); [] when the judge uses none."""
        return [self.encode(warped_view(pixels, k, self.views.warp))
                for k in range(self.views.count if self.views.active else 0)]

    def encode_views(self, pixels: torch.Tensor, tokens: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Image tokens of the images themselves (`tokens` when the caller has them) and then of each warped
        view: what `attribute_probs` averages over."""
        return [self.encode(pixels) if tokens is None else tokens, *self.encode_warped(pixels)]

    @torch.no_grad()
    def _batches(self, image_tokens: torch.Tensor, texts: Sequence[str]) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(input_ids, mask, per-token log-probs (B, T-1)) for each batch of (image_tokens[k], texts[k]) pairs."""
        for s in range(0, len(texts), self.batch_size):
            chunk = list(texts[s:s + self.batch_size])
            ids, mask = tokenize(self.tokenizer, chunk, self.model.max_length, add_eos=True)
            lp = self.model.token_logprobs(None, ids.to(self.device), mask.to(self.device), image_tokens[s:s + len(chunk)])
            yield ids, mask, lp.cpu()

    def token_logprobs(self, image_tokens: torch.Tensor, texts: Sequence[str]) -> list[list[tuple[str, float]]]:
        """Per-token (text piece, log p) for each (image_tokens[k], texts[k]) pair, end-of-text included."""
        rows: list[list[tuple[str, float]]] = []
        for ids, mask, lp in self._batches(image_tokens, texts):
            for i in range(len(ids)):
                n = int(mask[i].sum()) - 1
                pieces = [self.tokenizer.decode([t]) for t in ids[i, 1:n + 1].tolist()]
                rows.append(list(zip(pieces, lp[i, :n].tolist())))
        return rows

    def logp(self, image_tokens: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """log p(text_k | image_k) summed over tokens: (K,)."""
        sums = [lp.sum(-1) for _, _, lp in self._batches(image_tokens, texts)]
        return torch.cat(sums) if sums else torch.empty(0)

    def prior(self, texts: Sequence[str]) -> torch.Tensor:
        """log p(t) ≈ log mean_j p(t | null_j), cached per text: (K,)."""
        todo = sorted({t for t in texts if t not in self._prior})
        m = len(self.bank_tokens)
        for s in range(0, len(todo), max(1, self.batch_size // m)):
            chunk = todo[s:s + max(1, self.batch_size // m)]
            reps = [t for t in chunk for _ in range(m)]
            lp = self.logp(self.bank_tokens.repeat(len(chunk), 1, 1), reps).view(len(chunk), m)
            for t, v in zip(chunk, (torch.logsumexp(lp, dim=1) - math.log(m)).tolist()):
                self._prior[t] = v
        return torch.tensor([self._prior[t] for t in texts])

    def debiased(self, image_tokens: torch.Tensor, texts: Sequence[str], alpha: float | None = None) -> torch.Tensor:
        """log p(t|i) − α·log p(t) for each (image_tokens[k], texts[k]): (K,)."""
        alpha = self.alpha if alpha is None else alpha
        return self.logp(image_tokens, texts) - alpha * self.prior(texts)

    def describe(self, images: Sequence[Image.Image], num_beams: int = 1) -> list[str]:
        """The captioner's caption of each PIL image (greedy, or beam search with `num_beams`)."""
        if not images:
            return []
        return self.caption(torch.stack([self.pil_to_pixels(im) for im in images]), num_beams=num_beams)

    def caption(self, pixels: torch.Tensor, num_beams: int = 1, top_p: float | None = None, seed: int = 0) -> list[str]:
        out: list[str] = []
        for s in range(0, len(pixels), self.batch_size):
            out += self.model.generate(pixels[s:s + self.batch_size].to(self.device), self.tokenizer,
                                       num_beams=num_beams, top_p=top_p, seed=seed)
        return out
