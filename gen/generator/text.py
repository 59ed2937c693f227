"""Prompt → GPT-2 BPE tokens → GPT2Model hidden states and the mask that hides padding.

The tokenizer itself (training, loading, `tokenize`) is in gen/data/tokenizer.py, shared with the captioner.
"""
from __future__ import annotations

from typing import Sequence

import torch
from transformers import GPT2Config, GPT2Model, PreTrainedModel, PreTrainedTokenizerBase

from gen.core.config import TextConfig
from gen.data.tokenizer import from_pretrained, load_tokenizer, tokenize, train_tokenizer


def build_text_model(cfg: TextConfig, texts: Sequence[str]) -> tuple[PreTrainedTokenizerBase, GPT2Model]:
    """Pretrained tokenizer + GPT2Model when configured, else a trained BPE and a fresh GPT2Model."""
    if cfg.pretrained:
        return load_tokenizer(cfg.pretrained), from_pretrained(GPT2Model, cfg.pretrained)
    tok = train_tokenizer(texts, cfg.vocab_size)
    config = GPT2Config(vocab_size=len(tok), n_positions=cfg.max_length, n_embd=cfg.n_embd,
                        n_layer=cfg.n_layer, n_head=cfg.n_head, bos_token_id=tok.bos_token_id,
                        eos_token_id=tok.eos_token_id)
    return tok, GPT2Model(config)


def is_frozen(cfg: TextConfig) -> bool:
    return cfg.freeze if cfg.freeze is not None else bool(cfg.pretrained)


def max_length_of(text_encoder: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """The prompt length used in training, stored as the tokenizer's model_max_length."""
    return min(text_encoder.config.n_positions, tokenizer.model_max_length)


def encode(text_encoder: GPT2Model, input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hidden states (B, T, D) and the mask (B, T) that cross-attention uses to ignore padding."""
    states = text_encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state  # (B, T, D)
    return states, mask


class StateCache:
    """GPT-2 states of a frozen text encoder, computed once per distinct prompt (the empty one included).

    A frozen encoder in eval mode maps a prompt to the same states every time, and with causal
    attention and right padding a prompt's real-token states do not depend on its batch. So a
    training step needs the encoder only for prompts it has not seen; captions repeat every epoch.
    Entries are trimmed to the prompt's own length; `limit` bounds the memory (oldest out first).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int, limit: int = 100_000) -> None:
        self.tokenizer, self.max_length, self.limit = tokenizer, max_length, limit
        self.states: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def __call__(self, text_encoder: GPT2Model, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """States (B, T, D), zero at padding, and the mask (B, T), as `encode` gives them."""
        device = next(text_encoder.parameters()).device
        missing = list(dict.fromkeys(t for t in texts if t not in self.states))
        if missing:
            ids, mask = tokenize(self.tokenizer, missing, self.max_length)
            states, _ = encode(text_encoder, ids.to(device), mask.to(device))  # (M, T, D)
            for text, row, n in zip(missing, states, mask.sum(dim=1).tolist()):
                self.states[text] = row[:n].clone()
            while len(self.states) > self.limit:
                self.states.pop(next(iter(self.states)))
        rows = [self.states[t] for t in texts]
        width = max(len(r) for r in rows)
        out = rows[0].new_zeros(len(rows), width, rows[0].shape[-1])  # (B, T, D)
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=out.device)  # (B, T)
        for i, r in enumerate(rows):
            out[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return out, mask
