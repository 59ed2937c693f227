"""The judge's α comes from the captioner's saved config: one default, kept with the model."""
from __future__ import annotations

import shutil

import yaml

from caption.evaluation.meta_eval import suggest_alpha
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


def ladder(color: float, shape: float, spearman: float = 0.9) -> dict[str, float]:
    return {"auroc_color": color, "auroc_shape": shape, "spearman": spearman}


def test_the_suggested_alpha_is_the_most_debiasing_the_ladders_allow_for_free():
    """The largest α whose worst-attribute AUROC is within 0.005 of the best, not the highest AUROC (which picks
    α = 0 whenever the ladders saturate); the α in use is reported beside it, with why they differ."""
    attributes = ("color", "shape")
    # The committed demo captioner's sweep, rounded: 0 and 0.25 perfect, 0.5 gives up 0.0015, 0.75 gives up 0.022.
    by_alpha = {"0.0": ladder(1.0, 1.0, 0.899), "0.25": ladder(1.0, 1.0, 0.898), "0.5": ladder(0.9985, 0.999, 0.895),
                "0.75": ladder(0.983, 0.978, 0.883), "1.0": ladder(0.948, 0.940, 0.864)}
    choice = suggest_alpha(by_alpha, attributes, 0.25, by_alpha["0.25"])
    assert choice["suggested_alpha"] == 0.5 and choice["alpha_in_use"] == 0.25
    assert choice["alpha_rule"] == "the largest α whose worst-attribute AUROC is within 0.005 of the best α's"
    assert "within 0.005 of the best worst-attribute AUROC too (1.0000)" in choice["alpha_note"]

    assert suggest_alpha(by_alpha, attributes, 0.5, by_alpha["0.5"])["alpha_note"] == "the α in use is the rule's pick"
    # An α in use that loses more than the tolerance is named as such.
    costly = suggest_alpha(by_alpha, attributes, 1.0, by_alpha["1.0"])
    assert costly["suggested_alpha"] == 0.5 and "gives up more than 0.005" in costly["alpha_note"]
    assert "(0.9400)" in costly["alpha_note"]
    # Nothing free beyond α = 0: the rule keeps 0 (a tie at the best counts as free, a loss of 0.006 does not).
    steep = {"0.0": ladder(0.99, 1.0), "0.25": ladder(0.984, 1.0), "0.5": ladder(0.9, 0.9)}
    assert suggest_alpha(steep, attributes, 0.0, steep["0.0"])["suggested_alpha"] == 0.0
