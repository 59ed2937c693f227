"""CLI errors: a mistake the user can fix is one `error:` line and exit status 2; `--debug` shows the
traceback; a bug in roundtrip keeps its traceback."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import CAPTION_TINY, GEN_TINY, ROOT, one_error_line

from caption.__main__ import main as caption_main
from gen.__main__ import main as gen_main
from gen.core.cli import run_cli
from gen.core.config import ConfigError
from gen.core.errors import UserError
from gen.core.outputs import dumps
from gen.domains.shapes.world import ShapeSpec, render

# ---------------------------------------------------------------- nonsense arguments


@pytest.mark.parametrize("args, named", [
    (["--steps", "-1"], "--steps must be at least 1, not -1"),
    (["--steps", "0"], "--steps must be at least 1, not 0"),  # was a ZeroDivisionError
    (["--guidance", "nan"], "--guidance must be a finite number"),
    (["--guidance", "inf"], "--guidance must be a finite number"),
    (["--guidance", "-2"], "--guidance must be a finite number ≥ 0"),
    (["--num-per-prompt", "0"], "--num-per-prompt must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
])
def test_nonsense_sampling_arguments_are_refused(args, named, tmp_path, capsys):
    """Checked before the model is loaded (this model folder does not even exist) and before --out is made."""
    argv = ["sample", str(tmp_path / "model"), "--prompt", "a red circle on the left", "--out", str(tmp_path / "o"),
            *args]
    assert gen_main(argv) == 2
    assert named in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_no_prompt_is_refused(tmp_path, capsys):
    empty = tmp_path / "prompts.txt"
    empty.write_text("\n   \n\n")
    assert gen_main(["sample", str(tmp_path), "--prompts", str(empty), "--out", str(tmp_path / "o")]) == 2
    assert "no prompts" in one_error_line(capsys)
    assert gen_main(["sample", str(tmp_path), "--prompt", " ", "--out", str(tmp_path / "o")]) == 2
    assert "prompt 1 is empty" in one_error_line(capsys)


def test_json_outputs_never_hold_nan(tmp_path, capsys):
    assert dumps({"a": float("nan"), "b": [np.float32("inf"), 1.5], "c": np.float64(2.0), "d": (1, None)}) == \
        '{"a": null, "b": [null, 1.5], "c": 2.0, "d": [1, null]}'
    # `gen oracle` over a folder without shapes prompts: accuracy of 0 images is undefined → null, not NaN.
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": "a photo of a cat"}) + "\n")
    render([ShapeSpec("red", "circle", "left")], 16, np.random.default_rng(0)).save(tmp_path / "a.png")
    assert gen_main(["oracle", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "NaN" not in out
    result = json.loads(out)
    assert result["n"] == 0 and result["all"] is None


def test_caption_score_and_search_refuse_nonsense_arguments(tmp_path, capsys):
    (tmp_path / "metadata.jsonl").write_text("")
    assert caption_main(["score", str(tmp_path), str(tmp_path), "--alpha", "nan"]) == 2
    assert "--alpha must be a finite number" in one_error_line(capsys)
    assert caption_main(["search", str(tmp_path), str(tmp_path), "a red circle", "--top", "0"]) == 2
    assert "--top must be at least 1" in one_error_line(capsys)


# ---------------------------------------------------------------- one line, no traceback


def _bad_checkpoint(tmp_path):
    ckpt = tmp_path / "run" / "checkpoints" / "checkpoint-00000002"
    ckpt.mkdir(parents=True)
    (ckpt / "state.json").write_text("{not json")
    return ckpt


def _non_utf8(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_bytes("a red circle on the left\n".encode() + b"\xff\xfe caf\xe9\n")
    return path


CASES = {
    "missing model folder": (lambda t: ["gen", "sample", str(t / "nope"), "--prompt", "a red circle", "--out",
                                        str(t / "o")], "not a generator model folder (no model_index.json)"),
    "missing captioner": (lambda t: ["caption", "describe", str(t / "nope"), str(t / "x.png")],
                          "is not a captioner folder"),
    "out is a file (sample)": (lambda t: ["gen", "sample", str(t / "nope"), "--prompt", "x", "--out",
                                          str(t / "file.txt")], "is a file, not a folder"),
    "out is a file (train)": (lambda t: ["gen", "train", str(GEN_TINY), "--out", str(t / "file.txt")],
                              "is a file, not a folder"),
    "bad --set key (gen)": (lambda t: ["gen", "train", str(GEN_TINY), "--out", str(t / "r"), "--set",
                                       "train.nope=1"], "unknown config key 'train.nope'"),
    "bad --set key (caption)": (lambda t: ["caption", "train", str(CAPTION_TINY), "--out", str(t / "r"),
                                           "--set", "model.nope=1"], "unknown config key 'model.nope'"),
    "missing config": (lambda t: ["gen", "train", str(t / "nope.yaml")], "nope.yaml: No such file or directory"),
    "corrupt --resume": (lambda t: ["gen", "train", str(GEN_TINY), "--out", str(t / "run"), "--resume",
                                    str(_bad_checkpoint(t))], "checkpoint-00000002 is unreadable (state.json"),
    "corrupt --resume latest (caption)": (lambda t: ["caption", "train", str(CAPTION_TINY), "--out",
                                                     str(_bad_checkpoint(t).parent.parent), "--resume", "latest"],
                                          "is unreadable (state.json"),
    "resume with nothing to resume": (lambda t: ["caption", "train", str(CAPTION_TINY), "--out", str(t / "r"),
                                                 "--resume", "latest"], "no checkpoint in"),
    "non-UTF-8 prompts": (lambda t: ["gen", "sample", str(t), "--prompts", str(_non_utf8(t)), "--out",
                                     str(t / "o")], "is not UTF-8 text (byte 25); save it as UTF-8"),
    "empty search query": (lambda t: ["caption", "search", str(t / "nope"), str(t), "   "], "the query is empty"),
    "no metadata to score": (lambda t: ["caption", "score", str(t / "nope"), str(t)], "has no metadata.jsonl"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_user_errors_are_one_line_without_traceback(case, tmp_path, capsys):
    (tmp_path / "file.txt").write_text("a file")
    make, expected = CASES[case]
    prog, *argv = make(tmp_path)
    assert (gen_main if prog == "gen" else caption_main)(argv) == 2
    message = one_error_line(capsys)
    assert expected in message, message


def test_debug_shows_the_traceback(tmp_path):
    """--debug re-raises the very exception, after the subcommand or before it."""
    bad = ["train", str(GEN_TINY), "--out", str(tmp_path / "r"), "--set", "train.nope=1"]
    with pytest.raises(ConfigError, match="train.nope"):
        gen_main([*bad, "--debug"])
    with pytest.raises(ConfigError, match="train.nope"):
        gen_main(["--debug", *bad])
    with pytest.raises(UserError, match="query is empty"):
        caption_main(["search", str(tmp_path), str(tmp_path), "", "--debug"])


def test_real_bugs_keep_their_traceback(capsys):
    """Only user errors are shortened: anything else is a bug and propagates as it is."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--debug", action="store_true")

    def buggy(args: argparse.Namespace) -> int:
        return {}["missing"]

    with pytest.raises(KeyError):
        run_cli(parser, buggy, [])
    assert capsys.readouterr().err == ""

    def user_mistake(args: argparse.Namespace) -> int:
        raise UserError("a message\nover two lines")

    assert run_cli(parser, user_mistake, []) == 2
    assert capsys.readouterr().err == "error: a message over two lines\n"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("argv, expected", [
    (["gen", "sample", "nope", "--prompt", "x", "--steps", "0"], "error: --steps must be at least 1, not 0"),
    (["caption", "search", "nope", ".", ""],
     'error: the query is empty; pass the text to look for, e.g. "a blue square at the top"'),
])
def test_command_line_user_error_exits_2_with_one_stderr_line(argv, expected, tmp_path):
    """The real `python -m gen|caption`: exit status 2, the one line on stderr, nothing on stdout."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=110)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [expected]
    assert proc.stdout == ""
