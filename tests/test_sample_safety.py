"""`gen sample` and `caption meta-eval` under misuse: a busy --out, --overwrite next to other files, bad or
unbounded arguments, and a run stopped part way. Real tiny models throughout; every refusal is one line."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from caption.__main__ import main as caption_main
from gen.__main__ import main as gen_main
from gen.core.outputs import OutputExists
from gen.generator.sample import IMAGE_NAME, sample_to_folder
from gen.training.rundir import LOCK_NAME, RunDirLock
from conftest import one_error_line

PROMPT = "a red circle on the left"
MANIFEST = ".gen_sample_manifest.txt"  # the name README and `gen sample --help` give users


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def rows_of(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]


def sample_cli(model: Path, out: Path, *args: str) -> int:
    return gen_main(["sample", str(model), "--prompt", PROMPT, "--steps", "1", "--out", str(out), *args])


# ---------------------------------------------------------------- one run per --out


def test_sample_into_a_folder_another_run_is_writing_is_refused(gen_run, tmp_path, capsys):
    """The lock is the run folders' own, held here as a second process would hold it."""
    out = tmp_path / "s"
    out.mkdir()
    with RunDirLock(out):
        for extra in ([], ["--overwrite"]):
            assert sample_cli(gen_run / "model", out, *extra) == 2
            line = one_error_line(capsys)
            assert f"{out} is in use by a running process (pid {os.getpid()} on " in line
        assert listing(out) == [LOCK_NAME]  # nothing written beside the holder's lock
    assert sample_cli(gen_run / "model", out) == 0  # free again once the holder lets go
    assert [r["file_name"] for r in rows_of(out)] == ["00000-seed0.png"]


def test_samples_one_after_another_with_overwrite_each_take_and_release_the_lock(gen_run, tmp_path):
    out = tmp_path / "s"
    for seed in ("3", "9"):
        assert sample_cli(gen_run / "model", out, "--seed", seed, "--overwrite") == 0
        assert LOCK_NAME not in listing(out)
    assert listing(out) == sorted([MANIFEST, "00000-seed9.png", "grid.png", "info.json", "metadata.jsonl"])
    assert [(r["file_name"], r["seed"]) for r in rows_of(out)] == [("00000-seed9.png", 9)]


# ---------------------------------------------------------------- --overwrite deletes only what it wrote


def test_overwrite_never_deletes_files_gen_sample_did_not_write(tiny_pipe, tmp_path):
    """A copy of a training run used as --out: its summary.json, config and the user's info.json survive."""
    out = tmp_path / "run_copy"
    out.mkdir()
    theirs = {"summary.json": '{"train": {"steps": 30}}', "config.yaml": "train: {}\n", "info.json": '{"user": 1}'}
    for name, text in theirs.items():
        (out / name).write_text(text)
    # info.json is a name gen sample writes (a domain's declaration): no manifest lists it, so it is refused.
    with pytest.raises(OutputExists, match=f"holds info.json, which `gen sample` would write but .*{MANIFEST}"):
        sample_to_folder(tiny_pipe, [PROMPT], out, steps=1, overwrite=True, domain="shapes")
    assert {p.name: p.read_text() for p in out.iterdir()} == theirs
    shutil.move(out / "info.json", tmp_path / "info.json")
    del theirs["info.json"]

    sample_to_folder(tiny_pipe, [PROMPT], out, num_per_prompt=2, steps=1, overwrite=True, domain="shapes")
    wrote = ["00000-seed0.png", "00001-seed1.png", "grid.png", "info.json", "metadata.jsonl"]
    assert (out / MANIFEST).read_text().splitlines() == ["metadata.jsonl", "info.json", "00000-seed0.png",
                                                         "00001-seed1.png", "grid.png"]
    assert listing(out) == sorted([MANIFEST, "config.yaml", "summary.json", *wrote])

    # A second --overwrite removes the first run's files (its manifest's) and nothing else.
    sample_to_folder(tiny_pipe, [PROMPT], out, steps=1, seed=5, overwrite=True)
    assert listing(out) == sorted([MANIFEST, "00000-seed5.png", "config.yaml", "grid.png", "metadata.jsonl",
                                   "summary.json"])
    assert {name: (out / name).read_text() for name in theirs} == theirs

    # A PNG named like gen sample's that no manifest lists is someone's image: refused, not replaced.
    Image.new("RGB", (8, 8), "red").save(out / "00007-seed7.png")
    with pytest.raises(OutputExists, match="holds 00007-seed7.png"):
        sample_to_folder(tiny_pipe, [PROMPT], out, steps=1, overwrite=True)
    assert (out / "00007-seed7.png").is_file() and (out / "00000-seed5.png").is_file()


# ---------------------------------------------------------------- bad and unbounded arguments


LIMIT = 1000  # configs/gen/tiny.yaml keeps the default diffusion.num_train_timesteps
LAST_SEED = 2**63 - 1 - 1  # one image, one candidate


@pytest.mark.parametrize("args, named", [
    (["--steps", "5000"], f"--steps 5000 is more than the model's {LIMIT} noise levels"),  # was an IndexError
    (["--seed", "100000000000000000000000"], f"--seed must be in [0, {LAST_SEED}]"),  # was an overflow
    (["--seed", "-1"], f"--seed must be in [0, {LAST_SEED}]"),
    (["--guidance", "1e308"], "--guidance 1e+308 is above 100"),  # was accepted: an all-black PNG
    (["--device", "bogus"], "--device 'bogus' is not a device"),
    pytest.param(["--device", "cuda"], "--device cuda: this machine has no usable CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
])
def test_bad_sample_arguments_are_one_line_errors(args, named, gen_run, tmp_path, capsys):
    out = tmp_path / "o"
    assert sample_cli(gen_run / "model", out, *args) == 2
    assert named in one_error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("args, named", [
    (["--num-per-prompt", "100001"], "1 prompt(s) × --num-per-prompt 100001 = 100001 images; one run makes at most "
                                     "100000"),
    (["--prompt", "a blue square at the top", "--num-per-prompt", "50001"], "= 100002 images"),
    (["--candidates", "65", "--rerank", "random"], "--candidates 65: at most 64"),
    (["--steps", "1001"], f"--steps 1001 is more than the model's {LIMIT} noise levels"),
])
def test_sample_work_is_bounded_before_the_model_loads(args, named, gen_run, tmp_path, capsys):
    """This model folder holds only the scheduler's config: a refusal here cannot have loaded any weights."""
    bare = tmp_path / "bare"
    shutil.copytree(gen_run / "model" / "scheduler", bare / "scheduler")
    assert sample_cli(bare, tmp_path / "o", *args) == 2
    assert named in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- bounded grid, consistent stopped runs


@pytest.mark.parametrize("count, size", [(40, (72, 62)), (70, (82, 82))])
def test_grid_is_near_square_and_shows_at_most_64_images(count, size, tiny_pipe, tmp_path):
    """8 px images, 2 px padding: 40 images are 7 columns × 6 rows; 70 show their first 64 as 8 × 8."""
    out = sample_to_folder(tiny_pipe, [PROMPT], tmp_path / "s", num_per_prompt=count, steps=1, batch_size=64)
    assert len(rows_of(out)) == count
    assert Image.open(out / "grid.png").size == size


class StopsAfter:
    """A scorer that fails on its call number `calls` + 1, as a run killed part way through would stop."""

    name = "stops"

    def __init__(self, calls: int) -> None:
        self.calls = calls

    def __call__(self, images, prompts) -> list[float]:
        if self.calls == 0:
            raise RuntimeError("stopped")
        self.calls -= 1
        return [float(k) for k in range(len(images))]


def test_a_stopped_run_leaves_a_metadata_row_for_every_image(tiny_pipe, tmp_path):
    out = tmp_path / "s"
    with pytest.raises(RuntimeError, match="stopped"):  # 2 candidates in batches of 2: one image per scorer call
        sample_to_folder(tiny_pipe, [PROMPT], out, num_per_prompt=5, steps=1, batch_size=2, candidates=2,
                         scorer=StopsAfter(3))
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == ["00000-seed1.png", "00001-seed3.png", "00002-seed5.png"]  # candidate k = 1 scores highest
    assert [r["file_name"] for r in rows_of(out)] == pngs
    assert (out / MANIFEST).read_text().splitlines() == ["metadata.jsonl", *pngs]
    assert LOCK_NAME not in listing(out)
    # The stopped run's files are listed, so --overwrite replaces them all.
    sample_to_folder(tiny_pipe, [PROMPT], out, steps=1, seed=8, overwrite=True)
    assert sorted(p.name for p in out.glob("*.png")) == ["00000-seed8.png", "grid.png"]
    assert all(IMAGE_NAME.match(r["file_name"]) for r in rows_of(out))


# ---------------------------------------------------------------- caption meta-eval


@pytest.mark.parametrize("args, named", [
    (["--count", "-5"], "--count must be at least 1 render, not -5"),  # was a RuntimeError
    (["--count", "0"], "--count must be at least 1 render, not 0"),
    (["--size", "0"], "--size must be at least 8 pixels"),
    (["--seed", "-1"], "--seed must be a whole number ≥ 0"),
])
def test_meta_eval_refuses_nonsense_numbers(args, named, captioner_dir, tmp_path, capsys):
    assert caption_main(["meta-eval", str(captioner_dir), "--out", str(tmp_path / "m.json"), *args]) == 2
    assert named in one_error_line(capsys)
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("args, named", [
    (["--seed", "-1"], "--seed must be a whole number ≥ 0, not -1"),
    (["--guidance", "nan"], "--guidance must be a finite number ≥ 0"),
])
def test_meta_eval_on_generated_images_refuses_nonsense_numbers_up_front(args, named, tmp_path, capsys):
    """Refused before either model folder is opened (neither exists here)."""
    argv = ["meta-eval", str(tmp_path / "captioner"), "--generated", str(tmp_path / "gen"), *args]
    assert caption_main(argv) == 2
    assert named in one_error_line(capsys)


def test_meta_eval_never_replaces_an_existing_out(captioner_dir, tmp_path, capsys):
    precious = tmp_path / "precious.json"
    precious.write_text('{"keep": true}')
    assert caption_main(["meta-eval", str(captioner_dir), "--count", "2", "--out", str(precious)]) == 2
    assert f"{precious} already exist(s), from an earlier `caption meta-eval`" in one_error_line(capsys)
    assert precious.read_text() == '{"keep": true}'
