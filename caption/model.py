"""Captioner: ResNet trunk → spatial feature tokens (+ learned 2-D positions) → GPT-2 with cross-attention."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
import torchvision
from safetensors.torch import load_file, load_model, save_model
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

from gen.core.config import TextConfig, first_line, from_dict
from gen.core.errors import UserError
from gen.data.tokenizer import from_pretrained, load_tokenizer

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass
class EncoderConfig:
    depth: int = 18  # torchvision ResNet-18, -34 or -50
    weights: str | None = None  # a local torchvision state-dict file (.safetensors/.pth), or "imagenet" (needs the hub)
    image_size: int = 32
    small_stem: bool | None = None  # 3×3 stride-1 stem, no max-pool; default: image_size <= 64
    stages: int = 4  # ResNet stages kept; dropping the last gives more, cheaper tokens


@dataclasses.dataclass
class CaptionerConfig:
    encoder: EncoderConfig = dataclasses.field(default_factory=EncoderConfig)
    decoder: TextConfig = dataclasses.field(default_factory=TextConfig)  # pretrained GPT-2 or a fresh one


def _load_resnet_weights(net: nn.Module, weights: str, depth: int) -> None:
    if weights == "imagenet":
        enum = torchvision.models.get_model_weights(f"resnet{depth}").DEFAULT
        try:
            state = enum.get_state_dict(progress=False)
        except (OSError, RuntimeError) as err:  # URLError is an OSError
            raise FileNotFoundError(f"could not download torchvision's {enum} (offline?); pass a local "
                                    f"state-dict file as encoder.weights instead. Cause: {err}") from err
    elif not Path(weights).is_file():
        raise FileNotFoundError(f"encoder.weights: no ResNet state-dict file at {weights!r}")
    elif weights.endswith(".safetensors"):
        state = load_file(weights)
    else:
        state = torch.load(weights, map_location="cpu", weights_only=True)  # never unpickle arbitrary objects
    net.load_state_dict(state)


class ImageEncoder(nn.Module):
    """Images (B, 3, H, W) in [-1, 1] → tokens (B, h·w, D): the spatial map, not the pooled vector."""

    def __init__(self, cfg: EncoderConfig, width: int) -> None:
        super().__init__()
        net = torchvision.models.get_model(f"resnet{cfg.depth}", weights=None)
        if cfg.weights:
            _load_resnet_weights(net, cfg.weights, cfg.depth)
        small = cfg.small_stem if cfg.small_stem is not None else cfg.image_size <= 64
        if small:  # a 7×7/2 stem and max-pool would shrink a 32 px image to 8 px before any residual block
            net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        stages = [net.layer1, net.layer2, net.layer3, net.layer4][: cfg.stages]
        self.trunk = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool, *stages)
        self.trunk.eval()  # measuring the output shape must not touch BatchNorm running statistics
        with torch.no_grad():
            c, h, w = self.trunk(torch.zeros(1, 3, cfg.image_size, cfg.image_size)).shape[1:]
        self.trunk.train()
        self.row = nn.Parameter(torch.zeros(c, h, 1))  # learned 2-D position: row + column embeddings
        self.col = nn.Parameter(torch.zeros(c, 1, w))
        nn.init.normal_(self.row, std=0.02)
        nn.init.normal_(self.col, std=0.02)
        self.proj = nn.Sequential(nn.Linear(c, width), nn.LayerNorm(width))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = ((pixels + 1) / 2 - self.mean) / self.std  # (B, 3, H, W), ImageNet statistics
        f = self.trunk(x) + self.row + self.col  # (B, C, h, w)
        return self.proj(f.flatten(2).transpose(1, 2))  # (B, h·w, D)


class Captioner(nn.Module):
    """p(caption | image) with a GPT-2 decoder that cross-attends to ResNet feature tokens."""

    def __init__(self, cfg: CaptionerConfig, decoder: GPT2LMHeadModel) -> None:
        super().__init__()
        self.cfg, self.decoder = cfg, decoder
        self.encoder = ImageEncoder(cfg.encoder, decoder.config.n_embd)

    @property
    def max_length(self) -> int:
        return min(self.cfg.decoder.max_length, self.decoder.config.n_positions)

    def forward(self, pixels: torch.Tensor | None, input_ids: torch.Tensor, mask: torch.Tensor,
                image_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token logits (B, T, V) under teacher forcing; pass `image_tokens` to reuse an encoding."""
        tokens = self.encoder(pixels) if image_tokens is None else image_tokens  # (B, N, D)
        return self.decoder(input_ids=input_ids, attention_mask=mask, encoder_hidden_states=tokens).logits

    def token_logprobs(self, pixels: torch.Tensor | None, input_ids: torch.Tensor, mask: torch.Tensor,
                       image_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """log p(token_t | tokens_<t, image) for t ≥ 1, zero at padding: (B, T-1)."""
        logits = self(pixels, input_ids, mask, image_tokens)[:, :-1].float()  # (B, T-1, V)
        lp = torch.log_softmax(logits, dim=-1).gather(-1, input_ids[:, 1:, None])[..., 0]  # (B, T-1)
        return lp * mask[:, 1:]

    @torch.no_grad()
    def generate(self, pixels: torch.Tensor, tokenizer: PreTrainedTokenizerBase, num_beams: int = 1,
                 top_p: float | None = None, max_new_tokens: int | None = None, seed: int = 0) -> list[str]:
        """Greedy (default), beam (`num_beams`>1) or nucleus (`top_p`) decoding with the KV cache."""
        tokens = self.encoder(pixels)  # (B, N, D)
        bos = torch.full((len(pixels), 1), tokenizer.eos_token_id, dtype=torch.long, device=pixels.device)
        sample = top_p is not None
        if sample:
            torch.manual_seed(seed)
        out = self.decoder.generate(
            input_ids=bos, attention_mask=torch.ones_like(bos), encoder_hidden_states=tokens,
            max_new_tokens=max_new_tokens or self.max_length - 1, num_beams=num_beams, do_sample=sample,
            top_p=top_p if sample else None, top_k=0 if sample else None, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id, use_cache=True)
        return [t.strip() for t in tokenizer.batch_decode(out[:, 1:], skip_special_tokens=True)]

    def save_pretrained(self, out: str | Path, tokenizer: PreTrainedTokenizerBase | None = None) -> None:
        """A folder: config.json, model.safetensors, and tokenizer/ when given."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"captioner": dataclasses.asdict(self.cfg), "gpt2": self.decoder.config.to_dict()}
        (out / "config.json").write_text(json.dumps(meta, indent=2))
        save_model(self, str(out / "model.safetensors"))
        if tokenizer is not None:
            tokenizer.save_pretrained(out / "tokenizer")

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> tuple["Captioner", PreTrainedTokenizerBase]:
        """Rebuild from the stored configs, then load the folder's weights; no hub access."""
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder} is not a captioner folder (no config.json)")
        meta = _read_meta(folder / "config.json")
        cfg = from_dict(CaptionerConfig, meta["captioner"])
        cfg.encoder.weights = None  # the folder's weights replace any pretrained start
        model = cls(cfg, GPT2LMHeadModel(GPT2Config.from_dict(meta["gpt2"])))
        load_model(model, str(folder / "model.safetensors"))
        return model.eval(), load_tokenizer(str(folder / "tokenizer"))


def _read_meta(path: Path) -> dict:
    """A captioner folder's config.json, or a UserError line: a folder from elsewhere (another model's config, a
    damaged file) must not end in a KeyError or JSON traceback."""
    fix = "pass the model/ folder of a `caption train` run"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise UserError(f"{path} is not readable JSON ({first_line(err)}); {fix}") from None
    missing = [k for k in ("captioner", "gpt2") if not isinstance(meta, dict) or not isinstance(meta.get(k), dict)]
    if missing:
        raise UserError(f"{path} is not a captioner's config (no {missing[0]!r} section); {fix}")
    return meta


def build_captioner(cfg: CaptionerConfig, tokenizer: PreTrainedTokenizerBase) -> Captioner:
    """A fresh GPT-2 decoder sized by the config, or a pretrained one with cross-attention added."""
    dec = cfg.decoder
    if dec.pretrained:
        decoder = from_pretrained(GPT2LMHeadModel, dec.pretrained, add_cross_attention=True)
    else:
        decoder = GPT2LMHeadModel(GPT2Config(
            vocab_size=len(tokenizer), n_positions=dec.max_length, n_embd=dec.n_embd, n_layer=dec.n_layer,
            n_head=dec.n_head, add_cross_attention=True, bos_token_id=tokenizer.eos_token_id,
            eos_token_id=tokenizer.eos_token_id))
    return Captioner(cfg, decoder)
