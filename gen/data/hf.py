"""`data.source=hf`: a Hugging Face `datasets` data set → Records whose images stay encoded in memory.

Read from a local `save_to_disk` folder, a parquet file, a folder of data files (`train-*.parquet` →
split "train", as on the hub), or, with `data.name` and the network, the hub itself. Image columns are read
undecoded (`Image(decode=False)`), so each row carries its PNG/JPEG bytes and the training data set decodes
them through the same checks as files (gen.data.images). Bad rows are counted skips, as for a folder.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from PIL import Image

from gen.core.config import DataConfig
from gen.core.errors import UserError
from gen.data.records import DataError, Record, SkipLog, clean_texts, file_problem

INSTALL = "pip install 'roundtrip[hf]' (or: pip install datasets)"
SCALARS = (str, int, float, bool, type(None))


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise UserError(f"data.source=hf needs the datasets package: {INSTALL}") from None
    return datasets


def load(cfg: DataConfig) -> Any:
    """A Dataset or DatasetDict from data.path (local) or data.name (the hub)."""
    datasets = _datasets()
    if cfg.path:
        path = Path(cfg.path)
        if not path.exists():
            raise FileNotFoundError(f"data.path {path} not found: name a save_to_disk folder or a parquet file/folder")
        if path.is_dir() and any((path / f).is_file() for f in ("dataset_dict.json", "state.json")):
            return datasets.load_from_disk(str(path))
        if path.is_file():
            if path.suffix != ".parquet":
                raise DataError(f"data.path {path}: data.source=hf reads .parquet files or folders, not {path.suffix}")
            return datasets.load_dataset("parquet", data_files={"train": str(path)})
        return datasets.load_dataset(str(path))  # a folder of data files; split names from the file names
    if not cfg.name:
        raise UserError("data.source=hf needs data.path (a save_to_disk folder or parquet) or data.name (hub)")
    try:
        return datasets.load_dataset(cfg.name)  # never trust_remote_code: scripts from the hub are not run
    except OSError as err:  # offline (HF_HUB_OFFLINE, no network: ConnectionError), or not found
        raise UserError(f"could not load {cfg.name!r} from the Hugging Face hub ({err}); offline, save it with "
                        "save_to_disk or as parquet and set data.path") from None


def parts(data: Any, split: str | None) -> list[tuple[str | None, Any]]:
    """(split name, Dataset) pairs: one split of a DatasetDict, or all of them (`split` None)."""
    if not hasattr(data, "keys"):  # a single Dataset
        return [(None, data)]
    if split is None:
        return list(data.items())
    if split not in data:
        raise DataError(f"the data set has splits {sorted(data)}, not {split!r}; set data.split")
    return [(split, data[split])]


def image_bytes(value: Any) -> bytes | Path | None:
    """What an image cell holds: encoded bytes, or (for a data set that only references files) the file path."""
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"]
        return Path(value["path"]) if value.get("path") else None
    if isinstance(value, bytes):
        return value or None
    if isinstance(value, Image.Image):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue()
    return None


def records_of(ds: Any, cfg: DataConfig, split: str | None, where: str, skips: SkipLog) -> list[Record]:
    datasets = _datasets()
    columns = [cfg.image_column, cfg.caption_column] + ([cfg.label_column] if cfg.label_column else [])
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise DataError(f"{where}: no column {missing[0]!r} (columns: {', '.join(ds.column_names)}); set "
                        "data.image_column / data.caption_column / data.label_column")
    if isinstance(ds.features[cfg.image_column], datasets.Image):
        ds = ds.cast_column(cfg.image_column, datasets.Image(decode=False))  # the bytes, decoded later and checked
    label = ds.features[cfg.label_column] if cfg.label_column else None
    names = label.int2str if isinstance(label, datasets.ClassLabel) else None
    records: list[Record] = []
    for i, row in enumerate(ds):
        name = f"{where}[{i}]"
        image, texts = image_bytes(row[cfg.image_column]), clean_texts(row[cfg.caption_column])
        if image is None:
            skips.skip(name, "row has no image", i)
            continue
        if not texts:
            skips.skip(name, "empty caption", i)
            continue
        if isinstance(image, Path) and file_problem(image):
            skips.skip(str(image), file_problem(image), i)
            continue
        meta = {k: v for k, v in row.items() if k not in (cfg.image_column, cfg.caption_column)
                and isinstance(v, SCALARS)}
        if cfg.label_column:
            value = row[cfg.label_column]
            meta["label"] = names(value) if names and isinstance(value, int) and value >= 0 else value
        if split is not None:
            meta["split"] = split
        if isinstance(image, Path):
            records.append(Record(image, texts, meta, i))
        else:
            records.append(Record(Path(where) / f"{i:06d}", texts, meta, i, image=image))
    return records


def read_hf(cfg: DataConfig, split: str | None, skips: SkipLog | None = None) -> list[Record]:
    """Records of a `datasets` data set; `split` None reads every split (each row's meta names its split).

    A single Dataset with a `split` column is filtered like a metadata.jsonl folder: rows of other splits go.
    """
    skips = skips if skips is not None else SkipLog()
    where = Path(cfg.path).name if cfg.path else cfg.name
    records: list[Record] = []
    for name, ds in parts(load(cfg), split):
        records += records_of(ds, cfg, name, f"{where}/{name}" if name else where, skips)
    if split is not None:
        records = [r for r in records if r.meta.get("split", split) == split]
    return records
