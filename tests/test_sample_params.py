"""What drew each image of `gen sample`: its PNG's parameters, --negative-prompt, --scheduler and --from-png.

Real tiny models throughout (conftest.py): the random tiny pipeline, saved as a model folder where the command
line needs one. PNGs from elsewhere are untrusted, so every malformed one must be a one-line error naming it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerDiscreteScheduler
from PIL import Image, PngImagePlugin

from gen.__main__ import main as gen_main
from gen.core.errors import UserError
from gen.generator.png_params import MAX_CHUNK, MAX_PROMPT, DrawParams, model_label, read_params, save_png
from gen.generator.rerank import RandomScorer
from gen.generator.sample import generate_images, sample_to_folder
from gen.generator.schedulers import scheduler_names, with_scheduler
from conftest import one_error_line

PROMPT = "a red circle on the left"
OTHER = "a blue square at the top"
OWN = "DPMSolverMultistepScheduler"  # the tiny pipeline's sampler, as `gen train` exports it


@pytest.fixture
def model(tiny_pipe, tmp_path) -> Path:
    """The tiny pipeline saved as a run's model folder; without a roundtrip config it samples 20 steps at 3."""
    folder = tmp_path / "run" / "model"
    tiny_pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def sample_cli(model: Path, out: Path, *args: str) -> int:
    return gen_main(["sample", str(model), "--steps", "2", "--out", str(out), *args])


def rows_of(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=int)


def only_image(folder: Path) -> np.ndarray:
    [row] = rows_of(folder)
    return pixels(folder / row["file_name"])


# ---------------------------------------------------------------- parameters in every PNG


def test_every_sampled_png_carries_what_drew_it(model, tmp_path):
    out = tmp_path / "s"
    assert sample_cli(model, out, "--prompt", PROMPT, "--num-per-prompt", "2", "--seed", "7", "--guidance", "4",
                      "--negative-prompt", OTHER) == 0
    rows = rows_of(out)
    assert [(r["file_name"], r["negative_prompt"], r["scheduler"]) for r in rows] == [
        ("00000-seed7.png", OTHER, OWN), ("00001-seed8.png", OTHER, OWN)]
    for row in rows:
        assert read_params(out / row["file_name"]) == DrawParams(
            prompt=PROMPT, seed=row["seed"], steps=2, guidance=4.0, negative_prompt=OTHER, scheduler=OWN,
            model="run/model")
    assert "roundtrip" not in Image.open(out / "grid.png").text  # a preview of many images draws none of them


def test_from_png_draws_the_same_pixels_again(model, tmp_path):
    """A stochastic sampler and a negative prompt, so every parameter the PNG carries has to be used."""
    first = tmp_path / "first"
    assert sample_cli(model, first, "--prompt", PROMPT, "--prompt", OTHER, "--seed", "3", "--negative-prompt",
                      "a green triangle", "--scheduler", "EulerAncestralDiscreteScheduler") == 0
    sources = [first / r["file_name"] for r in rows_of(first)]
    again = tmp_path / "again"
    assert gen_main(["sample", str(model), "--from-png", *map(str, sources), "--out", str(again)]) == 0
    rows = rows_of(again)
    assert [r["redrawn_from"] for r in rows] == ["00000-seed3.png", "00001-seed4.png"]
    for source, row in zip(sources, rows):
        assert read_params(again / row["file_name"]) == read_params(source)
        assert np.abs(pixels(again / row["file_name"]) - pixels(source)).max() <= 1  # 1/255: float rounding

    changed = tmp_path / "changed"  # flags given replace the PNG's own values
    assert gen_main(["sample", str(model), "--from-png", str(sources[0]), "--steps", "3", "--scheduler", OWN,
                     "--negative-prompt", "", "--out", str(changed)]) == 0
    assert read_params(changed / "00000-seed3.png") == DrawParams(PROMPT, 3, 3, 3.0, "", OWN, "run/model")
    assert np.abs(only_image(changed) - pixels(sources[0])).max() > 10


def test_from_png_refuses_flags_that_set_what_the_png_gives(model, tmp_path, capsys):
    png = tmp_path / "in.png"
    save_png(Image.new("RGB", (8, 8)), png, DrawParams(PROMPT, 1, 2, 3.0))
    for extra in (["--seed", "4"], ["--num-per-prompt", "2"], ["--rerank", "random", "--candidates", "2"]):
        assert gen_main(["sample", str(model), "--from-png", str(png), "--out", str(tmp_path / "o"), *extra]) == 2
        assert one_error_line(capsys).startswith("error: --from-png draws each PNG once with the seed it carries")
    with pytest.raises(SystemExit):  # argparse: --from-png and --prompt are one choice
        gen_main(["sample", str(model), "--from-png", str(png), "--prompt", PROMPT])
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- --negative-prompt


def test_a_negative_prompt_changes_the_image_and_is_recorded(tiny_pipe, tmp_path):
    plain = sample_to_folder(tiny_pipe, [PROMPT], tmp_path / "plain", steps=2, seed=5)
    steered = sample_to_folder(tiny_pipe, [PROMPT], tmp_path / "steered", steps=2, seed=5, negative_prompt=OTHER)
    assert "negative_prompt" not in rows_of(plain)[0]  # rows without one read as before
    assert rows_of(steered)[0]["negative_prompt"] == OTHER
    assert read_params(plain / "00000-seed5.png").negative_prompt == ""
    assert read_params(steered / "00000-seed5.png").negative_prompt == OTHER
    assert np.abs(only_image(plain) - only_image(steered)).max() > 10


def test_best_of_n_keeps_a_candidate_drawn_with_the_negative_prompt(tiny_pipe, tmp_path):
    out = sample_to_folder(tiny_pipe, [PROMPT], tmp_path / "best", steps=2, seed=5, candidates=3,
                           scorer=RandomScorer(0), negative_prompt=OTHER)
    [row] = rows_of(out)
    assert row["negative_prompt"] == OTHER and row["seed"] == 5 + row["kept"]
    [alone] = generate_images(tiny_pipe, [(PROMPT, row["seed"])], 2, 3.0, 1, OTHER)
    assert np.abs(np.asarray(alone, dtype=int) - pixels(out / row["file_name"])).max() <= 1


def test_a_negative_prompt_longer_than_a_png_holds_is_refused_up_front(model, tmp_path, capsys):
    assert sample_cli(model, tmp_path / "s", "--prompt", PROMPT, "--negative-prompt", "x" * (MAX_PROMPT + 1)) == 2
    assert f"--negative-prompt is {MAX_PROMPT + 1} characters long; at most {MAX_PROMPT}" in one_error_line(capsys)
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------- --scheduler


def test_scheduler_by_name_changes_the_image_and_is_recorded(model, tmp_path):
    """4 steps: below 3, DPM-Solver++ takes only first-order steps, which are Euler's (Lu et al. 2022)."""
    own, euler = tmp_path / "own", tmp_path / "euler"
    assert sample_cli(model, own, "--prompt", PROMPT, "--steps", "4") == 0
    assert sample_cli(model, euler, "--prompt", PROMPT, "--steps", "4", "--scheduler", "EulerDiscreteScheduler") == 0
    assert rows_of(own)[0]["scheduler"] == OWN
    assert rows_of(euler)[0]["scheduler"] == "EulerDiscreteScheduler"
    assert read_params(euler / "00000-seed0.png").scheduler == "EulerDiscreteScheduler"
    assert np.abs(only_image(own) - only_image(euler)).max() > 10


@pytest.mark.parametrize("name", ["NoSuchScheduler", "EDMEulerScheduler", "UNet2DConditionModel", "os.system", ""])
def test_a_scheduler_that_cannot_sample_the_model_lists_those_that_can(name, model, tmp_path, capsys):
    """Checked against the saved scheduler config, before the model loads."""
    assert sample_cli(model, tmp_path / "s", "--prompt", PROMPT, "--scheduler", name) == 2
    line = one_error_line(capsys)
    assert f"scheduler {name!r} cannot sample this model; choose one of: DDIMScheduler, DDPMScheduler, " in line
    offered = line.split("choose one of: ")[1].split(", ")
    assert "EulerDiscreteScheduler" in offered and "EDMEulerScheduler" not in offered
    assert not (tmp_path / "s").exists()


def test_scheduler_names_are_diffusers_compatibles_that_use_the_betas(tiny_pipe):
    names = scheduler_names(tiny_pipe)
    assert names == sorted(names)
    assert {OWN, "DDIMScheduler", "DDPMScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler",
            "HeunDiscreteScheduler", "UniPCMultistepScheduler"} <= set(names)
    # EDM's ignores the trained betas; the SDE solver draws noise no seed reproduces.
    assert not {"EDMEulerScheduler", "DPMSolverSDEScheduler"} & set(names)
    with pytest.raises(UserError, match="'FlaxDDIMScheduler' cannot sample this model; choose one of: DDIM"):
        with_scheduler(tiny_pipe, "FlaxDDIMScheduler")


def test_with_scheduler_leaves_the_callers_pipeline_as_it_was(tiny_pipe):
    euler = with_scheduler(tiny_pipe, "EulerDiscreteScheduler")
    assert type(euler.scheduler) is EulerDiscreteScheduler and type(tiny_pipe.scheduler) is DPMSolverMultistepScheduler
    assert euler.config["scheduler"][1] == "EulerDiscreteScheduler" and tiny_pipe.config["scheduler"][1] == OWN
    assert euler.unet is tiny_pipe.unet  # weights shared, not copied
    assert euler.scheduler.config.prediction_type == tiny_pipe.scheduler.config.prediction_type == "v_prediction"
    assert euler.scheduler.config.timestep_spacing == "trailing"  # the model's own config, not Euler's defaults
    assert type(with_scheduler(euler, "DDIMScheduler").scheduler) is DDIMScheduler


@pytest.mark.parametrize("name", ["DDPMScheduler", "EulerAncestralDiscreteScheduler", "KDPM2AncestralDiscreteScheduler",
                                  "HeunDiscreteScheduler", "UniPCMultistepScheduler"])
def test_every_offered_scheduler_draws_the_same_image_from_the_same_seed(name, tiny_pipe):
    """Stochastic samplers (DDPM, the ancestral ones) take their noise from the per-image generators."""
    drawer = with_scheduler(tiny_pipe, name)
    first, again = (generate_images(drawer, [(PROMPT, 4), (OTHER, 9)], 3, 3.0, 2) for _ in range(2))
    for a, b in zip(first, again):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    [alone] = generate_images(drawer, [(OTHER, 9)], 3, 3.0, 1)  # one seed per image: batch-mates do not matter
    assert np.abs(np.asarray(alone, dtype=int) - np.asarray(first[1], dtype=int)).max() <= 1


# ---------------------------------------------------------------- untrusted PNGs


def png_with_chunk(path: Path, text: str, keyword: str = "roundtrip") -> Path:
    info = PngImagePlugin.PngInfo()
    info.add_itxt(keyword, text)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    return path


GOOD = {"prompt": PROMPT, "seed": 1, "steps": 2, "guidance": 3.0}


WHOLE = "must be a whole number from {} to 9223372036854775807, not "


def with_field(name: str, value: object) -> str:
    return json.dumps({**GOOD, name: value})


@pytest.mark.parametrize("text, named", [
    ("not json", "the 'roundtrip' PNG text chunk is not JSON"),
    ("[" * 5000, "the 'roundtrip' PNG text chunk is not JSON"),  # nested past Python's recursion limit
    ("x" * (MAX_CHUNK + 1), f"the 'roundtrip' PNG text chunk is over {MAX_CHUNK} bytes"),
    ('["a red circle"]', "the generation parameters are not a JSON object"),
    (with_field("command", "rm -rf /"), "unknown generation parameter 'command'"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "seed"}), "the generation parameters lack 'seed'"),
    (with_field("seed", "1"), "generation parameter 'seed' " + WHOLE.format(0) + "'1'"),
    (with_field("seed", -1), "generation parameter 'seed' " + WHOLE.format(0) + "-1"),
    (with_field("seed", 2**64), "generation parameter 'seed' " + WHOLE.format(0) + str(2**64)),
    (with_field("steps", True), "generation parameter 'steps' " + WHOLE.format(1) + "True"),
    (with_field("steps", 0), "generation parameter 'steps' " + WHOLE.format(1) + "0"),
    (with_field("steps", list(range(999))), "generation parameter 'steps' " + WHOLE.format(1)
     + "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11..."),  # a bad value is quoted, cut short
    (with_field("guidance", "3"), "generation parameter 'guidance' must be a finite number, not '3'"),
    (json.dumps(GOOD).replace("3.0", "NaN"), "generation parameter 'guidance' must be a finite number, not nan"),
    (with_field("prompt", 7), "generation parameter 'prompt' must be UTF-8 text of at most 2000 characters"),
    (with_field("prompt", "\ud800"), "generation parameter 'prompt' must be UTF-8 text"),  # a lone surrogate
    (with_field("negative_prompt", "x" * (MAX_PROMPT + 1)), "generation parameter 'negative_prompt' must be UTF-8"),
    (with_field("scheduler", None), "generation parameter 'scheduler' must be UTF-8 text"),
])
def test_a_malformed_chunk_is_a_user_error_naming_the_file(text, named, tmp_path):
    path = png_with_chunk(tmp_path / "bad.png", text)
    with pytest.raises(UserError) as err:
        read_params(path)
    assert str(err.value).startswith(f"{path}: {named}")


def truncated_png(path: Path) -> Path:
    png_with_chunk(path, json.dumps(GOOD))
    path.write_bytes(path.read_bytes()[:60])
    return path


@pytest.mark.parametrize("make, named", [
    (lambda p: png_with_chunk(p, json.dumps(GOOD), keyword="parameters"), "the image holds no generation parameters"),
    (lambda p: Image.new("RGB", (8, 8)).save(p, format="JPEG"), "the image holds no generation parameters"),
    (lambda p: p.write_text("a red circle"), "not a readable PNG (UnidentifiedImageError"),
    (truncated_png, "not a readable PNG"),
    (lambda p: p.mkdir(), "not a readable PNG"),
    (lambda p: None, "not a readable PNG (FileNotFoundError"),
])
def test_a_file_without_readable_parameters_is_a_user_error_naming_it(make, named, tmp_path):
    path = tmp_path / "in.png"
    make(path)
    with pytest.raises(UserError) as err:
        read_params(path)
    assert str(err.value).startswith(f"{path}: {named}")


def test_from_png_with_a_bad_png_is_one_line_before_the_model_loads(model, tmp_path, capsys):
    good = tmp_path / "good.png"
    save_png(Image.new("RGB", (8, 8)), good, DrawParams(PROMPT, 1, 2, 3.0))
    bad = png_with_chunk(tmp_path / "bad.png", json.dumps({**GOOD, "guidance": [3]}))
    assert gen_main(["sample", str(model), "--from-png", str(good), str(bad), "--out", str(tmp_path / "o")]) == 2
    assert one_error_line(capsys) == f"error: {bad}: generation parameter 'guidance' must be a finite number, not [3]"
    elsewhere = png_with_chunk(tmp_path / "elsewhere.png", json.dumps({**GOOD, "steps": 5000}))
    assert gen_main(["sample", str(model), "--from-png", str(elsewhere), "--out", str(tmp_path / "o")]) == 2
    assert one_error_line(capsys).startswith(f"error: {elsewhere}: --steps 5000 is more than the model's 1000 noise")
    assert not (tmp_path / "o").exists()


def test_save_png_never_writes_what_a_reader_would_refuse(tmp_path):
    path = tmp_path / "long.png"
    with pytest.raises(UserError, match="'prompt' must be UTF-8 text of at most 2000 characters"):
        save_png(Image.new("RGB", (8, 8)), path, DrawParams("x" * (MAX_PROMPT + 1), 1, 2, 3.0))
    assert not path.exists()
    widest = DrawParams(*["\x01" * MAX_PROMPT] * 1, 2**63 - 1, 10**6, -1e300, *["\x01" * MAX_PROMPT] * 3)
    save_png(Image.new("RGB", (8, 8)), path, widest)  # every text field full of 6-byte \u0001 escapes still fits
    assert read_params(path) == widest


def test_model_label_keeps_names_never_the_path(tmp_path):
    assert model_label("runs/demo/gen/model") == "gen/model"
    assert model_label(tmp_path / "my-model") == "my-model"
    assert model_label("runs/demo/gen/model", "runs/demo/gen/checkpoints/checkpoint-200") == "gen/model (checkpoint-200)"
