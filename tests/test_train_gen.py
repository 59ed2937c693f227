"""Generator training end to end on configs/gen/tiny.yaml: run folder, loss, EMA export, `gen sample`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import GEN_STEPS
from diffusers import UNet2DConditionModel
from PIL import Image
from safetensors.torch import load_file
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from transformers import GPT2Config, GPT2Model

from gen.__main__ import main as gen_main
from gen.core.config import GenConfig, load
from gen.data import read_folder
from gen.generator.train import TextToImageModel, build_unet
from gen.training.train_step import param_groups


def scalars(run_dir, tag: str) -> dict[int, float]:
    acc = EventAccumulator(str(run_dir / "logs"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(tag)}


@pytest.mark.timeout(60)
def test_run_folder_layout(gen_run):
    cfg = load(GenConfig, gen_run / "config.yaml")  # the resolved config, loadable as is
    assert cfg.name == "tiny" and cfg.train.max_steps == GEN_STEPS and cfg.train.log_every == 1
    assert list((gen_run / "logs").glob("events.out.tfevents.*"))
    ckpts = sorted(p.name for p in (gen_run / "checkpoints").iterdir())
    # ckpt_every=10, keep_last=2: the two newest survive, no temp folder is left.
    assert ckpts == ["checkpoint-00000020", "checkpoint-00000030"]
    assert len(ckpts) <= cfg.train.keep_last
    state = json.loads((gen_run / "checkpoints" / "checkpoint-00000030" / "state.json").read_text())
    assert state["step"] == GEN_STEPS
    model = gen_run / "model"
    assert json.loads((model / "model_index.json").read_text())["_class_name"] == "TextToImagePipeline"
    for part in ("unet", "text_encoder", "tokenizer", "scheduler"):
        assert (model / part).is_dir(), part
    assert not list(model.rglob("*.bin"))
    assert load(GenConfig, model / "roundtrip_config.yaml").train.max_steps == GEN_STEPS
    summary = json.loads((gen_run / "summary.json").read_text())
    assert summary["metrics"]["step"] == GEN_STEPS
    assert summary["examples"] >= cfg.train.batch_size and summary["skipped"] == {}


@pytest.mark.timeout(60)
def test_loss_goes_down(gen_run):
    loss = scalars(gen_run, "train/loss")
    assert sorted(loss) == list(range(1, GEN_STEPS + 1))
    values = np.array([loss[s] for s in sorted(loss)])
    assert np.isfinite(values).all()
    first, last = values[:8].mean(), values[-8:].mean()
    assert last < 0.85 * first, (first, last)
    lr = scalars(gen_run, "train/lr")
    assert lr[5] == pytest.approx(1e-3)  # warm-up of 5 steps reaches the configured lr ...
    assert lr[GEN_STEPS] == pytest.approx(0.0, abs=1e-9)  # ... and the cosine ends at zero


@pytest.mark.timeout(60)
def test_exported_model_holds_the_ema_weights(gen_run):
    """The pipeline folder carries EMA weights (the end product), not the last raw step."""
    ckpt = gen_run / "checkpoints" / "checkpoint-00000030"
    shadow = load_file(str(ckpt / "ema.safetensors"))
    shadow = [shadow[k] for k in sorted(shadow)]
    text = GPT2Model.from_pretrained(gen_run / "model", subfolder="text_encoder")
    unet = UNet2DConditionModel.from_pretrained(gen_run / "model", subfolder="unet")
    exported = list(text.parameters()) + list(unet.parameters())  # the training module's order
    assert len(exported) == len(shadow)
    assert all(torch.equal(e.detach(), s) for e, s in zip(exported, shadow))
    raw = load_file(str(ckpt / "model.safetensors"))
    assert not torch.equal(raw["unet.conv_in.weight"], unet.conv_in.weight.detach())


@pytest.mark.timeout(60)
def test_sample_cli_writes_a_dataset_folder(gen_run, tmp_path):
    out = tmp_path / "samples"
    prompts = ["a red circle on the left", "a blue square at the top"]
    argv = ["sample", str(gen_run / "model"), "--prompt", prompts[0], "--prompt", prompts[1],
            "--num-per-prompt", "2", "--steps", "3", "--guidance", "2.5", "--seed", "5", "--device", "cpu",
            "--out", str(out)]
    assert gen_main(argv) == 0
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == [prompts[0], prompts[0], prompts[1], prompts[1]]
    assert [r["seed"] for r in rows] == [5, 6, 7, 8]  # one seed per image
    assert all(r["steps"] == 3 and r["guidance"] == 2.5 for r in rows)
    assert len({r["file_name"] for r in rows}) == 4
    for r in rows:
        with Image.open(out / r["file_name"]) as im:
            assert im.size == (16, 16) and im.mode == "RGB"
    with Image.open(out / "grid.png") as grid:
        assert grid.size == (2 * 16 + 3 * 2, 2 * 16 + 3 * 2)  # 4 images: 2 × 2 with 2 px borders
    # The folder is a data set every other tool reads.
    records = read_folder(out)
    assert [r.texts for r in records] == [[p] for p in (prompts[0], prompts[0], prompts[1], prompts[1])]
    assert records[2].meta["seed"] == 7

    # Any one image can be re-made alone from its seed.
    again = tmp_path / "again"
    assert gen_main(["sample", str(gen_run / "model"), "--prompt", prompts[1], "--steps", "3", "--guidance", "2.5",
                     "--seed", "7", "--device", "cpu", "--out", str(again)]) == 0
    (row,) = [json.loads(line) for line in (again / "metadata.jsonl").read_text().splitlines()]
    a = np.asarray(Image.open(out / rows[2]["file_name"]), dtype=int)
    b = np.asarray(Image.open(again / row["file_name"]), dtype=int)
    assert np.abs(a - b).max() <= 1


def test_sample_cli_reads_a_prompts_file(gen_run, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a green triangle in the center\n\n  a white square on the right  \n")
    out = tmp_path / "s"
    assert gen_main(["sample", str(gen_run / "model"), "--prompts", str(prompts), "--steps", "2",
                     "--device", "cpu", "--out", str(out)]) == 0
    assert [r.texts[0] for r in read_folder(out)] == ["a green triangle in the center", "a white square on the right"]


def test_unet_sample_size_follows_data_resolution():
    """Without a `unet:` section the pipeline must still generate at data.resolution."""
    cfg = load(GenConfig, None, ["data.resolution=16"])
    assert build_unet(cfg, cross_attention_dim=16).config.sample_size == 16


def test_unet_from_the_tiny_config(gen_run):
    cfg = load(GenConfig, gen_run / "config.yaml")
    unet = build_unet(cfg, cross_attention_dim=cfg.text.n_embd)
    assert unet.config.sample_size == cfg.data.resolution == 16
    assert unet.config.cross_attention_dim == 32 and list(unet.config.block_out_channels) == [16, 32]


def test_text_encoder_learning_rate_is_scaled():
    """text.lr_scale puts every text-encoder weight, and nothing else, in a group at lr × scale."""
    cfg = load(GenConfig, None, [])
    text = GPT2Model(GPT2Config(vocab_size=50, n_positions=8, n_embd=16, n_layer=1, n_head=2))
    model = TextToImageModel(text, build_unet(cfg, cross_attention_dim=16), freeze_text=False)
    groups = param_groups(model, 1e-3, {"text_encoder.": 0.1})
    by_lr = {g["lr"]: {id(p) for p in g["params"]} for g in groups}
    assert sorted(by_lr) == pytest.approx([1e-4, 1e-3])
    assert by_lr[min(by_lr)] == {id(p) for p in text.parameters()}
    assert by_lr[max(by_lr)] == {id(p) for p in model.unet.parameters()}
    frozen = TextToImageModel(text, model.unet, freeze_text=True)
    assert [g["lr"] for g in param_groups(frozen, 1e-3, {"text_encoder.": 0.1})] == [1e-3]
