"""Binding is real: swapping a prompt's two colour words swaps the two colours in the image, through cross-attention.

The world, written here: a triangle on the left and a square on the right (16 px), each in one of three colours, with
captions such as "a red triangle and a blue square". Its twin, "a blue triangle and a red square", has the same
words, so only a model that binds each colour word to its own shape draws both right (gen/evaluate/binding.py).
Two tiny generators are trained on it with the real training code (configs/gen/tiny_binding.yaml): one with the
prompt's token states by cross-attention, one with the same config but no cross-attention block anywhere (down,
up and mid), so that the prompt reaches the UNet only pooled, on the timestep embedding.

Why the pooled-only model fails by construction, not by bad luck: the mean of a causal GPT-2's token states is not
order-invariant (later tokens mix in earlier words, and the layer norm is not linear), so a pooled prompt could
carry which colour came first. The text encoder here is a frozen GPT-2 with no layers whose word and place
embeddings lie in orthogonal, zero-mean subspaces, each of one fixed length. Every token's state is its word plus
its place, which cross-attention can use to tell the first colour from the second; and every state has the same
norm, so the final layer norm divides all of them by one number, and their mean is (sum of words + sum of places)
over a constant: the same vector for a prompt and its twin. The pooled-only UNet so gets one condition for both
twins and draws one image from one seed, and an image of one triangle and one square cannot be right for both
prompts: its swap rate is 0, whatever it learnt. Training is seeded and in fp32, so both runs repeat exactly.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import ROOT
from transformers import GPT2Config, GPT2Model

from gen import domains
from gen.data.tokenizer import train_tokenizer
from gen.domains.scenes.world import Thing, render
from gen.evaluate.binding import binding_swaps, judge_twins, shares, twin, twin_rows
from gen.generator.pipeline import TextToImagePipeline, unet_conditioning
from gen.generator.sample import generate_images
from gen.generator.train import train

CONFIG = ROOT / "configs" / "gen" / "tiny_binding.yaml"
COLORS = ("red", "green", "blue")
SIZE, SIDE = 16, 0.38  # at 16 px the oracle reads a triangle and a square this big without doubt; a circle it does not
POOLED_ONLY = ["unet.down_block_types=[DownBlock2D,DownBlock2D]", "unet.up_block_types=[UpBlock2D,UpBlock2D]",
               "unet.mid_block_type=UNetMidBlock2D"]  # the default mid block cross-attends too
PER_PROMPT = 8


def caption(left: str, right: str) -> str:
    return f"a {left} triangle and a {right} square"


PAIRS = [(caption(a, b), caption(b, a)) for a, b in itertools.combinations(COLORS, 2)]  # each prompt and its twin
PROMPTS = [prompt for prompt, _ in PAIRS]


def write_world(folder: Path) -> Path:
    """Every ordered pair of COLORS as one image, its rows repeated so that a batch never holds one image twice."""
    (folder / "images").mkdir(parents=True)
    rows = []
    for i, (left, right) in enumerate(itertools.permutations(COLORS, 2)):
        name = f"images/{i}.png"
        render([Thing(left, "triangle", 0.25, 0.5, SIDE), Thing(right, "square", 0.75, 0.5, SIDE)], SIZE).save(folder / name)
        rows.append({"file_name": name, "text": caption(left, right)})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows * 10))
    domains.declare(folder, "scenes")
    return folder


def bag_of_words_gpt2(folder: Path, texts: list[str], width: int = 32, places: int = 16, word_dims: int = 20,
                      seed: int = 0) -> Path:
    """A GPT-2 with no layers whose token states carry word and place but whose mean is a bag of words (see above),
    saved with its tokenizer as a `text.pretrained` folder."""
    tokenizer = train_tokenizer(texts, vocab_size=300)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=places, n_embd=width, n_layer=0, n_head=2,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = GPT2Model(config)
    generator = torch.Generator().manual_seed(seed)
    # The zero-mean directions (the layer norm subtracts each state's mean, so nothing there is lost), turned at random.
    _, vectors = torch.linalg.eigh(torch.eye(width) - 1.0 / width)  # eigenvalue 0 (the all-ones direction) first
    turn, _ = torch.linalg.qr(torch.randn(width - 1, width - 1, generator=generator))
    basis = vectors[:, 1:] @ turn  # (width, width - 1), orthonormal, each column of mean zero
    words, spots = basis[:, :word_dims], basis[:, word_dims:]

    def unit_rows(subspace: torch.Tensor, n: int) -> torch.Tensor:
        rows = torch.randn(n, subspace.shape[1], generator=generator) @ subspace.T  # (n, width)
        return rows / rows.norm(dim=1, keepdim=True)

    with torch.no_grad():
        model.wte.weight.copy_(unit_rows(words, len(tokenizer)))
        model.wpe.weight.copy_(unit_rows(spots, places))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder, text encoder folder)."""
    root = tmp_path_factory.mktemp("binding_world")
    texts = [caption(a, b) for a, b in itertools.permutations(COLORS, 2)]
    return write_world(root / "data"), bag_of_words_gpt2(root / "encoder", texts)


def trained(world: tuple[Path, Path], run_dir: Path, extra: list[str]) -> TextToImagePipeline:
    data, encoder = world
    model = train(CONFIG, out=run_dir, overrides=[f"data.path={data}", f"text.pretrained={encoder}", *extra])
    pipe = TextToImagePipeline.from_pretrained(model).for_sampling("cpu")
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def with_tokens(world, tmp_path_factory) -> TextToImagePipeline:
    return trained(world, tmp_path_factory.mktemp("with_tokens"), [])


@pytest.fixture(scope="module")
def pooled_only(world, tmp_path_factory) -> TextToImagePipeline:
    return trained(world, tmp_path_factory.mktemp("pooled_only"), POOLED_ONLY)


def cross_attends(pipe: TextToImagePipeline) -> bool:
    return any(getattr(m, "is_cross_attention", False) for m in pipe.unet.modules())


@pytest.mark.timeout(300)
def test_the_pooled_prompt_is_the_same_for_twins_while_token_states_differ(with_tokens):
    twins = [caption("red", "green"), caption("green", "red"), caption("red", "blue")]  # the last: a colour changed
    states, mask = with_tokens.encode_prompt(twins)  # (3, T, D), (3, T)
    pooled = unet_conditioning(with_tokens.unet, states, mask)["class_labels"]  # (3, D), what the timestep gets
    norm = pooled[0].norm()
    assert (pooled[0] - pooled[1]).norm() < 1e-5 * norm
    assert (pooled[0] - pooled[2]).norm() > 0.05 * norm
    differ = ((states[0] - states[1]).norm(dim=-1) > 1.0).nonzero().flatten().tolist()
    assert len(differ) == 2  # the two colour words' states, one at each place


@pytest.mark.timeout(300)
def test_with_token_states_swapping_the_colour_words_swaps_the_colours(with_tokens):
    assert cross_attends(with_tokens)
    report = binding_swaps(with_tokens, PROMPTS, per_prompt=PER_PROMPT)
    colours = report["color_attr"]
    assert colours["pairs"] == 3 and colours["images"] == 3 * PER_PROMPT
    assert [(r["prompt"], r["twin"]) for r in colours["rows"]] == PAIRS
    assert colours["swapped"] >= 0.9, colours
    assert colours["right"] >= 0.9 and colours["crossed"] <= 0.05, colours
    assert report["position"]["pairs"] == 0


@pytest.mark.timeout(300)
def test_with_the_pooled_prompt_alone_the_colours_never_trade_places(pooled_only):
    assert not cross_attends(pooled_only)
    colours = binding_swaps(pooled_only, PROMPTS, per_prompt=PER_PROMPT)["color_attr"]
    assert colours["images"] == 3 * PER_PROMPT
    assert colours["swapped"] == 0.0, colours
    # Why: one condition for both twins, so one image from one seed, right for the prompt exactly when for its twin
    # (up to the last bit of a float sum, which may at most move a pixel by one level, as checked below).
    assert abs(colours["crossed"] - colours["right"]) <= 1 / (2 * colours["images"]), colours
    jobs = [(text, seed) for pair in PAIRS for text in pair for seed in (0, 1)]
    images = [np.asarray(im, dtype=int) for im in generate_images(pooled_only, jobs, 20, 3.0, 16)]
    for i in range(0, len(images), 4):
        assert np.abs(images[i] - images[i + 2]).max() <= 1 and np.abs(images[i + 1] - images[i + 3]).max() <= 1


def test_twins_are_the_domains_swap_and_flip():
    scenes = domains.get("scenes")
    assert twin(scenes, "a red circle and a blue square") == "a blue circle and a red square"
    assert twin(scenes, "a red circle to the left of a blue square") == "a red circle to the right of a blue square"
    assert twin(scenes, "there is a green triangle above a white circle") == "there is a green triangle below a white circle"
    assert twin(scenes, "a red circle") is None and twin(scenes, "two blue squares") is None
    by_task = twin_rows(scenes, scenes.benchmark())
    rows = [r for r in scenes.benchmark() if r["task"] in ("color_attr", "position")]
    # Every benchmark prompt of the two tasks has a twin, and a pair met from both sides is kept once.
    kept = [frozenset((r["prompt"], r["twin"])) for task in by_task.values() for r in task]
    assert {r["prompt"] for r in rows} <= set().union(*kept) and len(set(kept)) == len(kept)
    for r in by_task["color_attr"]:
        assert sorted(r["twin"].split()) == sorted(r["prompt"].split()) and r["twin"] != r["prompt"]
    for r in by_task["position"]:
        assert scenes.task(r["twin"]) == "position" and not scenes.same_caption(r["twin"], r["prompt"])
    assert {r["unseen"] for task in by_task.values() for r in task} == {True, False}


def test_clean_renders_swap_and_one_image_for_both_twins_never_does():
    """The scoring, on renders that show exactly what each prompt asks: every pair swaps; given the prompt's own
    render for its twin too, none does, half the images are right and the other half right for the twin."""
    scenes = domains.get("scenes")
    prompts = ["a red circle and a blue square", "a yellow triangle and a green circle",
               "a red circle to the left of a blue square", "a purple square above an orange triangle"]
    pairs = [(p, twin(scenes, p)) for p in prompts]
    rng = np.random.default_rng(0)
    images = [(scenes.render_prompt(a, 48, rng), scenes.render_prompt(b, 48, rng)) for a, b in pairs]
    assert shares([judge_twins(scenes, p, i) for p, i in zip(pairs, images)]) == {
        "images": 4, "right": 1.0, "swapped": 1.0, "crossed": 0.0}
    same = [(a, a) for a, _ in images]
    assert shares([judge_twins(scenes, p, i) for p, i in zip(pairs, same)]) == {
        "images": 4, "right": 0.5, "swapped": 0.0, "crossed": 0.5}
    assert np.isnan(shares([])["swapped"])


def test_prompts_without_a_twin_are_refused_before_any_model_is_read():
    from gen.core.errors import UserError

    with pytest.raises(UserError, match="twin"):
        binding_swaps("no/such/model", ["a red circle", "three blue squares"])
    with pytest.raises(UserError, match="per_prompt"):
        binding_swaps("no/such/model", PROMPTS, per_prompt=0)
