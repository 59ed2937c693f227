"""Every shipped config builds what its comment promises.

Each YAML in configs/gen and configs/caption carries one `# Built:` line: the parameter count of the model it
sizes (the UNet for a generator, the whole captioner for a captioner) and the channels per attention head of
every attention layer, the UNet's and the GPT-2's. These tests build the models from the config alone, untrained,
and hold the line to them: diffusers' `attention_head_dim` is (for legacy reasons) the number of heads, not their
width, so a config can easily build other heads than its comment says.
"""
from __future__ import annotations

import dataclasses
import functools
import random
import re
import string
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from diffusers.models.attention_processor import Attention
from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerBase
from transformers.models.gpt2.modeling_gpt2 import GPT2Attention

from caption.model import build_captioner
from caption.train import CaptionConfig
from gen.core.config import GenConfig, load
from gen.data.tokenizer import train_tokenizer
from gen.generator.text import build_text_model
from gen.generator.train import build_unet

GEN_CONFIGS = sorted((ROOT / "configs" / "gen").glob("*.yaml"))
CAPTION_CONFIGS = sorted((ROOT / "configs" / "caption").glob("*.yaml"))
# A config whose text.pretrained names weights the tests cannot have is built with a one-layer stand-in of GPT-2
# small's width (768-d, 12 heads), which is what the UNet's cross-attention is sized by.
GPT2_SMALL = {"n_embd": 768, "n_head": 12}


@dataclasses.dataclass
class Promise:
    """What a `# Built:` line says, parameters in millions as written."""

    params: str
    unet_heads: set[int]  # empty for a captioner
    gpt2_heads: set[int]

    def holds_params(self, count: int) -> bool:
        """`count` rounds to the written figure: the tolerance is half a unit of its last digit."""
        decimals = len(self.params.partition(".")[2])
        return abs(count / 1e6 - float(self.params)) <= 0.5 * 10.0**-decimals


def widths(text: str) -> set[int]:
    """'16 and 32' → {16, 32}."""
    return {int(n) for n in re.findall(r"\d+", text)}


def promise(path: Path) -> Promise:
    """The `# Built:` sentence of a config, which may wrap onto further comment lines up to its full stop."""
    found = re.findall(r"^# Built:((?:.|\n# )*?)\.$", path.read_text(encoding="utf-8"), re.M)
    assert len(found) == 1, f"{path.name}: one `# Built:` comment expected"
    text = " ".join(found[0].replace("\n# ", " ").split())
    params = re.search(r"([\d.]+) M parameters", text)
    unet = re.search(r"UNet of [\d.]+ M parameters with ([\d ,and]+?) channels per head", text)
    gpt2 = re.search(r"GPT-2 \w[\w -]*? with (\d+) channels per head", text)
    assert params and gpt2, f"{path.name}: cannot read {text!r}"
    return Promise(params.group(1), widths(unet.group(1)) if unet else set(), widths(gpt2.group(1)))


def head_widths(model: torch.nn.Module) -> set[int]:
    """Channels per head of every attention layer: diffusers' Attention (self and cross) and GPT-2's."""
    found = set()
    for module in model.modules():
        if isinstance(module, Attention):
            assert module.inner_dim % module.heads == 0
            found.add(module.inner_dim // module.heads)
        elif isinstance(module, GPT2Attention):
            found.add(module.head_dim)
    return found


@functools.lru_cache(maxsize=None)
def texts() -> tuple[str, ...]:
    """Random words, enough distinct pairs for a BPE to reach any vocabulary the configs ask for."""
    rng = random.Random(0)
    words = ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 7))) for _ in range(3000)]
    return tuple(" ".join(rng.choices(words, k=8)) for _ in range(4000))


@functools.lru_cache(maxsize=None)
def full_tokenizer(vocab_size: int) -> PreTrainedTokenizerBase:
    """A BPE of exactly `vocab_size` tokens: the size a config asks for, not what its data set would reach."""
    tokenizer = train_tokenizer(texts(), vocab_size)
    assert len(tokenizer) == vocab_size
    return tokenizer


@pytest.fixture(scope="module")
def gpt2_small_stand_in(tokenizer, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gpt2_small_stand_in")
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_layer=1, bos_token_id=tokenizer.eos_token_id,
                        eos_token_id=tokenizer.eos_token_id, **GPT2_SMALL)
    GPT2Model(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_built_line_is_read_with_its_continuation(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("# about\n# Built: a UNet of 1.25 M parameters with 16 and 32 channels per head; a GPT-2 text\n"
                    "# encoder with 32 channels per head.\n# Another 64 channels per head.\nunet: {}\n")
    found = promise(path)
    assert found == Promise("1.25", {16, 32}, {32})
    assert found.holds_params(1_254_999) and found.holds_params(1_245_000) and not found.holds_params(1_256_000)


@pytest.mark.parametrize("path", GEN_CONFIGS, ids=lambda p: p.name)
def test_generator_config_builds_the_heads_and_size_its_comment_states(path, gpt2_small_stand_in):
    cfg = load(GenConfig, path)
    if cfg.text.pretrained:
        cfg = load(GenConfig, path, [f"text.pretrained={gpt2_small_stand_in}"])
        assert cfg.text.freeze is None  # frozen by default, as a pretrained encoder is meant to be
    _, text_encoder = build_text_model(cfg.text, texts()[:200])
    unet = build_unet(cfg, text_encoder.config.n_embd)
    said = promise(path)
    assert head_widths(unet) == said.unet_heads
    assert head_widths(text_encoder) == said.gpt2_heads
    count = sum(p.numel() for p in unet.parameters())
    assert said.holds_params(count), f"{path.name}: the UNet has {count / 1e6:.3f} M parameters"


@pytest.mark.parametrize("path", CAPTION_CONFIGS, ids=lambda p: p.name)
def test_captioner_config_builds_the_heads_and_size_its_comment_states(path):
    cfg = load(CaptionConfig, path)
    assert not cfg.model.decoder.pretrained  # a shipped pretrained decoder would need a stand-in as above
    captioner = build_captioner(cfg.model, full_tokenizer(cfg.model.decoder.vocab_size))
    said = promise(path)
    assert said.unet_heads == set()
    assert head_widths(captioner) == said.gpt2_heads
    count = sum(p.numel() for p in captioner.parameters())
    assert said.holds_params(count), f"{path.name}: the captioner has {count / 1e6:.3f} M parameters"


def test_gpt2_64_has_64_channel_heads_at_every_attention_level():
    """diffusers reads attention_head_dim as the number of heads: a single 64 would give 256-channel levels heads
    of 4 channels. Per level it is the level's channels / 64, and the middle block takes the last."""
    cfg = load(GenConfig, ROOT / "configs" / "gen" / "gpt2_64.yaml")
    assert [c // h for c, h in zip(cfg.unet["block_out_channels"], cfg.unet["attention_head_dim"])] == [64] * 4
    unet = build_unet(cfg, cross_attention_dim=GPT2_SMALL["n_embd"])
    levels = [*unet.down_blocks, unet.mid_block, *unet.up_blocks]
    heads = [{a.heads for a in level.modules() if isinstance(a, Attention)} for level in levels]
    assert heads == [set(), {4}, {4}, {8}, {8}, {8}, {4}, {4}, set()]
