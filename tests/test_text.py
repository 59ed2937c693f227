"""gen.data.tokenizer and gen.generator.text: trained BPE, tokenize (BOS, padding, truncation), pretrained
GPT-2 from a local folder."""
from __future__ import annotations

import logging

import pytest
import torch
from conftest import MAX_LENGTH, TEXT_DIM, shapes_texts, tiny_gpt2
from transformers import AutoTokenizer, GPT2Config, GPT2Model, GPT2TokenizerFast

from gen.core.config import TextConfig
from gen.data.tokenizer import SPECIAL, PretrainedNotFound, from_pretrained, load_tokenizer, tokenize, train_tokenizer
from gen.generator.text import build_text_model, encode, is_frozen, max_length_of

CAPTIONS = ["a red circle on the left", "there is an orange triangle in the center of the image",
            "blue square at the top"]


def test_trained_tokenizer_is_gpt2_and_round_trips(tokenizer):
    assert isinstance(tokenizer, GPT2TokenizerFast)
    assert tokenizer.eos_token == tokenizer.bos_token == tokenizer.pad_token == SPECIAL
    assert len(tokenizer) <= 300
    for text in CAPTIONS + ["an unseen word: zebra!"]:  # byte-level: nothing is out of vocabulary
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.eos_token_id not in ids
        assert tokenizer.decode(ids) == text
    # Trained on the grammar, its words are single tokens.
    assert len(tokenizer(" circle", add_special_tokens=False)["input_ids"]) == 1


def test_train_tokenizer_is_deterministic(tokenizer):
    again = train_tokenizer(shapes_texts(), vocab_size=300)
    assert again.get_vocab() == tokenizer.get_vocab()


def test_tokenizer_save_and_load_with_auto_tokenizer(tokenizer, tmp_path):
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.get_vocab() == tokenizer.get_vocab()
    for text in CAPTIONS:
        assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.eos_token_id == tokenizer.eos_token_id
    via_helper = load_tokenizer(str(tmp_path))
    assert via_helper.pad_token_id == tokenizer.eos_token_id
    assert tokenize(via_helper, CAPTIONS, 24)[0].equal(tokenize(tokenizer, CAPTIONS, 24)[0])


def test_tokenize_prepends_eos_and_pads_right(tokenizer):
    texts = ["a red circle on the left", "red", ""]
    ids, mask = tokenize(tokenizer, texts, max_length=MAX_LENGTH)
    eos = tokenizer.eos_token_id
    lengths = [1 + len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    assert ids.shape == mask.shape == (3, max(lengths))
    assert ids.dtype == mask.dtype == torch.long
    assert (ids[:, 0] == eos).all()
    assert mask.sum(1).tolist() == lengths
    for row, n in enumerate(lengths):
        assert mask[row, :n].eq(1).all() and mask[row, n:].eq(0).all()
        assert ids[row, n:].eq(tokenizer.pad_token_id).all()
        assert tokenizer.decode(ids[row, 1:n]) == texts[row]
    assert lengths[2] == 1  # the empty prompt (CFG's null condition) is one token, not zero


def test_tokenize_add_eos(tokenizer):
    ids, mask = tokenize(tokenizer, ["a red circle"], max_length=MAX_LENGTH, add_eos=True)
    n = int(mask.sum())
    assert ids[0, 0] == ids[0, n - 1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids[0, 1:n - 1]) == "a red circle"


def test_tokenize_truncates_long_prompts_with_a_warning(tokenizer, caplog):
    text = "a red circle and a blue square and a green triangle " * 5 + "test_tokenize_truncates"
    with caplog.at_level(logging.WARNING, logger="gen.data.tokenizer"):
        ids, mask = tokenize(tokenizer, [text, "a red circle"], max_length=10)
    assert ids.shape == (2, 10)
    assert mask[0].eq(1).all()
    assert ids[0, 0] == tokenizer.eos_token_id
    assert ids[0, 1:].tolist() == tokenizer(text, add_special_tokens=False)["input_ids"][:9]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "truncated" in r.getMessage()]
    assert len(warnings) == 1 and "10" in warnings[0].getMessage()


def test_encode_returns_states_and_mask(tokenizer):
    model = tiny_gpt2(tokenizer)
    ids, mask = tokenize(tokenizer, ["a red circle", "a blue square at the top"], MAX_LENGTH)
    states, mask_out = encode(model, ids, mask)
    assert states.shape == (2, ids.shape[1], TEXT_DIM)
    assert mask_out is mask
    assert torch.isfinite(states).all()
    # Padding after a prompt does not change the states of its real tokens (causal + masked).
    alone, _ = encode(model, *tokenize(tokenizer, ["a red circle"], MAX_LENGTH))
    n = alone.shape[1]
    torch.testing.assert_close(states[0, :n], alone[0], atol=1e-5, rtol=1e-5)


def test_max_length_of_is_the_training_length_stored_in_the_tokenizer(tokenizer):
    model = GPT2Model(GPT2Config(vocab_size=10, n_positions=16, n_embd=8, n_layer=1, n_head=2))
    tokenizer.model_max_length = 8
    assert max_length_of(model, tokenizer) == 8
    tokenizer.model_max_length = 64
    assert max_length_of(model, tokenizer) == 16


def test_from_pretrained_missing_local_path_names_it(tmp_path):
    missing = tmp_path / "no_such_gpt2"
    with pytest.raises(PretrainedNotFound) as err:
        from_pretrained(GPT2Model, str(missing))
    assert str(missing) in str(err.value)
    assert isinstance(err.value, FileNotFoundError)


def test_from_pretrained_empty_local_folder(tmp_path):
    with pytest.raises(PretrainedNotFound) as err:
        from_pretrained(GPT2Model, str(tmp_path))
    assert str(tmp_path) in str(err.value) and "local folder" in str(err.value)


def test_build_text_model_missing_pretrained_raises(tmp_path):
    with pytest.raises(PretrainedNotFound, match="nowhere"):
        build_text_model(TextConfig(pretrained=str(tmp_path / "nowhere")), CAPTIONS)


@pytest.fixture
def local_gpt2(tokenizer, tmp_path):
    """A 'pretrained' GPT-2 saved by the test itself: GPT2Model + tokenizer in one folder."""
    folder = tmp_path / "gpt2"
    model = tiny_gpt2(tokenizer, seed=7)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model


def test_build_text_model_from_local_pretrained(local_gpt2):
    folder, saved = local_gpt2
    cfg = TextConfig(pretrained=str(folder))
    tok, model = build_text_model(cfg, texts=[])
    assert isinstance(model, GPT2Model)
    assert tok.get_vocab() == AutoTokenizer.from_pretrained(folder).get_vocab()
    assert tok.pad_token_id is not None
    for (name, a), (_, b) in zip(model.state_dict().items(), saved.state_dict().items()):
        assert torch.equal(a, b), name
    assert is_frozen(cfg) is True
    assert is_frozen(TextConfig(pretrained=str(folder), freeze=False)) is False


def test_build_text_model_from_scratch():
    cfg = TextConfig(vocab_size=300, n_embd=16, n_layer=1, n_head=2, max_length=12)
    tok, model = build_text_model(cfg, shapes_texts())
    assert is_frozen(cfg) is False
    assert is_frozen(TextConfig(freeze=True)) is True
    assert model.config.vocab_size == len(tok)
    assert model.config.n_positions == 12 and model.config.n_embd == 16 and model.config.n_layer == 1
    assert model.config.eos_token_id == tok.eos_token_id
