"""Best-of-N finds the captioner by entry point: gen names no judging package, yet `--rerank` reaches caption's."""
from __future__ import annotations

import pytest
from PIL import Image

from gen.core.errors import UserError
from gen.generator.rerank import load_scorer


def test_the_installed_captioner_is_found_by_name_and_scores_images(captioner_dir):
    scorer = load_scorer("captioner", model_dir=captioner_dir, kind="debiased", device="cpu", domain="plain")
    assert type(scorer).__module__ == "caption.judge.scorer" and scorer.name == "judge:debiased"
    images = [Image.new("RGB", (16, 16), color) for color in ("red", "blue")]
    scores = scorer(images, ["a red circle on the left", "a blue square at the top"])
    assert len(scores) == 2 and all(isinstance(s, float) and s < 0 for s in scores)  # log-likelihoods


def test_an_unknown_scorer_name_lists_the_installed_ones():
    with pytest.raises(UserError, match=r"no scorer named 'oracle' is installed .*captioner"):
        load_scorer("oracle")
