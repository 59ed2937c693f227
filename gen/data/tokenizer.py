"""Captions → GPT-2 BPE token ids: train, load and save the tokenizer both models read their text with.

It lives with the data, not with the generator, because the captioner reads the same tokens: caption
imports it from here and never needs the generator's text encoder. Every prompt starts with GPT-2's
<|endoftext|> token, so the empty prompt (the unconditional input of classifier-free guidance) is one
token long rather than empty.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable, Sequence, TypeVar

import torch
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2TokenizerFast, PreTrainedModel, PreTrainedTokenizerBase

from gen.core.terminal import excerpt

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


def adopt_tokenizer(source: Path, saved: Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved at `source`, copied to `saved` when that is another folder.

    A resumed run must read text with the vocabulary its checkpoint was trained with, and keep a copy in
    its own run folder so that the folder samples and resumes on its own.
    """
    tokenizer = load_tokenizer(str(source))
    if source.resolve() != saved.resolve():
        tokenizer.save_pretrained(saved)
    return tokenizer


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
                log.warning("prompt longer than %d tokens, truncated: %s", max_length, excerpt(text))
            ids = ids[:max_length]
        rows.append(ids)
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, ids in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        mask[i, : len(ids)] = 1
    return input_ids, mask
