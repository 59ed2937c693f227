"""Captioner augmentations: off by default, and each artefact does what it says on a tiny image."""
from __future__ import annotations

import pytest
import torch

from caption.augment import AugmentConfig, artefacts, augment, blur, color_jitter, morphology, stray_blobs, warp

BG, FG = -0.84, 0.7  # the renders' dark background and a bright object, in [-1, 1]


def square(size: int = 16, lo: int = 5, hi: int = 11) -> torch.Tensor:
    image = torch.full((3, size, size), BG)
    image[:, lo:hi, lo:hi] = FG
    return image


def test_everything_is_off_by_default():
    pixels = torch.stack([square(), square()])
    assert torch.equal(augment(pixels, AugmentConfig()), pixels)
    assert torch.equal(artefacts(pixels, AugmentConfig(blur=2.0, warp=2.0, morph=1, jitter=0.3, blobs=2)), pixels)


def test_blur_spreads_a_point_and_keeps_its_mass():
    image = torch.zeros(1, 9, 9)
    image[0, 4, 4] = 1.0
    out = blur(image, 1.0)
    assert out[0, 4, 4] < 0.25 and out[0, 4, 5] > 0.05 and out.sum().item() == pytest.approx(1.0, abs=1e-3)
    assert torch.equal(blur(image, 0.0), image)


def test_warp_bends_the_outline_but_moves_little():
    torch.manual_seed(0)
    image = square()
    out = warp(image, 1.5)
    changed = (out - image).abs().amax(dim=0) > 0.05  # (H, W)
    near_outline = torch.zeros(16, 16, dtype=torch.bool)
    near_outline[2:14, 2:14] = True
    assert changed.any() and not (changed & ~near_outline).any()
    assert (out[0] > 0).float().sum().item() == pytest.approx(36, abs=10)  # the object keeps about its area
    assert out[:, 0, 0].tolist() == pytest.approx([BG] * 3)  # what moves in is background
    assert torch.equal(warp(image, 0.0), image)


def test_closing_fills_a_bite_and_opening_removes_a_spur():
    bitten = square()
    bitten[:, 5, 7] = BG  # a one-pixel bite out of the top edge
    assert torch.equal(morphology(bitten, 1, close=True), square())
    spur = square()
    spur[:, 4, 7] = FG  # a one-pixel spur on the top edge
    assert torch.equal(morphology(spur, 1, close=False), square())


def test_color_jitter_changes_the_colour_not_the_layout():
    torch.manual_seed(0)
    image = square()
    image[0, 5:11, 5:11] = 0.9  # a reddish object
    out = color_jitter(image, 0.4)
    assert not torch.allclose(out[:, 8, 8], image[:, 8, 8], atol=0.02)
    assert ((out - image).abs() > 1e-4).any() and out.min() >= -1 and out.max() <= 1
    inside = (out - out[:, :1, :1]).abs().amax(dim=0) > 0.2  # differs from the background: still the square
    assert inside.sum().item() == 36


def test_stray_blobs_add_a_few_small_specks():
    torch.manual_seed(1)
    image = torch.full((3, 16, 16), BG)
    out = stray_blobs(image, 2)
    touched = ((out - image).abs().amax(dim=0) > 1e-6).sum().item()
    assert 2 <= touched <= 2 * 16  # each disc has radius 0.5-1.5 px: at most about 8 pixels covered
    assert out.min() >= -1 and out.max() <= 1


def test_artefact_prob_picks_that_share_per_artefact():
    torch.manual_seed(0)
    pixels = torch.stack([square()] * 200)
    out = artefacts(pixels, AugmentConfig(artefact_prob=0.3, blobs=1))
    changed = (out != pixels).flatten(1).any(dim=1).float().mean().item()
    assert changed == pytest.approx(0.3, abs=0.08)
    both = artefacts(pixels, AugmentConfig(artefact_prob=0.3, blobs=1, blur=1.0))
    assert (both != pixels).flatten(1).any(dim=1).float().mean().item() == pytest.approx(1 - 0.7**2, abs=0.1)


def test_augment_keys_are_config_keys_with_ranges(tmp_path):
    from caption.train import CaptionConfig
    from gen.core import config as config_io
    from gen.core.config import ConfigError

    cfg = config_io.load(CaptionConfig, None, ["augment.artefact_prob=0.5", "augment.morph=1", "augment.blur=0.8"])
    assert cfg.augment.artefact_prob == 0.5 and cfg.augment.morph == 1 and cfg.augment.warp == 0.0
    with pytest.raises(ConfigError, match="augment.blur"):
        config_io.load(CaptionConfig, None, ["augment.blur=-1"])
    with pytest.raises(ConfigError, match="augment.artefact_prob"):
        config_io.load(CaptionConfig, None, ["augment.artefact_prob=2"])


def test_color_jitter_keeps_every_palette_colour_its_name():
    import numpy as np

    from gen.domains.shapes.world import COLORS, ShapeSpec, analyse, render

    torch.manual_seed(0)
    for name in COLORS:
        image = torch.tensor(np.asarray(render([ShapeSpec(name, "square", "center")], 32, np.random.default_rng(0))),
                             dtype=torch.float32).permute(2, 0, 1) / 127.5 - 1
        for _ in range(5):
            out = ((color_jitter(image, 0.3) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
            assert analyse(out)["color"] == name
