"""Image–caption data sets for training: the records a config names, images as tensors, batches.

Rows are read and checked in records.py, image files opened in images.py; gen.data re-exports all three.
A bad image never stops a run: it is skipped, counted by reason and warned about.
"""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler
from torchvision.transforms import functional as TF
from tqdm.auto import tqdm

from gen import domains
from gen.core.config import DataConfig
from gen.core.terminal import printable
from gen.data.images import UNREADABLE, decode_rgb, open_image, skip_reason
from gen.data.records import DataError, Record, SkipLog, label_of, read_coco, read_folder

log = logging.getLogger(__name__)


def read_records(cfg: DataConfig, default_dir: str | Path | None = None, skips: SkipLog | None = None,
                 all_splits: bool = False) -> list[Record]:
    """The records a data config names (`all_splits`: ignore data.split), only those of `data.labels` when it
    lists some; a domain's own data (data.source shapes) is written first when missing."""
    records = _read_source(cfg, default_dir, skips, None if all_splits else cfg.split)
    return records if cfg.labels is None else only_labels(records, cfg.labels)


def only_labels(records: list[Record], labels: Sequence[str]) -> list[Record]:
    """The records whose label is one of `labels`; a label that no record has is an error, not an empty class."""
    wanted = set(labels)
    found = [label_of(r) for r in records]
    missing = wanted - set(found)
    if missing:
        raise DataError(f"data.labels names {len(missing)} label(s) no row has, e.g. {sorted(missing)[:3]}; fix "
                        "data.labels or point data.path at the data set that has them")
    return [r for r, label in zip(records, found) if label in wanted]


def _read_source(cfg: DataConfig, default_dir: str | Path | None, skips: SkipLog | None,
                 split: str | None) -> list[Record]:
    if cfg.source == "coco":
        return read_coco(cfg.path, cfg.image_root or None, skips)
    if cfg.source == "folder":
        if not cfg.path:
            raise ValueError("data.path is empty: name a folder with metadata.jsonl (--set data.path=DIR)")
        return read_folder(cfg.path, split, skips)
    if cfg.source == "hf":
        from gen.data.hf import read_hf  # `datasets` is optional and slow to import

        return read_hf(cfg, split, skips)
    if cfg.source in domains.generating():  # a world that draws its own data: write it first when missing
        folder = Path(cfg.path or Path(default_dir or ".") / "data")
        world = domains.scenes(domains.get(cfg.source), "write a data set")
        world.ensure_dataset(folder, count=cfg.generate.count, size=cfg.resolution, seed=cfg.generate.seed)
        return read_folder(folder, split, skips)
    *sources, last = ["folder", "coco", "hf", *domains.generating()]
    raise ValueError(f"data.source must be {', '.join(sources)} or {last}, not {cfg.source!r}")


def image_to_tensor(image: Image.Image, resolution: int) -> torch.Tensor:
    """RGB, resized (short side) and centre-cropped to `resolution`; uint8 (3, R, R)."""
    image = TF.resize(image.convert("RGB"), resolution, interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    return TF.pil_to_tensor(TF.center_crop(image, [resolution, resolution]))


def read_rgb(path: Path | bytes, skips: SkipLog | None = None) -> Image.Image:
    """An image file (or encoded bytes) as every reader sees it: refused when it is not a regular file or a
    decompression bomb (gen.data.images), upright by its EXIF orientation, 16-bit/float scaled to 8 bits (noted once
    in `skips`), RGB."""
    with open_image(path) as im:
        image, note = decode_rgb(im)
    name = "an in-memory image" if isinstance(path, bytes) else path.name
    if note and skips is not None:
        skips.note(name, note)
    elif note:
        log.warning("%s: %s", printable(name), note)
    return image


def read_record_rgb(rec: Record, skips: SkipLog) -> Image.Image | None:
    """`read_rgb` for a data-set row; an unreadable image is counted in `skips` (with its row) and gives None."""
    try:
        return read_rgb(rec.path, skips)
    except UNREADABLE as err:
        skips.skip(rec.path.name, skip_reason(err), rec.row)
        return None


def load_image(path: Path | bytes, resolution: int, skips: SkipLog | None = None) -> torch.Tensor:
    return image_to_tensor(read_rgb(path, skips), resolution)


class ImageCaptionDataset(Dataset):
    """Items are {"pixel_values": (3, R, R) in [-1, 1], "text": str, "index": int}, or None for a bad image.

    A key is an index or (index, draw): `draw` picks one of several captions, so the caption seen
    at each visit is a pure function of the sampler's state and resumes exactly.
    """

    def __init__(self, records: Sequence[Record], resolution: int, hflip: bool = False,
                 preload: bool = False, skips: SkipLog | None = None) -> None:
        self.records = list(records)
        self.resolution = resolution
        self.hflip = hflip
        self.skips = skips if skips is not None else SkipLog()
        self.cache: list[torch.Tensor | None] | None = None
        if preload:
            self.cache = [self._decode(i) for i in tqdm(range(len(self.records)), desc="loading images", leave=False)]

    def __len__(self) -> int:
        return len(self.records)

    def _decode(self, i: int) -> torch.Tensor | None:
        rec = self.records[i]
        try:
            return load_image(rec.path if rec.image is None else rec.image, self.resolution, self.skips)
        except UNREADABLE as err:
            self.skips.skip(rec.path.name, skip_reason(err), rec.row)
            return None

    def usable(self) -> int:
        """Items that will be used: all, less the preloaded ones that failed to decode (unknown until used otherwise)."""
        return len(self) if self.cache is None else sum(x is not None for x in self.cache)

    def image(self, i: int) -> torch.Tensor | None:
        return self.cache[i] if self.cache is not None else self._decode(i)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | None:
        index, draw = key if isinstance(key, tuple) else (key, 0)
        pixels = self.image(index)
        if pixels is None:
            return None
        rng = random.Random(draw)
        flip, pick = rng.random() < 0.5, rng.random()  # both drawn always: the caption is the same with or without hflip
        if self.hflip and flip:
            pixels = pixels.flip(-1)
        texts = self.records[index].texts
        text = texts[int(pick * len(texts))]
        return {"pixel_values": pixels.float() / 127.5 - 1.0, "text": text, "index": index}


def collate(items: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """Stack a batch, dropping the items that failed to load (already counted by the data set)."""
    items = [it for it in items if it is not None]
    if not items:
        return {"pixel_values": torch.empty(0), "text": [], "index": []}
    return {
        "pixel_values": torch.stack([it["pixel_values"] for it in items]),  # (B, 3, R, R)
        "text": [it["text"] for it in items],
        "index": [it["index"] for it in items],
    }


class EpochBatchSampler(Sampler):
    """Shuffled batches whose order depends only on (seed, step), so `--resume` replays data exactly.

    With several processes each takes its own slice of one global batch (rank::world_size).
    """

    def __init__(self, n: int, batch_size: int, seed: int, start_batch: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        total = batch_size * world_size
        if n < total:
            raise ValueError(f"the data set has {n} usable items, fewer than one batch ({total})")
        self.n, self.batch_size, self.seed, self.start_batch = n, batch_size, seed, start_batch
        self.rank, self.world_size = rank, world_size
        self.per_epoch = n // total  # drop the ragged tail so every step sees a full batch

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        batch = self.start_batch
        while True:
            epoch, pos = divmod(batch, self.per_epoch)
            gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            total = self.batch_size * self.world_size
            order = torch.randperm(self.n, generator=gen)[pos * total:(pos + 1) * total][self.rank::self.world_size]
            yield [(int(i), hash((self.seed, epoch, int(i))) & 0x7FFFFFFF) for i in order]
            batch += 1

    def __len__(self) -> int:  # infinite in practice; accelerate asks for a length
        return 10**12
