"""README.md model cards for exported `model/` folders: data, config, steps and minutes, scores, how to load.

Both trainers (gen.generator.train, caption.train) write one at export. The generator's card spells out what stock
diffusers code must do that a stock UNet pipeline does not: add the pooled prompt as `class_labels`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gen.core import config as config_io

# Metrics that describe the run rather than measure the model.
RUN_KEYS = ("step", "total_steps", "minutes", "mixed_precision", "mixed_precision_reason",
            "mixed_precision_seconds_per_step")

STOCK_GENERATOR = '''\
```python
import torch
import torch.nn.functional as F
from diffusers import DPMSolverMultistepScheduler, UNet2DConditionModel
from transformers import AutoTokenizer, GPT2Model

folder = "{folder}"
tokenizer = AutoTokenizer.from_pretrained(folder, subfolder="tokenizer")
text_encoder = GPT2Model.from_pretrained(folder, subfolder="text_encoder").eval()
unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet").eval()
scheduler = DPMSolverMultistepScheduler.from_pretrained(folder, subfolder="scheduler")


def condition(prompt):
    # Every prompt starts with <|endoftext|>; the empty prompt (for guidance) is that token alone.
    ids = torch.tensor([[tokenizer.eos_token_id] + tokenizer(prompt, add_special_tokens=False).input_ids])
    states = text_encoder(input_ids=ids).last_hidden_state  # (1, T, D)
    kwargs = {{"encoder_hidden_states": states}}
    if unet.config.class_embed_type == "projection":
        kwargs["class_labels"] = states.mean(dim=1)  # the pooled prompt: mean of the real tokens' states
    return kwargs


with torch.no_grad():
    cond, uncond = condition("{prompt}"), condition("")
    p = {patch}  # the UNet sees p×p pixel blocks stacked into channels (model_index.json's patch_size)
    size = unet.config.sample_size * p
    x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * scheduler.init_noise_sigma
    scheduler.set_timesteps({steps})
    denoise = lambda x_in, t, kw: F.pixel_shuffle(unet(F.pixel_unshuffle(x_in, p), t, **kw).sample, p)
    for t in scheduler.timesteps:
        x_in = scheduler.scale_model_input(x, t)
        c, u = denoise(x_in, t, cond), denoise(x_in, t, uncond)
        x = scheduler.step(u + {guidance} * (c - u), t, x).prev_sample
image = (x / 2 + 0.5).clamp(0, 1)  # (1, 3, H, W) in [0, 1]
```'''


def _data(cfg: Any, examples: int | None, skipped: dict[str, int] | None) -> str:
    d = cfg.data
    # Any source but the three readers is a domain that writes its own data into the run folder.
    where = d.path or d.name or ("RUN_DIR/data" if d.source not in ("folder", "coco", "hf") else "(none)")
    lines = [f"- source: `{d.source}`, `{where}`" + (f" (images under `{d.image_root}`)" if d.image_root else ""),
             f"- split: `{d.split}`; images resized and centre-cropped to {d.resolution} px",
             f"- examples used: {examples if examples is not None else 'unknown'}"]
    if skipped:
        lines.append(f"- rows skipped: {sum(skipped.values())} ({', '.join(f'{k}: {v}' for k, v in skipped.items())})")
    return "\n".join(lines)


def _run(metrics: dict[str, Any] | None) -> str:
    if not metrics:
        return "Not recorded: this folder was exported outside a training run."
    minutes = metrics.get("minutes")
    lines = [f"- steps: {metrics.get('step')} of {metrics.get('total_steps')} planned",
             f"- minutes of training: {minutes:.1f}" if isinstance(minutes, (int, float)) else "- minutes: unknown",
             f"- mixed precision: {metrics.get('mixed_precision')} ({metrics.get('mixed_precision_reason')})"]
    timed = metrics.get("mixed_precision_seconds_per_step")
    if timed:  # `auto` timed real training steps in each precision before choosing
        names = {"no": "fp32"}
        lines.append("- timed before choosing: " + ", ".join(f"{names.get(p, p)} {s:.3f} s" for p, s in timed.items())
                     + " per step")
    return "\n".join(lines)


def _scores(metrics: dict[str, Any] | None) -> str:
    scores = {k: v for k, v in (metrics or {}).items() if k not in RUN_KEYS}
    if not scores:
        return ("None measured during training. Measure it with `python -m gen evaluate SAMPLES --real DIR` "
                "(real labelled data) or `python -m caption score` (docs/judge.md).")
    return "\n".join(f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}" for k, v in scores.items())


def _generator_loading(cfg: Any) -> str:
    projection = cfg.unet.get("class_embed_type") == "projection"
    prompt = (cfg.sample.prompts or ["a prompt"])[0].replace('"', "'")
    note = ("**This UNet has `class_embed_type: projection`: it needs `class_labels`.** Pass the pooled prompt, "
            "the mean of the real (unpadded) tokens' GPT-2 states, as `class_labels` at every UNet call; without "
            "it stock diffusers code cannot run the UNet (it raises: class_labels should be provided)."
            if projection else
            "This UNet has no class embedding, so the token states alone condition it (`encoder_hidden_states`). "
            "A roundtrip UNet with `class_embed_type: projection` also needs the pooled prompt (the mean of the "
            "real tokens' states) as `class_labels`.")
    return f"""With roundtrip installed:

```python
from gen.generator.pipeline import TextToImagePipeline

pipe = TextToImagePipeline.from_pretrained("{{folder}}")
images = pipe(["{prompt}"], num_inference_steps={cfg.sample.steps}, guidance_scale={cfg.sample.guidance}).images
```

or `python -m gen sample MODEL_DIR --prompt "{prompt}"`.

With stock diffusers and transformers only (the folder is a diffusers layout: `unet/`, `text_encoder/`,
`tokenizer/`, `scheduler/`, safetensors weights). {note}

{STOCK_GENERATOR.format(folder="{folder}", prompt=prompt, steps=cfg.sample.steps, guidance=cfg.sample.guidance,
                        patch=cfg.patch_size)}
"""


CAPTIONER_LOADING = """With roundtrip installed:

```python
from caption.model import Captioner

model, tokenizer = Captioner.from_pretrained("{folder}")
```

or `python -m caption describe MODEL_DIR image.png`. The folder holds `config.json` (the captioner and GPT-2
configs), `model.safetensors` and `tokenizer/`.
"""


def model_card(kind: str, cfg: Any, examples: int | None = None, skipped: dict[str, int] | None = None,
               metrics: dict[str, Any] | None = None, folder: str = "MODEL_DIR") -> str:
    """The README.md text; `kind` is "generator" or "captioner"."""
    loading = _generator_loading(cfg) if kind == "generator" else CAPTIONER_LOADING
    what = ("a text-to-image diffusion model (GPT-2 text encoder + pixel-space UNet2DConditionModel)"
            if kind == "generator" else "an image captioner and judge (ResNet trunk → GPT-2 decoder)")
    config_text = yaml.safe_dump(config_io.to_dict(cfg), sort_keys=False).strip()
    return f"""# {cfg.name}

{what[0].upper() + what[1:]}, trained from scratch with roundtrip.

## Training data

{_data(cfg, examples, skipped)}

## Training run

{_run(metrics)}

## Measured scores

{_scores(metrics)}

## How to load

{loading.replace("{folder}", folder)}
## Config

The resolved config (also in `roundtrip_config.yaml`):

```yaml
{config_text}
```
"""


def write_model_card(out: Path, kind: str, cfg: Any, examples: int | None = None,
                     skipped: dict[str, int] | None = None, metrics: dict[str, Any] | None = None) -> Path:
    path = Path(out) / "README.md"
    path.write_text(model_card(kind, cfg, examples, skipped, metrics), encoding="utf-8")
    return path
