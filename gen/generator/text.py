"""Prompt → GPT-2 BPE tokens → GPT2Model hidden states and the mask that hides padding.

Every prompt starts with GPT-2's <|endoftext|> token, so the empty prompt (the unconditional
input of classifier-free guidance) is one token long rather than empty.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Sequence, TypeVar

import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Config, GPT2Model, GPT2TokenizerFast, PreTrainedModel, PreTrainedTokenizerBase

from gen.core.config import TextConfig

log = logging.getLogger(__name__)
M = TypeVar("M", bound=PreTrainedModel)
SPECIAL = "<|endoftext|>"


class PretrainedNotFound(FileNotFoundError):
    """Pretrained weights asked for but not found (offline, or a wrong path)."""


def from_pretrained(cls: type[M] | type[PreTrainedTokenizerBase], name: str, **kwargs) -> M:
    """`cls.from_pretrained(name)` that fails with one clear message naming what was looked for."""
    try:
        return cls.from_pretrained(name, **kwargs)
    except (OSError, ValueError) as err:
        where = "a local folder" if Path(name).exists() else "the Hugging Face hub"
        offline = " (offline: HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise PretrainedNotFound(
            f"could not load {cls.__name__} from {name!r}, looked up in {where}{offline}. "
            f"Pass a local folder that holds it (save_pretrained output). Cause: {err}"
        ) from err


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512) -> GPT2TokenizerFast:
    """A byte-level BPE (GPT-2's scheme) trained on the captions, wrapped as GPT2TokenizerFast."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=[SPECIAL], show_progress=False)
    tok = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=SPECIAL, eos_token=SPECIAL, unk_token=SPECIAL)
    tok.pad_token = SPECIAL
    return tok


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    tok = from_pretrained(AutoTokenizer, name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token  # GPT-2 ships without one; padding is masked anyway
    return tok


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


_warned: set[int] = set()


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int,
             add_eos: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both (B, T): <|endoftext|> + tokens [+ <|endoftext|>], right-padded.

    Prompts longer than `max_length` are cut with a warning rather than refused.
    """
    bos = eos = tokenizer.eos_token_id
    rows = []
    for text, ids in zip(texts, tokenizer(list(texts), add_special_tokens=False)["input_ids"]):
        ids = [bos] + list(ids) + ([eos] if add_eos else [])
        if len(ids) > max_length:
            if hash(text) not in _warned:
                _warned.add(hash(text))
                log.warning("prompt longer than %d tokens, truncated: %r", max_length, text)
            ids = ids[:max_length]
        rows.append(ids)
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, ids in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        mask[i, : len(ids)] = 1
    return input_ids, mask


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
