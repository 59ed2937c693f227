"""One CLI vocabulary for `python -m gen` and `python -m caption`: every flag explained, outputs refused unless
--overwrite, --device checked up front, and sampling defaults read from the model's saved config."""
from __future__ import annotations

import argparse
import json
import shutil

import pytest
import torch
import yaml
from conftest import GEN_TINY, one_error_line

from caption.__main__ import _parser as caption_parser
from caption.__main__ import main as caption_main
from gen.__main__ import _parser as gen_parser
from gen.__main__ import main as gen_main
from gen.core.cli import resolve_device
from gen.core.config import SAVED, SampleConfig
from gen.core.errors import UserError
from gen.evaluate.sweep import sweep
from gen.generator.pipeline import TextToImagePipeline


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


@pytest.mark.parametrize("make_parser", [gen_parser, caption_parser])
def test_every_flag_has_a_help_string(make_parser):
    parser = make_parser()
    silent = [f"{name} {a.option_strings or a.dest}"
              for name, sub in {"": parser, **_subcommands(parser)}.items() for a in sub._actions
              if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
              and a.help != argparse.SUPPRESS and not (a.help or "").strip()]
    assert silent == []


def test_train_is_one_subcommand_in_both_clis():
    def shape(parser: argparse.ArgumentParser) -> list[tuple]:
        train = _subcommands(parser)["train"]
        return [(tuple(a.option_strings), a.dest, a.default, a.help) for a in train._actions]

    assert shape(gen_parser()) == shape(caption_parser())
    assert [a[0] for a in shape(gen_parser())] == [("-h", "--help"), ("--debug",), (), ("--out",), ("--set",),
                                                    ("--resume",), ("--overwrite",)]


def test_old_flag_spellings_still_parse_but_are_hidden():
    parser = caption_parser()
    meta = _subcommands(parser)["meta-eval"]
    assert parser.parse_args(["meta-eval", "m", "--per-prompt", "5"]).num_per_prompt == 5
    assert parser.parse_args(["meta-eval", "m", "--num-per-prompt", "3"]).num_per_prompt == 3
    assert parser.parse_args(["meta-eval", "m"]).num_per_prompt == 2
    assert "--per-prompt" not in meta.format_help().replace("--num-per-prompt", "")
    search = _subcommands(parser)["search"]
    assert parser.parse_args(["search", "m", "d", "q", "--html", "s.html"]).out == "s.html"
    assert parser.parse_args(["search", "m", "d", "q"]).out is None
    assert "--html" not in search.format_help()


def test_bad_devices_are_one_line_errors(tmp_path, capsys):
    with pytest.raises(UserError, match="not a device"):
        resolve_device("gpu")
    with pytest.raises(UserError, match="not a device"):
        resolve_device("meta")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no usable CUDA GPU"):
            resolve_device("cuda")
    argv = ["sample", str(tmp_path / "model"), "--prompt", "a red circle", "--out", str(tmp_path / "o")]
    assert gen_main([*argv, "--device", "gpu"]) == 2
    assert "--device 'gpu' is not a device" in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_make_shapes_refuses_an_earlier_set_without_overwrite(tmp_path, capsys):
    out = tmp_path / "shapes"
    assert gen_main(["make-shapes", str(out), "--count", "4", "--size", "16"]) == 0
    first = (out / "metadata.jsonl").read_text()
    capsys.readouterr()
    assert gen_main(["make-shapes", str(out), "--count", "6", "--size", "16"]) == 2
    assert "--overwrite" in one_error_line(capsys)
    assert (out / "metadata.jsonl").read_text() == first
    assert gen_main(["make-shapes", str(out), "--count", "6", "--size", "16", "--overwrite"]) == 0
    assert len((out / "metadata.jsonl").read_text().splitlines()) == 6


def test_bench_and_meta_eval_refuse_an_existing_out_before_any_work(tmp_path, capsys):
    report = tmp_path / "report.json"
    report.write_text("{}")
    assert gen_main(["bench", str(GEN_TINY), "--out", str(report)]) == 2
    assert "already exist" in one_error_line(capsys)
    # The captioner folder does not exist: the refusal comes before it is loaded.
    assert caption_main(["meta-eval", str(tmp_path / "no-captioner"), "--out", str(report)]) == 2
    assert "already exist" in one_error_line(capsys)
    assert report.read_text() == "{}"


def _model_with_guidance(gen_run, tmp_path, guidance: float):
    """A copy of the tiny generator whose saved config asks for another guidance than SampleConfig's."""
    model = tmp_path / "model"
    shutil.copytree(gen_run / "model", model)
    saved = yaml.safe_load((model / SAVED).read_text())
    saved["sample"]["guidance"] = guidance
    (model / SAVED).write_text(yaml.safe_dump(saved, sort_keys=False))
    return model


def test_pipeline_samples_with_the_models_saved_defaults(gen_run, tiny_pipe):
    pipe = TextToImagePipeline.from_pretrained(gen_run / "model")
    assert (pipe.sample_defaults.steps, pipe.sample_defaults.guidance) == (4, 3.0)  # configs/gen/tiny.yaml
    assert tiny_pipe.sample_defaults == SampleConfig()  # built in memory: no saved config
    prompts = ["a red circle on the left"]
    implicit = pipe(prompts, generator=torch.Generator().manual_seed(0), output_type="pt").images
    explicit = pipe(prompts, num_inference_steps=4, guidance_scale=3.0, generator=torch.Generator().manual_seed(0),
                    output_type="pt").images
    other = pipe(prompts, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert torch.equal(implicit, explicit) and not torch.equal(implicit, other)


@pytest.mark.timeout(120)
def test_sweep_uses_the_models_saved_guidance(gen_run, tmp_path):
    model = _model_with_guidance(gen_run, tmp_path, 1.5)
    rows = sweep(model, ["a red circle on the left"], tmp_path / "sweep", [("dpm++", 1)])
    meta = json.loads((tmp_path / "sweep" / "dpm++-1" / "metadata.jsonl").read_text().splitlines()[0])
    assert rows[0]["guidance"] == meta["guidance"] == 1.5
    with pytest.raises(UserError, match="already exist"):
        sweep(model, ["a red circle on the left"], tmp_path / "sweep", [("ddim", 1)])


@pytest.mark.timeout(300)
def test_meta_eval_generated_uses_the_models_saved_guidance(gen_run, captioner_dir, tmp_path):
    model = _model_with_guidance(gen_run, tmp_path, 1.5)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle on the left\n")
    argv = ["meta-eval", str(captioner_dir), "--generated", str(model), "--steps", "1", "--num-per-prompt", "1",
            "--prompts", str(prompts), "--device", "cpu", "--out", str(tmp_path / "r.json")]
    assert caption_main(argv) == 0
    assert json.loads((tmp_path / "r.json").read_text())["guidance"] == 1.5
    assert caption_main([*argv, "--guidance", "2", "--overwrite"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["guidance"] == 2.0
