"""Image–caption data sets: a folder with metadata.jsonl, or COCO-captions JSON.

Bad rows never stop a run: each is skipped, counted by reason and warned about. Nothing outside
the data-set folder is ever read.
"""
from __future__ import annotations

import collections
import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Sampler
from torchvision.transforms import functional as TF
from tqdm.auto import tqdm

from .config import DataConfig

log = logging.getLogger(__name__)
UNREADABLE = (OSError, UnidentifiedImageError, ValueError, SyntaxError)  # what PIL raises on a bad image file


@dataclass
class Record:
    path: Path
    texts: list[str]
    meta: dict[str, Any] = field(default_factory=dict)  # the row's other fields (shapes: true attributes, split)


class SkipLog:
    """Counts skipped items by reason and keeps a few examples for the summary."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.items: list[dict[str, str]] = []

    def skip(self, what: str, reason: str) -> None:
        self.counts[reason] += 1
        self.items.append({"file_name": what, "reason": reason})
        log.warning("skipped %s: %s", what, reason)

    def summary(self) -> dict[str, int]:
        return dict(self.counts)


def resolve_inside(root: Path, name: str) -> Path | None:
    """The file `name` under `root`, or None if it is absolute or escapes `root` (e.g. ../../etc/passwd)."""
    if not name or Path(name).is_absolute():
        return None
    root = root.resolve()
    path = (root / name).resolve()
    return path if path.is_relative_to(root) else None


def _clean_texts(text: Any) -> list[str]:
    texts = text if isinstance(text, list) else [text]
    return [t.strip() for t in texts if isinstance(t, str) and t.strip()]


def _add_record(records: list[Record], skips: SkipLog, root: Path, name: Any, text: Any, meta: dict) -> None:
    if not isinstance(name, str) or not name:
        return skips.skip(repr(name), "row has no file_name")
    path = resolve_inside(root, name)
    if path is None:
        return skips.skip(name, "file_name is outside the data-set folder")
    texts = _clean_texts(text)
    if not texts:
        return skips.skip(name, "empty caption")
    if not path.is_file():
        return skips.skip(name, "missing file")
    records.append(Record(path, texts, meta))


def read_folder(folder: str | Path, split: str | None = None, skips: SkipLog | None = None) -> list[Record]:
    """Rows of `folder/metadata.jsonl` ({"file_name", "text", ...}); `split` keeps rows of that split."""
    root = Path(folder)
    meta_file = root / "metadata.jsonl"
    if not meta_file.is_file():
        raise FileNotFoundError(f"{meta_file} not found: a data-set folder needs a metadata.jsonl")
    skips = skips if skips is not None else SkipLog()
    records: list[Record] = []
    for lineno, line in enumerate(meta_file.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict):
                raise ValueError("not an object")
        except ValueError:
            skips.skip(f"metadata.jsonl line {lineno}", "row is not valid JSON")
            continue
        if split is not None and row.get("split", split) != split:
            continue
        meta = {k: v for k, v in row.items() if k not in ("file_name", "text")}
        _add_record(records, skips, root, row.get("file_name"), row.get("text"), meta)
    return records


def read_coco(json_path: str | Path, image_root: str | Path | None = None, skips: SkipLog | None = None) -> list[Record]:
    """COCO-captions JSON: `images` [{id, file_name}] and `annotations` [{image_id, caption}]."""
    json_path = Path(json_path)
    data = json.loads(json_path.read_text(encoding="utf-8"))
    root = Path(image_root) if image_root else json_path.parent
    skips = skips if skips is not None else SkipLog()
    captions: dict[Any, list[str]] = collections.defaultdict(list)
    for ann in data.get("annotations", []):
        captions[ann.get("image_id")].append(ann.get("caption"))
    records: list[Record] = []
    for image in data.get("images", []):
        meta = {"image_id": image.get("id")}
        _add_record(records, skips, root, image.get("file_name"), captions.get(image.get("id"), []), meta)
    return records


def read_records(cfg: DataConfig, default_dir: str | Path | None = None, skips: SkipLog | None = None,
                 all_splits: bool = False) -> list[Record]:
    """The records a data config names (`all_splits`: ignore data.split); shapes are written first when missing."""
    split = None if all_splits else cfg.split
    if cfg.source == "coco":
        return read_coco(cfg.path, cfg.image_root or None, skips)
    if cfg.source == "shapes":
        folder = Path(cfg.path or Path(default_dir or ".") / "data")
        if not (folder / "metadata.jsonl").is_file():
            from .shapes import make_dataset

            make_dataset(folder, count=cfg.shapes_count, size=cfg.resolution, seed=cfg.shapes_seed)
        return read_folder(folder, split, skips)
    if cfg.source == "folder":
        if not cfg.path:
            raise ValueError("data.path is empty: name a folder with metadata.jsonl (--set data.path=DIR)")
        return read_folder(cfg.path, split, skips)
    raise ValueError(f"data.source must be folder, coco or shapes, not {cfg.source!r}")


def image_to_tensor(image: Image.Image, resolution: int) -> torch.Tensor:
    """RGB, resized (short side) and centre-cropped to `resolution`; uint8 (3, R, R)."""
    image = TF.resize(image.convert("RGB"), resolution, interpolation=TF.InterpolationMode.BICUBIC, antialias=True)
    return TF.pil_to_tensor(TF.center_crop(image, [resolution, resolution]))


def load_image(path: Path, resolution: int) -> torch.Tensor:
    with Image.open(path) as im:
        return image_to_tensor(im, resolution)


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
            return load_image(rec.path, self.resolution)
        except UNREADABLE as err:
            self.skips.skip(rec.path.name, f"unreadable image ({type(err).__name__})")
            return None

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
