"""The independent judge of real-data samples: a torchvision ResNet-18 trained on the real set's train split.

Cached in the user's cache folder (`cache_dir()`/classifiers/<key>/: safetensors weights + classifier.json),
keyed by a hash of metadata.jsonl, the bytes of every train image, the classes and the settings, so `gen
evaluate` trains it once per data set and retrains when any image changes. The cache is never in the data
folder: a folder from someone else could ship weights that read anything as anything. Its penultimate
(pooled 512-d) features are the space the Fréchet distance is measured in.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
import torchvision
from safetensors.torch import load_model, save_model
from torch import nn

from gen.data import UNREADABLE, Record, SkipLog, load_image, skip_reason
from gen.training.train_step import adamw

log = logging.getLogger(__name__)
CACHE_ENV = "ROUNDTRIP_CACHE"  # the cache folder, overriding $XDG_CACHE_HOME/roundtrip


@dataclasses.dataclass
class ClassifierConfig:
    resolution: int = 32
    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    shift: int = 2  # random translation by up to this many pixels (replicated border)
    hflip: bool = True  # labels are objects, not layouts: a mirrored cat is a cat
    seed: int = 0
    threads: int | None = None


def build(num_classes: int) -> nn.Module:
    """torchvision's ResNet-18 as it is. At 32 px its 7×7/2 stem and max-pool leave 8×8 maps: 16× cheaper
    than a CIFAR-style stride-1 stem, which on a 2-core CPU would not train in minutes (docs/benchmarks.md)."""
    return torchvision.models.resnet18(num_classes=num_classes)


def to_input(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, R, R) → float in [-1, 1], as the generator's images are scaled."""
    return pixels.float() / 127.5 - 1.0


def penultimate(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Pooled features before the final linear layer: (B, 512)."""
    m = model
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    x = m.layer4(m.layer3(m.layer2(m.layer1(x))))
    return torch.flatten(m.avgpool(x), 1)


@torch.no_grad()
def predict(model: nn.Module, pixels: torch.Tensor, batch_size: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes (N,) and penultimate features (N, 512) of uint8 images."""
    model.eval()
    classes, feats = [], []
    for start in range(0, len(pixels), batch_size):
        f = penultimate(model, to_input(pixels[start:start + batch_size]))  # (B, 512)
        feats.append(f)
        classes.append(model.fc(f).argmax(dim=1))
    if not feats:
        return torch.empty(0, dtype=torch.long), torch.empty(0, 512)
    return torch.cat(classes), torch.cat(feats)


def load_pixels(records: Sequence[Record], resolution: int, skips: SkipLog) -> tuple[torch.Tensor, list[int]]:
    """uint8 (N, 3, R, R) of the readable images, and the indices into `records` they came from."""
    pixels, kept = [], []
    for i, rec in enumerate(records):
        try:
            pixels.append(load_image(rec.path if rec.image is None else rec.image, resolution, skips))
            kept.append(i)
        except UNREADABLE as err:
            skips.skip(rec.path.name, skip_reason(err), rec.row)
    if not pixels:
        return torch.empty(0, 3, resolution, resolution, dtype=torch.uint8), kept
    return torch.stack(pixels), kept


def augment(x: torch.Tensor, cfg: ClassifierConfig, gen: torch.Generator) -> torch.Tensor:
    """Random shifts (replicated border, so black and white backgrounds both stay) and flips, per image."""
    n, _, h, w = x.shape
    s = cfg.shift
    if s:
        padded = F.pad(x, (s, s, s, s), mode="replicate")
        dy, dx = torch.randint(0, 2 * s + 1, (2, n), generator=gen).tolist()
        x = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])
    if cfg.hflip:
        flip = torch.rand(n, generator=gen) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x


def train(pixels: torch.Tensor, labels: torch.Tensor, num_classes: int, cfg: ClassifierConfig) -> nn.Module:
    """AdamW with a one-cycle schedule and label smoothing: a few epochs reach a useful accuracy."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = build(num_classes)
    per_epoch = max(1, len(pixels) // cfg.batch_size)
    opt = adamw(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.epochs * per_epoch, pct_start=0.15)
    model.train()
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(pixels), generator=gen)
        for b in range(per_epoch):
            idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
            x = augment(to_input(pixels[idx]), cfg, gen)  # (B, 3, R, R)
            loss = F.cross_entropy(model(x), labels[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        log.info("classifier epoch %d/%d: loss %.3f", epoch + 1, cfg.epochs, loss.item())
    return model.eval()


def cache_dir() -> Path:
    """$ROUNDTRIP_CACHE, else $XDG_CACHE_HOME/roundtrip, else ~/.cache/roundtrip (the XDG base-directory spec)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "roundtrip"


def fingerprint(real_dir: Path, classes: Sequence[str], cfg: ClassifierConfig, train_records: Sequence[Record]) -> str:
    """Changes when metadata.jsonl, a train image's bytes, the class list or a setting does.

    Hashing the images costs one read of each, far less than training; without it, edited or recoloured
    images under an unchanged metadata.jsonl would be judged by a classifier of the old ones."""
    h = hashlib.sha256((Path(real_dir) / "metadata.jsonl").read_bytes())
    h.update(json.dumps([list(classes), dataclasses.asdict(cfg) | {"threads": None}]).encode())
    for rec in train_records:
        h.update(b"\0image\0" + (hashlib.sha256(rec.image).digest() if rec.image is not None else _file_digest(rec.path)))
    return h.hexdigest()


def _file_digest(path: Path) -> bytes:
    """sha256 of a regular file's bytes; a fixed marker for anything else (missing, a FIFO: never opened)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return b"not a file"
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(2**20):
                h.update(chunk)
        return h.digest()
    except OSError:
        return b"unreadable"  # load_pixels skips it and says why


def _load_cached(folder: Path, key: str, num_classes: int) -> tuple[nn.Module, dict[str, Any]] | None:
    """The classifier saved in `folder`, or None when there is none or it is unusable (then it is retrained)."""
    info_path = folder / "classifier.json"
    if not info_path.is_file():
        return None
    try:
        info = json.loads(info_path.read_text())
        if not isinstance(info, dict) or info.get("fingerprint") != key:
            raise ValueError("it is for other data or settings")
        minutes = float(info["train_minutes"])
        model = build(num_classes)
        load_model(model, str(folder / "model.safetensors"))
    except Exception as err:  # a cache entry is only a speed-up: whatever is wrong with it, train anew
        log.warning("classifier: cache %s is unusable (%s); retraining", folder, " ".join(str(err).split()))
        return None
    log.info("classifier: reusing %s (trained in %.1f min)", folder, minutes)
    return model.eval(), info


def _save(folder: Path, model: nn.Module, info: dict[str, Any]) -> None:
    """Weights and classifier.json written beside `folder` and renamed into place: whole or absent.

    A temp folder of its own (mkdtemp), so two evaluations of the same data never write into each other's."""
    tmp = None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
        save_model(model, str(tmp / "model.safetensors"))
        (tmp / "classifier.json").write_text(json.dumps(info, indent=2))
        shutil.rmtree(folder, ignore_errors=True)  # an unusable entry of the same key
        os.replace(tmp, folder)
    except OSError as err:  # a read-only or full cache costs the next run a retraining, not this one its result
        log.warning("classifier: could not cache it in %s (%s)", folder, err)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def cached_classifier(real_dir: str | Path, classes: Sequence[str], train_records: Sequence[Record],
                      cfg: ClassifierConfig, skips: SkipLog) -> tuple[nn.Module, dict[str, Any]]:
    """The classifier for REAL_DIR's train images: loaded from the cache when one matches, else trained and saved.

    A `.classifier` folder inside REAL_DIR (where earlier versions cached it) is never read."""
    key = fingerprint(Path(real_dir), classes, cfg, train_records)
    folder = cache_dir() / "classifiers" / key
    cached = _load_cached(folder, key, len(classes))
    if cached is not None:
        return cached[0], cached[1] | {"cached": True}
    index = {c: i for i, c in enumerate(classes)}
    pixels, kept = load_pixels(train_records, cfg.resolution, skips)
    labels = torch.tensor([index[str(train_records[i].meta["label"])] for i in kept])
    start = time.monotonic()
    model = train(pixels, labels, len(classes), cfg)
    info = {"fingerprint": key, "classes": list(classes), "config": dataclasses.asdict(cfg),
            "train_images": len(kept), "train_minutes": (time.monotonic() - start) / 60,
            "architecture": "torchvision resnet18"}
    _save(folder, model, info)
    return model, info | {"cached": False}
