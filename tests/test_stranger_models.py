"""Model folders from elsewhere: pickled weights, custom code or a damaged config are refused as one `error:` line
by `gen sample` and `caption describe`, and nothing in them is unpickled or run.

Each folder is a copy of a real trained model (the session runs in conftest.py), damaged in one way.
"""
from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import one_error_line

from caption.__main__ import main as caption_main
from gen.__main__ import main as gen_main
from gen.domains.shapes.world import ShapeSpec, render


class LeavesAMark:
    """Unpickling this creates the file it names: proof that a loader unpickled it."""

    def __init__(self, mark: Path) -> None:
        self.mark = mark

    def __reduce__(self):
        return open, (str(self.mark), "w")


def copy_model(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    return dst


def pickled_instead_of_safetensors(model: Path, safetensors: str, bin_name: str, mark: Path) -> None:
    (model / safetensors).unlink()
    (model / bin_name).write_bytes(pickle.dumps(LeavesAMark(mark)))


def sample(model: Path, tmp_path: Path) -> int:
    return gen_main(["sample", str(model), "--prompt", "a red circle on the left", "--out", str(tmp_path / "out"),
                     "--device", "cpu"])


@pytest.mark.parametrize("safetensors, bin_name", [
    ("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin"),
    ("text_encoder/model.safetensors", "text_encoder/pytorch_model.bin"),
])
def test_generator_with_pickled_weights_is_refused_unopened(gen_run, tmp_path, capsys, safetensors, bin_name):
    model = copy_model(gen_run / "model", tmp_path)
    mark = tmp_path / "unpickled"
    pickled_instead_of_safetensors(model, safetensors, bin_name, mark)
    assert sample(model, tmp_path) == 2
    message = one_error_line(capsys)
    assert f"{model / bin_name}: pickled weights are refused" in message
    assert not mark.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_generator_with_python_code_in_its_unet_folder_is_refused_unrun(gen_run, tmp_path, capsys):
    model = copy_model(gen_run / "model", tmp_path)
    mark = tmp_path / "ran"
    (model / "unet" / "custom_unet.py").write_text(f"open({str(mark)!r}, 'w')\n")
    assert sample(model, tmp_path) == 2
    assert f"{model / 'unet' / 'custom_unet.py'}: the model folder holds Python code" in one_error_line(capsys)
    assert not mark.exists()


def test_generator_whose_unet_config_asks_for_remote_code_is_refused(gen_run, tmp_path, capsys):
    model = copy_model(gen_run / "model", tmp_path)
    config = model / "unet" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()),
                                  "auto_map": {"AutoModel": "custom_unet.CustomUNet"}}))
    assert sample(model, tmp_path) == 2
    assert f"{config} asks for remote code (auto_map)" in one_error_line(capsys)


def test_generator_whose_index_names_a_custom_component_library_is_refused(gen_run, tmp_path, capsys):
    model = copy_model(gen_run / "model", tmp_path)
    index = model / "model_index.json"
    index.write_text(json.dumps({**json.loads(index.read_text()), "unet": ["custom_unet", "CustomUNet"]}))
    assert sample(model, tmp_path) == 2
    assert "component 'unet' comes from 'custom_unet'" in one_error_line(capsys)


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "image.png"
    render([ShapeSpec("red", "circle", "left")], 16, np.random.default_rng(0)).save(path)
    return path


@pytest.mark.parametrize("config_text, named", [
    ('{"captioner": {', "is not readable JSON"),
    (b"\xff\xfe{}", "is not readable JSON"),
    ('{"gpt2": {}}', "is not a captioner's config (no 'captioner' section)"),
    ("[1, 2]", "is not a captioner's config (no 'captioner' section)"),
])
def test_captioner_with_a_damaged_config_is_one_error_line(caption_run, tmp_path, capsys, image, config_text, named):
    model = copy_model(caption_run / "model", tmp_path)
    config = model / "config.json"
    if isinstance(config_text, bytes):
        config.write_bytes(config_text)
    else:
        config.write_text(config_text)
    assert caption_main(["describe", str(model), str(image), "--device", "cpu"]) == 2
    assert f"{config} {named}" in one_error_line(capsys)


def test_untouched_copies_still_load(gen_run, caption_run, tmp_path, capsys, image):
    """The refusals above are about the damage, not about the folder being a copy."""
    gen_model = copy_model(gen_run / "model", tmp_path / "gen")
    assert sample(gen_model, tmp_path) == 0
    assert (tmp_path / "out" / "00000-seed0.png").is_file()
    caption_model = copy_model(caption_run / "model", tmp_path / "caption")
    assert caption_main(["describe", str(caption_model), str(image), "--device", "cpu"]) == 0
    assert "image.png" in capsys.readouterr().out
