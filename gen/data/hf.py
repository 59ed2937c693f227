"""`data.source=hf`: a Hugging Face `datasets` data set → Records whose images stay encoded in memory.

Read from a local `save_to_disk` folder, a parquet file, a folder of data files (`train-*.parquet` →
split "train", as on the hub), or, with `data.name` and the network, the hub itself. Image columns are read
undecoded (`Image(decode=False)`), so each row carries its PNG/JPEG bytes and the training data set decodes
them through the same checks as files (gen.data.images). Bad rows are counted skips, as for a folder.

A cell that holds only a file path is read under the folder rule of metadata.jsonl (records.resolve_inside):
relative to the data set's own folder, never outside it. Loading writes nothing that outlives the call: a
parquet source is converted to Arrow in a temporary folder and held in memory, not cached under
~/.cache/huggingface.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

from PIL import Image

from gen.core.config import DataConfig
from gen.core.errors import UserError
from gen.data.records import DataError, Record, SkipLog, clean_texts, file_problem, resolve_inside

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
        scripts = sorted(path.glob("*.py")) if path.is_dir() else []
        if scripts:  # datasets would import it: a data folder from someone else must never run its code
            raise DataError(f"data.path {path} holds a loading script ({scripts[0].name}); roundtrip never runs "
                            "code from a data set: use a save_to_disk folder or parquet files without scripts")
        if path.is_dir() and any((path / f).is_file() for f in ("dataset_dict.json", "state.json")):
            return datasets.load_from_disk(str(path))  # memory-maps the folder's own Arrow files; writes nothing
        if path.is_file():
            if path.suffix != ".parquet":
                raise DataError(f"data.path {path}: data.source=hf reads .parquet files or folders, not {path.suffix}")
            return _load_in_memory(datasets, "parquet", data_files={"train": str(path)})
        return _load_in_memory(datasets, str(path))  # a folder of data files; split names from the file names
    if not cfg.name:
        raise UserError("data.source=hf needs data.path (a save_to_disk folder or parquet) or data.name (hub)")
    try:
        # never trust_remote_code: scripts from the hub are not run. The download itself is kept in the
        # Hugging Face hub cache (HF_HOME), as for any hub file; the Arrow conversion is not.
        return _load_in_memory(datasets, cfg.name)
    except OSError as err:  # offline (HF_HUB_OFFLINE, no network: ConnectionError), or not found
        raise UserError(f"could not load {cfg.name!r} from the Hugging Face hub ({err}); offline, save it with "
                        "save_to_disk or as parquet and set data.path") from None


def _load_in_memory(datasets: Any, path: str, **kwargs: Any) -> Any:
    """`load_dataset` whose Arrow conversion goes to a temporary folder, deleted once the tables are in memory.

    Its default cache (~/.cache/huggingface/datasets) would grow by a copy of every data set read, unasked.
    Holding the tables in memory costs little more than the records do: each keeps its encoded image anyway.
    """
    with tempfile.TemporaryDirectory(prefix="roundtrip-hf-") as cache:
        return datasets.load_dataset(path, cache_dir=cache, keep_in_memory=True, **kwargs)


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
    """What an image cell holds: encoded bytes, or (for a data set that only references files) the file path.

    Only real bytes count as bytes: a string there would be opened as a file name, past the folder rule."""
    if isinstance(value, dict):
        data, path = value.get("bytes"), value.get("path")
        if isinstance(data, bytes) and data:
            return data
        return Path(path) if isinstance(path, str) and path else None
    if isinstance(value, bytes):
        return value or None
    if isinstance(value, Image.Image):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        return buffer.getvalue()
    return None


def records_of(ds: Any, cfg: DataConfig, split: str | None, where: str, skips: SkipLog,
               root: Path | None = None) -> list[Record]:
    """The rows of one Dataset as Records; an image given only as a file path is read under `root` (the data
    set's folder), and refused when there is none (a hub data set) or the path leads outside it."""
    datasets = _datasets()
    columns = [cfg.image_column, cfg.caption_column] + ([cfg.label_column] if cfg.label_column else [])
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise DataError(f"{where}: no column {missing[0]!r} (columns: {', '.join(ds.column_names)}); set "
                        "data.image_column / data.caption_column / data.label_column")
    _check_column_types(ds.features, cfg, where, datasets)
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
        if isinstance(image, Path):
            inside = resolve_inside(root, str(image)) if root is not None else None
            if inside is None:
                skips.skip(str(image), "image path is outside the data-set folder" if root is not None
                           else "image is a file path, and a hub data set has no folder to read it from", i)
                continue
            problem = file_problem(inside)
            if problem:
                skips.skip(str(image), problem, i)
                continue
            image = inside
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


def _check_column_types(features: Any, cfg: DataConfig, where: str, datasets: Any) -> None:
    """A DataError naming the first configured column whose type cannot be what it is used for: every row of it
    would be skipped, or break the label lookups, so the whole data set is the mistake, not one row."""
    # List and LargeList are datasets >= 4's list features; older releases (the extra allows >= 2.18) have Sequence.
    lists = tuple(t for t in (getattr(datasets, n, None) for n in ("List", "LargeList", "Sequence")) if isinstance(t, type))

    def text(feature: Any) -> bool:
        if isinstance(feature, list) and len(feature) == 1:  # [Value("string")]: a list column in older releases
            return text(feature[0])
        if isinstance(feature, lists):
            return text(feature.feature)
        return isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string")

    def image(feature: Any) -> bool:
        if isinstance(feature, dict):  # an Image column saved as plain {bytes, path} structs
            return bool({"bytes", "path"} & set(feature))
        return isinstance(feature, datasets.Image) or (
            isinstance(feature, datasets.Value) and feature.dtype in ("binary", "large_binary"))

    def label(feature: Any) -> bool:
        return isinstance(feature, (datasets.ClassLabel, datasets.Value))

    wanted = [(cfg.image_column, image, "images (an Image column, bytes, or {bytes, path})"),
              (cfg.caption_column, text, "text (strings, or lists of strings)")]
    if cfg.label_column:
        wanted.append((cfg.label_column, label, "labels (a ClassLabel, string or integer column)"))
    for column, fits, what in wanted:
        if not fits(features[column]):
            raise DataError(f"{where}: column {column!r} is {features[column]}, not {what}; set "
                            "data.image_column / data.caption_column / data.label_column to the right column")


def data_folder(cfg: DataConfig) -> Path | None:
    """The folder a path-only image cell is relative to: the save_to_disk or parquet folder, a parquet file's
    folder, or None for a hub data set."""
    if not cfg.path:
        return None
    path = Path(cfg.path)
    return path.parent if path.is_file() else path


def read_hf(cfg: DataConfig, split: str | None, skips: SkipLog | None = None) -> list[Record]:
    """Records of a `datasets` data set; `split` None reads every split (each row's meta names its split).

    A single Dataset with a `split` column is filtered like a metadata.jsonl folder: rows of other splits go.
    """
    skips = skips if skips is not None else SkipLog()
    where = Path(cfg.path).name if cfg.path else cfg.name
    root = data_folder(cfg)
    records: list[Record] = []
    for name, ds in parts(load(cfg), split):
        records += records_of(ds, cfg, name, f"{where}/{name}" if name else where, skips, root)
    if split is not None:
        records = [r for r in records if r.meta.get("split", split) == split]
    return records
