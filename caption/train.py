"""Captioner training: teacher-forced cross-entropy in the shared loop (gen.training.engine), plus held-out checks."""
from __future__ import annotations

import dataclasses
import logging
import zlib
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter

from caption.augment import AugmentConfig, augment
from caption.judge.views import JudgeConfig
from caption.model import Captioner, CaptionerConfig, build_captioner
from gen import domains
from gen.core import config as config_io
from gen.core.config import DataConfig, TrainConfig
from gen.core.model_card import write_model_card
from gen.core.outputs import atomic_dir
from gen.data import ImageCaptionDataset, Record, SkipLog, collate, read_records
from gen.data.check import format_summary
from gen.data.tokenizer import adopt_tokenizer, load_tokenizer, tokenize, train_tokenizer
from gen.training.checkpoint import run_dir_for
from gen.training.run import check_enough_data, train_in_run_dir
from gen.training.rundir import tokenizer_of

log = logging.getLogger(__name__)


@dataclasses.dataclass
class EvalConfig:
    val_split: str = "val"  # rows whose "split" is this are validation
    unseen_split: str = "unseen"  # shapes: combinations never seen in training
    holdout_fraction: float = 0.02  # folders without a "split" field: this share, by file-name hash, is validation
    max_items: int = 512
    batch_size: int = 128


@dataclasses.dataclass
class CaptionConfig:
    name: str = "caption"
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: CaptionerConfig = dataclasses.field(default_factory=CaptionerConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)
    judge: JudgeConfig = dataclasses.field(default_factory=JudgeConfig)  # how the trained captioner judges


def split_records(records: Sequence[Record], cfg: EvalConfig) -> dict[str, list[Record]]:
    """train / val / unseen, by the rows' own split field, else a stable hash of the file name."""
    if any("split" in r.meta for r in records):
        by = lambda name: [r for r in records if r.meta.get("split", "train") == name]  # noqa: E731
        return {"train": by("train"), "val": by(cfg.val_split), "unseen": by(cfg.unseen_split)}
    held = lambda r: zlib.crc32(r.path.name.encode()) % 10_000 < cfg.holdout_fraction * 10_000  # noqa: E731
    return {"train": [r for r in records if not held(r)], "val": [r for r in records if held(r)], "unseen": []}


def is_exact(caption: str, record: Record, domain: domains.Domain) -> bool:
    """The caption says what one of the row's references says, as the domain compares captions (Domain.same_caption:
    the same attribute values in any phrasing where the domain has a grammar; else the same normalised text)."""
    return any(domain.same_caption(caption, t) for t in record.texts)


class CaptionTask:
    """Data, model and loss of the captioner; see gen.training.engine.Task."""

    def __init__(self, cfg: CaptionConfig, run_dir: Path, resume_from: Path | None = None) -> None:
        self.cfg, self.run_dir, self.skips = cfg, run_dir, SkipLog()
        self.domain = domains.get(domains.of_data(cfg.data.source, cfg.data.path))
        self.lr_scale: dict[str, float] = {}
        records = read_records(cfg.data, default_dir=run_dir, skips=self.skips, all_splits=True)
        parts = split_records(records, cfg.eval)
        res, pre = cfg.data.resolution, cfg.data.preload
        self.dataset = ImageCaptionDataset(parts["train"], res, cfg.data.hflip, pre, self.skips)
        self.held = {k: ImageCaptionDataset(parts[k][: cfg.eval.max_items], res, False, pre, self.skips)
                     for k in ("val", "unseen") if parts[k]}
        log.info(format_summary(self.skips, self.dataset.usable()))  # the data check's summary, before any step
        check_enough_data(self.dataset, self.skips, cfg.train.batch_size)
        if cfg.model.decoder.pretrained:
            self.tokenizer = load_tokenizer(cfg.model.decoder.pretrained)
        elif resume_from is not None:  # only a resume reuses a vocabulary: the one its checkpoint was trained with
            self.tokenizer = adopt_tokenizer(tokenizer_of(resume_from), run_dir / "tokenizer")
        else:
            self.tokenizer = train_tokenizer([t for r in parts["train"] for t in r.texts], cfg.model.decoder.vocab_size)
            self.tokenizer.save_pretrained(run_dir / "tokenizer")
        self.model = build_captioner(cfg.model, self.tokenizer)

    def _nll(self, model: torch.nn.Module, pixels: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        ids, mask = (x.to(pixels.device) for x in tokenize(self.tokenizer, texts, self.cfg.model.decoder.max_length, add_eos=True))
        logits = model(pixels, ids, mask)[:, :-1]  # (B, T-1, V)
        target = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)  # (B, T-1), padding ignored
        return F.cross_entropy(logits.float().transpose(1, 2), target, ignore_index=-100)

    def loss(self, model: torch.nn.Module, batch: dict[str, Any]) -> torch.Tensor:
        pixels = batch["pixel_values"].to(next(model.parameters()).device)  # (B, 3, H, W)
        return self._nll(model, augment(pixels, self.cfg.augment), batch["text"])

    @torch.no_grad()
    def evaluate(self, model: Captioner, step: int, writer: SummaryWriter | None) -> dict[str, float]:
        """Validation loss, and exact-match of greedy captions on each held-out split."""
        metrics: dict[str, float] = {}
        device = next(model.parameters()).device
        for name, ds in self.held.items():
            losses, hits, n = [], 0, 0
            for start in range(0, len(ds), self.cfg.eval.batch_size):
                batch = collate([ds[i] for i in range(start, min(len(ds), start + self.cfg.eval.batch_size))])
                if not batch["text"]:
                    continue
                pixels = batch["pixel_values"].to(device)
                losses.append(float(self._nll(model, pixels, batch["text"])) * len(batch["text"]))
                captions = model.generate(pixels, self.tokenizer)
                hits += sum(is_exact(c, ds.records[i], self.domain) for c, i in zip(captions, batch["index"]))
                n += len(captions)
            if n:
                metrics[f"{name}/loss"], metrics[f"{name}/exact_match"] = sum(losses) / n, hits / n
        if writer is not None:
            for k, v in metrics.items():
                writer.add_scalar(k, v, step)
        log.info("step %d: %s", step, {k: round(v, 4) for k, v in metrics.items()})
        return metrics

    def export(self, model: Captioner, out: Path, metrics: dict[str, Any] | None = None) -> None:
        """RUN_DIR/model with a README.md model card, written to a temp folder that then replaces it: a failed
        write keeps the old one whole."""
        with atomic_dir(out) as tmp:
            model.save_pretrained(tmp, self.tokenizer)
            config_io.save(self.cfg, tmp / config_io.SAVED)
            write_model_card(tmp, "captioner", self.cfg, len(self.dataset), self.skips.summary(), metrics)


def train(config_path: str | Path | None, out: str | Path | None = None, overrides: list[str] | None = None,
          resume: str | None = None, overwrite: bool = False) -> Path:
    """Train a captioner from a YAML config; returns the model folder RUN_DIR/model.

    A folder that holds an earlier run needs `resume` ("latest" or a checkpoint) or `overwrite` (gen.training.rundir).
    """
    cfg = config_io.load(CaptionConfig, config_path, overrides)
    run_dir = run_dir_for(cfg.name, out)
    train_in_run_dir(cfg, run_dir, lambda checkpoint: CaptionTask(cfg, run_dir, checkpoint), resume, overwrite)
    return run_dir / "model"
