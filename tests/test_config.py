"""gen.core.config: YAML → dataclasses, unknown and mistyped keys named, `--set` overrides typed as YAML."""
from __future__ import annotations

import pytest
import torch
import yaml
from conftest import ROOT

from caption.train import CaptionConfig
from gen.core import config as config_io
from gen.core.config import ConfigError, GenConfig, apply_overrides, load
from gen.generator.patching import patched_denoise
from gen.generator.train import build_unet

GEN_CONFIGS = sorted((ROOT / "configs" / "gen").glob("*.yaml"))
CAPTION_CONFIGS = sorted((ROOT / "configs" / "caption").glob("*.yaml"))


def _assert_matches_yaml(cfg, raw: dict) -> None:
    """Every value the YAML file sets is the value the dataclass holds (ints widened to floats)."""
    for section, values in raw.items():
        if not isinstance(values, dict):
            assert getattr(cfg, section) == values, section
            continue
        node = getattr(cfg, section)
        for key, value in values.items():
            held = node[key] if isinstance(node, dict) else getattr(node, key)
            if isinstance(value, dict):
                _assert_matches_yaml(held, {k: v for k, v in value.items()})
            else:
                assert held == value, f"{section}.{key}"
                assert type(held) is type(value) or (type(held) is float and type(value) is int), f"{section}.{key}"


@pytest.mark.parametrize("path", GEN_CONFIGS, ids=lambda p: p.name)
def test_every_gen_config_loads(path):
    cfg = load(GenConfig, path)
    assert cfg.name == path.stem
    _assert_matches_yaml(cfg, yaml.safe_load(path.read_text()))
    assert isinstance(cfg.train.lr, float)


@pytest.mark.parametrize("path", GEN_CONFIGS, ids=lambda p: p.name)
def test_every_gen_config_builds_a_unet_that_denoises_at_its_resolution(path):
    cfg = load(GenConfig, path)
    dim, size = cfg.text.n_embd, cfg.data.resolution
    unet = build_unet(cfg, cross_attention_dim=dim).eval()
    x = torch.randn(1, 3, size, size)
    pooled = {"class_labels": torch.randn(1, dim)} if cfg.unet.get("class_embed_type") == "projection" else {}
    with torch.no_grad():  # a patched config's UNet sees the image as patches (gen/generator/patching.py)
        out = patched_denoise(unet, x, torch.tensor([500]), cfg.patch_size, encoder_hidden_states=torch.randn(1, 4, dim),
                              **pooled)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_shapes32_has_no_resnet_at_full_resolution():
    """layers_per_block [0, 1, 1]: the 32x32 level keeps only its downsampling conv in the encoder and one
    ResNet in the decoder, the cheaper step docs/benchmarks.md measured."""
    unet = build_unet(load(GenConfig, ROOT / "configs" / "gen" / "shapes32.yaml"), cross_attention_dim=128)
    assert [len(b.resnets) for b in unet.down_blocks] == [0, 1, 1]
    assert [len(b.resnets) for b in unet.up_blocks] == [2, 2, 1]
    assert unet.down_blocks[0].downsamplers is not None


@pytest.mark.parametrize("path", CAPTION_CONFIGS, ids=lambda p: p.name)
def test_every_caption_config_loads(path):
    cfg = load(CaptionConfig, path)
    assert cfg.name == path.stem
    _assert_matches_yaml(cfg, yaml.safe_load(path.read_text()))
    assert cfg.model.encoder.depth in (18, 34, 50)


def test_configs_are_found():
    assert {p.name for p in GEN_CONFIGS} >= {"tiny.yaml", "shapes32.yaml"}
    assert {p.name for p in CAPTION_CONFIGS} >= {"tiny.yaml", "shapes32.yaml"}


def test_defaults_without_a_file():
    cfg = load(GenConfig, None)
    assert cfg.name == "gen"
    assert cfg.diffusion.prediction_type == "v_prediction"
    assert cfg.train.keep_last == 2


@pytest.mark.parametrize("overrides, key", [
    (["bogus=1"], "bogus"),
    (["train.lrr=0.1"], "train.lrr"),
    (["model.encoder.dept=18"], "model.encoder.dept"),
])
def test_unknown_caption_key_is_named(overrides, key):
    with pytest.raises(ConfigError) as err:
        load(CaptionConfig, ROOT / "configs/caption/tiny.yaml", overrides)
    # The dotted path a user would type into --set, not just the last part.
    assert key in str(err.value).replace("'", "")


@pytest.mark.parametrize("overrides, key", [
    (["bogus=1"], "bogus"),
    (["train.lrr=0.1"], "train.lrr"),
    (["unet.foo=1"], "unet.foo"),
    (["data.resolutoin=16"], "data.resolutoin"),
])
def test_unknown_gen_key_raises_config_error_naming_it(overrides, key):
    with pytest.raises(ConfigError) as err:
        load(GenConfig, ROOT / "configs/gen/tiny.yaml", overrides)
    assert key in str(err.value).replace("'", "")


def test_unknown_key_message_is_the_dotted_path():
    with pytest.raises(ConfigError) as err:
        load(GenConfig, ROOT / "configs/gen/tiny.yaml", ["train.lrr=0.1"])
    assert "train.lrr" in str(err.value)  # not "train.'lrr'"


def test_unknown_key_in_yaml_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  max_steps: 3\n  lrr: 0.1\n")
    with pytest.raises(ConfigError, match="lrr"):
        load(GenConfig, path)


@pytest.mark.parametrize("override, key", [
    ("train.lr=abc", "train.lr"),
    ("train.max_steps=1.5", "train.max_steps"),
    ("train.max_steps=true", "train.max_steps"),  # a bool is not an int here
    ("data.hflip=3", "data.hflip"),
    ("text.pretrained=5", "text.pretrained"),
    ("sample.prompts=a red circle", "sample.prompts"),
    ("train=3", "train"),
])
def test_wrong_type_names_the_key(override, key):
    with pytest.raises(ConfigError) as err:
        load(GenConfig, ROOT / "configs/gen/tiny.yaml", [override])
    assert f"'{key}'" in str(err.value)


def test_unet_cross_attention_dim_is_not_configurable():
    with pytest.raises(ConfigError, match="cross_attention_dim"):
        load(GenConfig, None, ["unet.cross_attention_dim=64"])


def test_bad_prediction_type_is_refused():
    with pytest.raises(ConfigError, match="prediction_type"):
        load(GenConfig, None, ["diffusion.prediction_type=sample"])


def test_negative_text_lr_scale_is_refused():
    assert load(GenConfig, None, ["text.lr_scale=0.1"]).text.lr_scale == 0.1
    with pytest.raises(ConfigError, match="text.lr_scale"):
        load(GenConfig, None, ["text.lr_scale=-1"])


def test_overrides_apply_with_yaml_typing():
    cfg = load(GenConfig, ROOT / "configs/gen/tiny.yaml", [
        "train.max_steps=7", "train.lr=0.5", "train.max_minutes=2", "data.hflip=true", "text.pretrained=null",
        "unet.block_out_channels=[8, 16]", "sample.prompts=[a red circle, a blue square]", "name=other",
    ])
    assert cfg.train.max_steps == 7 and type(cfg.train.max_steps) is int
    assert cfg.train.lr == 0.5
    assert cfg.train.max_minutes == 2.0 and type(cfg.train.max_minutes) is float  # int widened to float
    assert cfg.data.hflip is True
    assert cfg.text.pretrained is None
    assert cfg.unet["block_out_channels"] == [8, 16]
    assert cfg.unet["down_block_types"] == ["DownBlock2D", "CrossAttnDownBlock2D"]  # rest of the file kept
    assert cfg.sample.prompts == ["a red circle", "a blue square"]
    assert cfg.name == "other"
    # Untouched keys keep the file's values.
    assert cfg.train.batch_size == 16 and cfg.data.resolution == 16


def test_override_value_may_contain_equals_sign():
    cfg = load(GenConfig, None, ["sample.prompts=[a=b]"])
    assert cfg.sample.prompts == ["a=b"]


def test_override_without_equals_or_into_a_value_is_refused():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides({}, ["train.lr"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"train": {"lr": 0.1}}, ["train.lr.x=1"])


def test_save_and_load_round_trip(tmp_path):
    cfg = load(GenConfig, ROOT / "configs/gen/tiny.yaml", ["train.max_steps=3"])
    config_io.save(cfg, tmp_path / "config.yaml")
    again = load(GenConfig, tmp_path / "config.yaml")
    assert config_io.to_dict(again) == config_io.to_dict(cfg)


def test_caption_config_round_trip(tmp_path):
    cfg = load(CaptionConfig, ROOT / "configs/caption/tiny.yaml", ["model.encoder.stages=3"])
    config_io.save(cfg, tmp_path / "config.yaml")
    again = load(CaptionConfig, tmp_path / "config.yaml")
    assert again.model.encoder.stages == 3
    assert config_io.to_dict(again) == config_io.to_dict(cfg)


def test_top_level_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load(GenConfig, path)
