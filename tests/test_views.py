"""Warped views (caption/judge/views.py): the judge's attribute probabilities averaged over an image and warped copies."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
import yaml
from conftest import CAPTION_TINY, one_error_line

from caption.__main__ import main as caption_main
from caption.judge.attribute_probs import attribute_probs
from caption.judge.judge import Judge
from caption.judge.views import DEFAULT_VIEWS, Views, views_of_model, warped_view
from caption.train import CaptionConfig
from gen import domains
from gen.core import config as config_io
from gen.core.config import ConfigError
from gen.domains.shapes.world import ShapeSpec, render


def _objects(judge: Judge, specs: list[tuple[str, str, str]]) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.stack([judge.pil_to_pixels(render([ShapeSpec(*s)], judge.size, rng)) for s in specs])  # (N, 3, S, S)


def _with_config(captioner_dir, tmp_path, **sections) -> str:
    """A copy of the tiny captioner whose stored config has `sections` merged in."""
    folder = tmp_path / "cap"
    shutil.copytree(captioner_dir, folder)
    saved = folder / config_io.SAVED
    raw = yaml.safe_load(saved.read_text())
    for name, values in sections.items():
        raw[name] = {**(raw.get(name) or {}), **values}
    saved.write_text(yaml.safe_dump(raw))
    return str(folder)


def test_a_view_depends_on_the_image_only_and_leaves_the_global_generator_alone():
    torch.manual_seed(0)
    pixels = torch.rand(4, 3, 16, 16) * 2 - 1
    state = torch.get_rng_state()
    batch = warped_view(pixels, 0, 3.0)
    assert torch.equal(torch.get_rng_state(), state)
    # An image's view does not depend on the other images it is scored with (best-of-N candidates).
    assert torch.allclose(warped_view(pixels[2:3], 0, 3.0), batch[2:3], atol=1e-6)
    assert torch.equal(warped_view(pixels, 0, 3.0), batch)
    assert not torch.allclose(warped_view(pixels, 1, 3.0), batch)
    assert (batch - pixels).abs().max() > 0.1 and batch.min() >= -1 and batch.max() <= 1
    # Two copies of one image get the same view; different images independent warps, as in training.
    twins = warped_view(torch.stack([pixels[0], pixels[0]]), 0, 3.0)
    assert torch.equal(twins[0], twins[1])
    moved = (batch - pixels).abs().amax(1) > 0.05  # (B, H, W): where each image's warp moved something
    assert not torch.equal(moved[0], moved[1])


def test_views_follow_the_captioners_own_warp(tmp_path):
    (tmp_path / config_io.SAVED).write_text(yaml.safe_dump({"augment": {"warp": 5.0}}))
    assert views_of_model(tmp_path) == Views(DEFAULT_VIEWS, 5.0)
    assert views_of_model(tmp_path, 2) == Views(2, 5.0)
    (tmp_path / config_io.SAVED).write_text(yaml.safe_dump({"augment": {"warp": 5.0}, "judge": {"views": 3}}))
    assert views_of_model(tmp_path) == Views(3, 5.0)
    # Trained without warps, or no stored config at all: the image alone, whatever is asked.
    (tmp_path / config_io.SAVED).write_text(yaml.safe_dump({"augment": {"warp": 0.0}}))
    assert not views_of_model(tmp_path, 4).active
    assert views_of_model(tmp_path / "missing") == Views(0, 0.0)
    with pytest.raises(ValueError, match="views must be ≥ 0"):
        views_of_model(tmp_path, -1)


def test_the_judge_config_section_is_checked():
    assert config_io.load(CaptionConfig, CAPTION_TINY).judge.views == DEFAULT_VIEWS
    with pytest.raises(ConfigError, match="judge.views"):
        config_io.load(CaptionConfig, CAPTION_TINY, ["judge.views=-1"])
    with pytest.raises(ConfigError, match="judge.copies"):
        config_io.load(CaptionConfig, CAPTION_TINY, ["judge.copies=2"])


def test_attribute_probabilities_are_the_mean_of_each_views_softmax(judge):
    pixels = _objects(judge, [("red", "circle", "left"), ("blue", "square", "top")])
    prompts = ["a red circle on the left", "a red square at the top"]
    first, second = judge.encode(pixels), judge.encode(pixels.flip(-1))  # two different "views"
    a = attribute_probs(judge, first, prompts, domains.SHAPES)
    b = attribute_probs(judge, [second], prompts, domains.SHAPES)
    both = attribute_probs(judge, [first, second], prompts, domains.SHAPES)
    for attribute in ("color", "shape", "position"):
        np.testing.assert_allclose(both.probs[attribute], (a.probs[attribute] + b.probs[attribute]) / 2, rtol=1e-6)
    np.testing.assert_allclose(both.all, np.prod([both.probs[t] for t in ("color", "shape", "position")], 0))
    np.testing.assert_allclose(both.debiased, a.debiased)  # the debiased score is the image's own
    assert not np.allclose(a.probs["position"], b.probs["position"])  # the views did differ
    same = attribute_probs(judge, [first, first, first], prompts, domains.SHAPES)
    for attribute in ("color", "shape", "position"):
        np.testing.assert_allclose(same.probs[attribute], a.probs[attribute], rtol=1e-6)
        assert same.reading[attribute] == a.reading[attribute]


def test_a_judge_of_a_warp_trained_captioner_scores_warped_views(captioner_dir, tmp_path):
    folder = _with_config(captioner_dir, tmp_path, augment={"warp": 3.0}, judge={"views": 2})
    judge = Judge(folder, device="cpu")
    assert judge.views == Views(2, 3.0)
    pixels = _objects(judge, [("red", "circle", "left")])
    warped = judge.encode_warped(pixels)
    assert len(warped) == 2 and warped[0].shape == judge.encode(pixels).shape
    assert not torch.allclose(warped[0], judge.encode(pixels)) and not torch.allclose(warped[0], warped[1])
    views = judge.encode_views(pixels)  # the images first, then their warped views
    assert len(views) == 3 and torch.equal(views[0], judge.encode(pixels)) and torch.equal(views[1], warped[0])
    given = torch.zeros_like(views[0])
    assert judge.encode_views(pixels, given)[0] is given  # tokens the caller already has are not encoded again
    assert Judge(folder, device="cpu", views=0).encode_warped(pixels) == []
    assert Judge(captioner_dir, device="cpu").encode_warped(pixels) == []  # the tiny config has no warps


def test_score_refuses_negative_views(captioner_dir, tmp_path, capsys):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "metadata.jsonl").write_text("")
    assert caption_main(["score", str(captioner_dir), str(tmp_path / "s"), "--views", "-2"]) == 2
    assert "--views must be ≥ 0, not -2" in one_error_line(capsys)
