"""Bad config values are one `error:` line and exit status 2 from both trainers, before anything is written.

The cases are generated from the config dataclasses (GenConfig, CaptionConfig), walked recursively: every key gets
a value of the wrong type, and every key with a range (config.RANGES) or a set of choices (config.CHOICES) one
outside it. A key added to a config is covered without a new test; a range added to RANGES is too.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml
from conftest import CAPTION_TINY, GEN_TINY, one_error_line

from caption.__main__ import main as caption_main
from caption.train import CaptionConfig
from gen.__main__ import main as gen_main
from gen.core import config as config_io
from gen.core.config import GenConfig
from gen.generator.diffusion import BETA_SCHEDULES

TRAINERS: dict[str, tuple[type, Path, Callable[[list[str]], int]]] = {
    "gen": (GenConfig, GEN_TINY, gen_main),
    "caption": (CaptionConfig, CAPTION_TINY, caption_main),
}


def config_keys(cls: type, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, type hint) of every field, sections included, depth first."""
    hints = typing.get_type_hints(cls)
    keys = []
    for field in dataclasses.fields(cls):
        key, hint = prefix + field.name, hints[field.name]
        keys.append((key, hint))
        if dataclasses.is_dataclass(hint):
            keys += config_keys(hint, key + ".")
    return keys


def base_types(hint: Any) -> set[Any]:
    """The types a hint accepts, None left out: int | None → {int}; list[str] → {list}."""
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return {typing.get_origin(a) or a for a in args if a is not type(None)}


def wrong_type(hint: Any) -> str:
    """YAML text of a value the hint does not accept."""
    accepted = base_types(hint)
    if any(dataclasses.is_dataclass(t) for t in accepted):
        return "7"  # a section given a number
    if accepted == {dict}:
        return "[1, 2]"
    if accepted <= {int, float}:
        return "abc"
    if accepted == {bool}:
        return "sometimes"
    if accepted == {str}:
        return "[1, 2]"
    if accepted == {list}:
        return "7"
    return "{wrong: type}"  # mixed unions (str | bool): a mapping is none of them


# Candidates of each numeric type, tried in order: the first that a key's range refuses is its out-of-range case.
OUT_OF_RANGE_CANDIDATES = {int: ["-1", "0", "1", "5", "4294967296"], float: ["-1.0", "0.0", ".nan", "1.5", ".inf"]}


def out_of_range(key: str, hint: Any) -> str:
    allowed, _ = config_io.RANGES[key]
    numeric = (base_types(hint) & {int, float}).pop()
    for text in OUT_OF_RANGE_CANDIDATES[numeric]:
        if not allowed(yaml.safe_load(text)):
            return text
    raise AssertionError(f"no candidate value is out of the range of {key}; add one to OUT_OF_RANGE_CANDIDATES")


def bad_values(trainer: str) -> list[tuple[str, str, str]]:
    """(trainer, key, YAML text) of every generated bad case of one trainer's config."""
    cls = TRAINERS[trainer][0]
    keys = config_keys(cls)
    cases = [(trainer, key, wrong_type(hint)) for key, hint in keys]
    cases += [(trainer, key, out_of_range(key, hint)) for key, hint in keys if key in config_io.RANGES]
    cases += [(trainer, key, "7" if int in base_types(hint) else "bogus")
              for key, hint in keys if key in config_io.CHOICES]
    return cases


CASES = bad_values("gen") + bad_values("caption")


def train(trainer: str, out: Path, *overrides: str) -> int:
    _, config, main = TRAINERS[trainer]
    return main(["train", str(config), "--out", str(out), *[a for o in overrides for a in ("--set", o)]])


def nothing_blocks(out: Path) -> bool:
    """The corrected run can start: the folder is absent or empty (no lock, tokenizer, logs or config left)."""
    return not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("trainer, key, value", CASES, ids=[f"{t}:{k}={v}" for t, k, v in CASES])
def test_bad_config_value_is_one_error_line_before_anything_is_written(trainer, key, value, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(trainer, out, f"{key}={value}") == 2
    assert key in one_error_line(capsys)
    assert nothing_blocks(out)


def test_matrix_covers_every_range_and_choice():
    """Each RANGES / CHOICES key names a real key of one of the configs: a typo there would check nothing."""
    keys = {k for cls, _, _ in TRAINERS.values() for k, _ in config_keys(cls)}
    assert set(config_io.RANGES) <= keys
    assert set(config_io.CHOICES) <= keys
    assert len(CASES) > 200


def test_schedule_choices_are_the_ones_the_noise_schedule_builds():
    assert set(config_io.CHOICES["diffusion.schedule"]) == set(BETA_SCHEDULES)


@pytest.mark.parametrize("trainer, overrides, named", [
    ("gen", ["train.lr=["], "override 'train.lr=[': the value is not YAML"),
    ("caption", ["train.lr=["], "override 'train.lr=[': the value is not YAML"),
    ("gen", ["text.n_head=3"], "text.n_embd=32 must be a multiple of text.n_head=3"),
    ("caption", ["model.decoder.n_head=3"], "model.decoder.n_embd=32 must be a multiple of model.decoder.n_head=3"),
    ("caption", ["model.encoder.depth=7"], "model.encoder.depth=7 is not a choice: it must be 18, 34 or 50"),
    ("gen", ["diffusion.schedule=bogus"], "diffusion.schedule='bogus' is not a choice"),
    ("gen", ["data.source=bogus"], "data.source='bogus' is not a choice: it must be folder, coco, hf, shapes or scenes"),
    ("gen", ["data.source=folder"], "data.source=folder needs data.path"),
    ("caption", ["data.source=coco"], "data.source=coco needs data.path"),
    ("gen", ["data.source=hf"], "data.source=hf needs data.path"),
    ("gen", ["train.seed=-1"], "train.seed=-1 is out of range: it must be in [0, 2**32)"),
    ("gen", ["data.num_workers=-1"], "data.num_workers=-1 is out of range"),
    ("gen", ["train.mixed_precision=fp8"], "train.mixed_precision must be auto, no (fp32), bf16 or fp16"),
    ("gen", ["data.labels=[zebra, 3]"], "data.labels[1]"),
    ("gen", ["sample.prompts=[a red circle, 7]"], "sample.prompts[1]"),
])
def test_reported_bad_values_name_key_and_fix(trainer, overrides, named, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(trainer, out, *overrides) == 2
    assert named in one_error_line(capsys)
    assert nothing_blocks(out)


def test_pretrained_text_model_is_exempt_from_the_head_rule():
    """n_embd and n_head size a fresh GPT-2 only; a pretrained one brings its own (not loaded here)."""
    cfg = config_io.load(GenConfig, GEN_TINY, ["text.n_head=3", "text.pretrained=some/gpt2"])
    assert cfg.text.n_head == 3 and math.isclose(cfg.train.lr, 0.001)
