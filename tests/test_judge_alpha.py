"""The judge's α comes from the captioner's saved config: one default, kept with the model."""
from __future__ import annotations

import shutil

import yaml

from caption.judge.judge import Judge
from caption.judge.views import JudgeConfig
from gen.core.config import SAVED


def test_alpha_is_read_from_the_saved_config_and_a_flag_overrides_it(captioner_dir, tmp_path):
    assert Judge(captioner_dir, device="cpu").alpha == JudgeConfig.alpha == 0.25
    copy = tmp_path / "captioner"
    shutil.copytree(captioner_dir, copy)
    saved = yaml.safe_load((copy / SAVED).read_text())
    saved.setdefault("judge", {})["alpha"] = 0.6
    (copy / SAVED).write_text(yaml.safe_dump(saved))
    assert Judge(copy, device="cpu").alpha == 0.6
    assert Judge(copy, alpha=0.0, device="cpu").alpha == 0.0


def test_a_folder_saved_without_alpha_gets_the_default(captioner_dir, tmp_path):
    copy = tmp_path / "captioner"
    shutil.copytree(captioner_dir, copy)
    saved = yaml.safe_load((copy / SAVED).read_text())
    saved.get("judge", {}).pop("alpha", None)
    (copy / SAVED).write_text(yaml.safe_dump(saved))
    assert Judge(copy, device="cpu").alpha == 0.25
