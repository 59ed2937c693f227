"""caption.model and caption.train: the ResNet → GPT-2 captioner, its folder format, pretrained parts, training."""
from __future__ import annotations

import json
import math
import urllib.request
from pathlib import Path

import pytest
import torch
import torchvision
from conftest import CAPTION_STEPS, MAX_LENGTH, TEXT_DIM, tiny_gpt2
from safetensors.torch import save_file
from torch import nn
from transformers import GPT2LMHeadModel

from caption.augment import AugmentConfig, photometric_noise
from caption.model import Captioner, CaptionerConfig, EncoderConfig, ImageEncoder, build_captioner
from caption.train import EvalConfig, is_exact, split_records
from gen import domains
from gen.core.config import TextConfig
from gen.data import Record
from gen.data.tokenizer import PretrainedNotFound, tokenize

SPECIAL = "<|endoftext|>"


def tiny_config(image_size: int = 16, stages: int = 2, **encoder) -> CaptionerConfig:
    return CaptionerConfig(
        encoder=EncoderConfig(depth=18, image_size=image_size, stages=stages, **encoder),
        decoder=TextConfig(vocab_size=300, n_embd=TEXT_DIM, n_layer=1, n_head=2, max_length=MAX_LENGTH),
    )


@pytest.fixture(scope="module")
def captioner(tokenizer):
    torch.manual_seed(0)
    return build_captioner(tiny_config(), tokenizer).eval()


def pixels(n: int = 2, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ---------------------------------------------------------------- encoder


@pytest.mark.parametrize("stages, grid, channels", [(4, 4, 512), (3, 8, 256)])
def test_small_stem_at_32px(stages, grid, channels):
    enc = ImageEncoder(EncoderConfig(depth=18, image_size=32, stages=stages), width=TEXT_DIM)
    conv1 = enc.trunk[0]
    assert conv1.kernel_size == (3, 3) and conv1.stride == (1, 1) and conv1.padding == (1, 1)
    assert isinstance(enc.trunk[3], nn.Identity)  # no max-pool
    assert enc.row.shape == (channels, grid, 1) and enc.col.shape == (channels, 1, grid)
    tokens = enc(pixels(2, 32))
    assert tokens.shape == (2, grid * grid, TEXT_DIM)
    assert torch.isfinite(tokens).all()


def test_large_images_keep_the_imagenet_stem():
    enc = ImageEncoder(EncoderConfig(depth=18, image_size=128, stages=4), width=TEXT_DIM)
    assert enc.trunk[0].kernel_size == (7, 7) and enc.trunk[0].stride == (2, 2)
    assert isinstance(enc.trunk[3], nn.MaxPool2d)
    assert enc(pixels(1, 128)).shape == (1, 16, TEXT_DIM)  # 128 / 32 = 4 → 4x4 tokens
    forced = ImageEncoder(EncoderConfig(depth=18, image_size=64, stages=4, small_stem=False), width=TEXT_DIM)
    assert forced.trunk[0].kernel_size == (7, 7) and forced(pixels(2, 64)).shape == (2, 4, TEXT_DIM)


def test_tokens_depend_on_position():
    """Learned row/column embeddings: the same feature at two places gives two different tokens."""
    torch.manual_seed(0)
    enc = ImageEncoder(EncoderConfig(depth=18, image_size=16, stages=2), width=TEXT_DIM).eval()
    tokens = enc(torch.zeros(1, 3, 16, 16))  # a flat image: every trunk feature the same but edges
    assert not torch.allclose(tokens[0, 5], tokens[0, 6])


@pytest.fixture(scope="module")
def resnet_files(tmp_path_factory):
    """torchvision's resnet18 state dict, saved by the test as .safetensors and as .pth."""
    folder = tmp_path_factory.mktemp("resnet")
    torch.manual_seed(1)
    reference = torchvision.models.resnet18()
    state = {k: v.contiguous() for k, v in reference.state_dict().items()}
    save_file(state, str(folder / "r18.safetensors"))
    torch.save(state, folder / "r18.pth")
    return reference, [folder / "r18.safetensors", folder / "r18.pth"]


def test_resnet_weights_from_a_local_state_dict_file(resnet_files):
    reference, files = resnet_files
    for path in files:
        enc = ImageEncoder(EncoderConfig(depth=18, weights=str(path), image_size=32), width=TEXT_DIM)
        assert torch.equal(enc.trunk[4][0].conv1.weight, reference.layer1[0].conv1.weight), path.name
        assert torch.equal(enc.trunk[7][1].conv2.weight, reference.layer4[1].conv2.weight), path.name
        assert enc.trunk[0].kernel_size == (3, 3)  # the small stem still replaces the loaded conv1


def test_loaded_batchnorm_statistics_are_kept(resnet_files):
    """Building the encoder (its shape probe) must not move the pretrained BatchNorm running statistics."""
    reference, files = resnet_files
    enc = ImageEncoder(EncoderConfig(depth=18, weights=str(files[0]), image_size=32), width=TEXT_DIM)
    ours = {k: v for k, v in enc.trunk.state_dict().items() if "running_" in k}
    theirs = reference.state_dict()
    names = dict(zip(["4", "5", "6", "7"], ["layer1", "layer2", "layer3", "layer4"]))
    changed = [k for k, v in ours.items() if k.split(".")[0] in names
               and not torch.equal(v, theirs[names[k.split(".")[0]] + k[len(k.split(".")[0]):]])]
    assert not changed, f"{len(changed)} BatchNorm buffers changed, e.g. {changed[:3]}"


def test_missing_resnet_weights_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="encoder.weights"):
        ImageEncoder(EncoderConfig(weights=str(tmp_path / "nope.safetensors"), image_size=16), width=TEXT_DIM)


def test_imagenet_weights_offline_is_a_clear_error(tmp_path, monkeypatch):
    """No network: every request goes to a closed local port, and the hub cache is empty."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for var in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(urllib.request, "_opener", None)  # proxies are read when the opener is built
    with pytest.raises(FileNotFoundError) as err:
        ImageEncoder(EncoderConfig(depth=18, weights="imagenet", image_size=16, stages=2), width=TEXT_DIM)
    message = str(err.value)
    assert "offline" in message and "encoder.weights" in message and "ResNet18" in message


# ---------------------------------------------------------------- captioner


def test_build_captioner_tiny(captioner, tokenizer):
    dec = captioner.decoder
    assert isinstance(dec, GPT2LMHeadModel)
    assert dec.config.add_cross_attention and dec.config.vocab_size == len(tokenizer)
    assert dec.config.n_embd == TEXT_DIM and dec.config.n_positions == MAX_LENGTH
    assert captioner.max_length == MAX_LENGTH
    ids, mask = tokenize(tokenizer, ["a red circle on the left", "a blue square"], MAX_LENGTH, add_eos=True)
    logits = captioner(pixels(), ids, mask)
    assert logits.shape == (2, ids.shape[1], len(tokenizer))
    # The image matters: cross-attention reads the encoder tokens.
    other = captioner(pixels(seed=1), ids, mask)
    assert not torch.allclose(logits, other)


def test_token_logprobs(captioner, tokenizer):
    ids, mask = tokenize(tokenizer, ["a red circle on the left", "red"], MAX_LENGTH, add_eos=True)
    image = pixels()
    lp = captioner.token_logprobs(image, ids, mask)
    assert lp.shape == (2, ids.shape[1] - 1)
    assert (lp <= 0).all()
    n = int(mask[1].sum()) - 1
    assert lp[1, n:].eq(0).all() and lp[1, :n].lt(0).all()
    expected = torch.log_softmax(captioner(image, ids, mask)[0, :-1], -1).gather(-1, ids[0, 1:, None])[:, 0]
    torch.testing.assert_close(lp[0], expected * mask[0, 1:])
    # Reusing an encoding gives the same numbers.
    torch.testing.assert_close(captioner.token_logprobs(None, ids, mask, captioner.encoder(image)), lp)


def test_save_and_load_give_identical_logits(captioner, tokenizer, tmp_path):
    captioner.save_pretrained(tmp_path / "cap", tokenizer)
    assert {p.name for p in (tmp_path / "cap").iterdir()} == {"config.json", "model.safetensors", "tokenizer"}
    loaded, tok = Captioner.from_pretrained(tmp_path / "cap")
    assert not loaded.training
    assert tok.get_vocab() == tokenizer.get_vocab()
    ids, mask = tokenize(tokenizer, ["a green triangle in the center"], MAX_LENGTH, add_eos=True)
    image = pixels(1)
    with torch.no_grad():
        assert torch.equal(captioner(image, ids, mask), loaded(image, ids, mask))
    meta = json.loads((tmp_path / "cap" / "config.json").read_text())
    assert meta["captioner"]["encoder"]["image_size"] == 16 and meta["gpt2"]["n_embd"] == TEXT_DIM


def test_from_pretrained_needs_a_captioner_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        Captioner.from_pretrained(tmp_path)


def test_generate_greedy_beams_and_top_p(captioner, tokenizer):
    image = pixels(3)
    greedy = captioner.generate(image, tokenizer)
    assert len(greedy) == 3 and all(isinstance(c, str) for c in greedy)
    assert greedy == captioner.generate(image, tokenizer)
    beams = captioner.generate(image, tokenizer, num_beams=3, max_new_tokens=6)
    assert len(beams) == 3 and all(isinstance(c, str) for c in beams)
    nucleus = captioner.generate(image, tokenizer, top_p=0.9, seed=3, max_new_tokens=6)
    assert nucleus == captioner.generate(image, tokenizer, top_p=0.9, seed=3, max_new_tokens=6)
    assert len(nucleus) == 3 and all(isinstance(c, str) for c in nucleus)
    short = captioner.generate(image, tokenizer, max_new_tokens=2)
    longer = captioner.generate(image, tokenizer, max_new_tokens=6)
    assert all(b.startswith(a) for a, b in zip(short, longer))  # greedy: the first tokens do not change
    assert all(SPECIAL not in c for c in greedy + beams + nucleus)


def test_decoder_from_a_local_pretrained_gpt2(tokenizer, tmp_path):
    folder = tmp_path / "gpt2"
    saved = tiny_gpt2(tokenizer, lm_head=True, seed=5)  # no cross-attention in the saved model
    saved.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    cfg = tiny_config()
    cfg.decoder = TextConfig(pretrained=str(folder), max_length=MAX_LENGTH)
    model = build_captioner(cfg, tokenizer)
    assert model.decoder.config.add_cross_attention is True
    assert hasattr(model.decoder.transformer.h[0], "crossattention")
    assert torch.equal(model.decoder.transformer.wte.weight, saved.transformer.wte.weight)
    assert torch.equal(model.decoder.transformer.h[0].attn.c_attn.weight, saved.transformer.h[0].attn.c_attn.weight)
    ids, mask = tokenize(tokenizer, ["a red circle"], MAX_LENGTH)
    assert model(pixels(1), ids, mask).shape == (1, ids.shape[1], len(tokenizer))


def test_decoder_pretrained_missing(tokenizer, tmp_path):
    cfg = tiny_config()
    cfg.decoder = TextConfig(pretrained=str(tmp_path / "absent"))
    with pytest.raises(PretrainedNotFound, match="absent"):
        build_captioner(cfg, tokenizer)


# ---------------------------------------------------------------- training


def test_caption_train_writes_a_model_folder(caption_run, judge):
    model = caption_run / "model"
    assert (model / "config.json").is_file() and (model / "model.safetensors").is_file()
    assert (model / "tokenizer" / "tokenizer.json").is_file()
    assert (caption_run / "config.yaml").is_file() and list((caption_run / "logs").glob("events.out.tfevents.*"))
    assert [p.name for p in sorted((caption_run / "checkpoints").iterdir())] == \
        ["checkpoint-00000010", "checkpoint-00000020"]
    summary = json.loads((caption_run / "summary.json").read_text())
    metrics = summary["metrics"]
    assert metrics["step"] == CAPTION_STEPS
    assert set(metrics) >= {"val/loss", "val/exact_match", "unseen/loss", "unseen/exact_match"}
    # Learned something: below the loss of guessing uniformly over the vocabulary.
    vocab = len(judge.tokenizer)
    assert metrics["val/loss"] < 0.95 * math.log(vocab)
    assert 0 <= metrics["val/exact_match"] <= 1
    loaded, _ = Captioner.from_pretrained(model)
    assert loaded.cfg.encoder.image_size == 16 and loaded.cfg.encoder.stages == 2


def _rec(name: str, **meta) -> Record:
    return Record(Path(name), ["a red circle on the left"], meta)


def test_split_records_by_split_field():
    records = [_rec("a.png", split="train"), _rec("b.png", split="val"), _rec("c.png", split="unseen"),
               _rec("d.png"), _rec("e.png", split="test")]
    parts = split_records(records, EvalConfig())
    assert [r.path.name for r in parts["train"]] == ["a.png", "d.png"]  # no field: training
    assert [r.path.name for r in parts["val"]] == ["b.png"]
    assert [r.path.name for r in parts["unseen"]] == ["c.png"]
    parts = split_records(records, EvalConfig(val_split="test"))
    assert [r.path.name for r in parts["val"]] == ["e.png"]


def test_split_records_by_hash_is_stable_and_disjoint():
    records = [_rec(f"img{i:04d}.png") for i in range(400)]
    parts = split_records(records, EvalConfig(holdout_fraction=0.25))
    train, val = {r.path.name for r in parts["train"]}, {r.path.name for r in parts["val"]}
    assert not train & val and len(train | val) == 400 and parts["unseen"] == []
    assert 60 <= len(val) <= 140  # about a quarter
    again = split_records(list(reversed(records)), EvalConfig(holdout_fraction=0.25))
    assert {r.path.name for r in again["val"]} == val  # by name, not by order
    assert split_records(records, EvalConfig(holdout_fraction=0.0))["val"] == []


def test_is_exact_for_shapes_rows():
    rec = Record(Path("x.png"), ["a red circle on the left"], {"color": "red", "shape": "circle", "position": "left"})
    assert is_exact("a red circle on the left", rec, domains.SHAPES)
    assert is_exact("there is a red circle on the left of the image", rec, domains.SHAPES)  # any phrasing
    assert is_exact("red circle on the left", rec, domains.SHAPES)
    assert not is_exact("a red circle", rec, domains.SHAPES)  # position missing
    assert not is_exact("a blue circle on the left", rec, domains.SHAPES)


def test_is_exact_for_other_rows():
    rec = Record(Path("x.png"), ["A dog runs on the beach.", "a dog at the sea"], {})
    assert is_exact("a dog runs on the beach", rec, domains.PLAIN)
    assert is_exact("A DOG AT THE SEA!", rec, domains.PLAIN)
    assert not is_exact("a cat runs on the beach", rec, domains.PLAIN)


def test_photometric_noise_tints_and_noises_only_the_picked_share():
    torch.manual_seed(0)
    pixels = torch.full((400, 3, 16, 16), -0.8)  # a plain dark background, like the shapes renders
    assert torch.equal(photometric_noise(pixels, AugmentConfig(prob=0.0)), pixels)
    out = photometric_noise(pixels, AugmentConfig(prob=0.5, tint=0.08, noise=0.05))
    changed = (out != pixels).flatten(1).any(dim=1)  # (400,)
    assert 0.4 < changed.float().mean() < 0.6 and out.min() >= -1 and out.max() <= 1
    delta = (out - pixels)[changed]  # (n, 3, 16, 16)
    tint = delta.mean(dim=(2, 3))  # one offset per image and channel
    assert tint.std().item() == pytest.approx(0.08, rel=0.15)
    assert (delta - tint[..., None, None]).std().item() == pytest.approx(0.05, rel=0.1)
