"""Shared tiny real models for the tests: no mocks, no downloads, seeded.

The session fixtures train the two tiny configs once (a few seconds each on a CPU) and hand their
run folders to every test that needs a trained generator or captioner.
"""
from __future__ import annotations

import os

# Before anything imports huggingface_hub / transformers: tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One CPU thread, here and in the training subprocesses (they inherit the environment): the models are
# tiny, so threads buy nothing, and spinning OpenMP threads crawl on a busy 2-core CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parent.parent
GEN_TINY = ROOT / "configs" / "gen" / "tiny.yaml"
CAPTION_TINY = ROOT / "configs" / "caption" / "tiny.yaml"
GEN_STEPS = 30
CAPTION_STEPS = 20

# Tiny sizes shared by the hand-built models below.
TEXT_DIM = 32
MAX_LENGTH = 24
IMAGE_SIZE = 8


def shapes_texts() -> list[str]:
    """Every phrasing of every single-object shapes scene: the tokenizer's training text."""
    from gen.domains.shapes.world import all_combinations, phrasings

    return [t for spec in all_combinations() for t in phrasings([spec])]


@pytest.fixture(scope="session")
def tokenizer():
    """A byte-level BPE trained on the shapes grammar (gen.data.tokenizer.train_tokenizer)."""
    from gen.data.tokenizer import train_tokenizer

    return train_tokenizer(shapes_texts(), vocab_size=300)


def tiny_gpt2(tokenizer, lm_head: bool = False, cross_attention: bool = False, seed: int = 0):
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=MAX_LENGTH, n_embd=TEXT_DIM, n_layer=1, n_head=2,
                        add_cross_attention=cross_attention, bos_token_id=tokenizer.eos_token_id,
                        eos_token_id=tokenizer.eos_token_id)
    return (GPT2LMHeadModel if lm_head else GPT2Model)(config).eval()


def tiny_unet(seed: int = 0, sample_size: int = IMAGE_SIZE):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=sample_size, in_channels=3, out_channels=3, block_out_channels=(16, 32),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        layers_per_block=1, attention_head_dim=8, norm_num_groups=8, cross_attention_dim=TEXT_DIM,
    ).eval()


@pytest.fixture
def tiny_pipe(tokenizer):
    """A fresh TextToImagePipeline of random tiny parts with the training code's DPM++ sampler."""
    from gen.core.config import DiffusionConfig
    from gen.generator.diffusion import noise_scheduler, sampling_scheduler
    from gen.generator.pipeline import TextToImagePipeline

    scheduler = sampling_scheduler(noise_scheduler(DiffusionConfig()))
    pipe = TextToImagePipeline(tokenizer, tiny_gpt2(tokenizer), tiny_unet(), scheduler)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def gen_run(tmp_path_factory) -> Path:
    """RUN_DIR of configs/gen/tiny.yaml trained for GEN_STEPS steps, logging the loss every step."""
    from gen.generator.train import train

    run_dir = tmp_path_factory.mktemp("gen_run")
    model = train(GEN_TINY, out=run_dir, overrides=[f"train.max_steps={GEN_STEPS}", "train.log_every=1"])
    assert model == run_dir / "model"
    return run_dir


@pytest.fixture(scope="session")
def caption_run(tmp_path_factory) -> Path:
    """RUN_DIR of configs/caption/tiny.yaml trained for CAPTION_STEPS steps."""
    from caption.train import train

    run_dir = tmp_path_factory.mktemp("caption_run")
    model = train(CAPTION_TINY, out=run_dir, overrides=[f"train.max_steps={CAPTION_STEPS}"])
    assert model == run_dir / "model"
    return run_dir


@pytest.fixture(scope="session")
def captioner_dir(caption_run) -> Path:
    return caption_run / "model"


@pytest.fixture(scope="session")
def judge(captioner_dir):
    from caption.judge.judge import Judge

    return Judge(captioner_dir, device="cpu")


def one_error_line(capsys) -> str:
    """The CLI's stderr: exactly one `error:` line and no traceback; returns the message."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, err
    return lines[0]
