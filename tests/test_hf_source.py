"""data.source=hf: a `datasets` data set built here (save_to_disk and parquet) → the same Records and pixels."""
from __future__ import annotations

import pytest
import torch
from PIL import Image

datasets = pytest.importorskip("datasets")

from gen.core.config import DataConfig  # noqa: E402
from gen.data import ImageCaptionDataset, SkipLog, read_records  # noqa: E402

COLORS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


@pytest.fixture(autouse=True)
def local_cache(tmp_path, monkeypatch):
    """load_dataset writes Arrow files to its cache: keep them in the test's folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")


def make_dataset(rows: list[tuple[str, object]]) -> "datasets.Dataset":
    """Solid 8×8 squares: (colour name or None for no image, caption) per row; label = the colour."""
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=sorted(COLORS))})
    return datasets.Dataset.from_dict({
        "image": [Image.new("RGB", (8, 8), COLORS[c]) if c else None for c, _ in rows],
        "text": [t for _, t in rows],
        "label": [sorted(COLORS).index(c) if c else 0 for c, _ in rows],
    }, features=features)


ROWS = [("red", "a red square"), ("green", "a green square"), (None, "no image here"), ("blue", "  ")]


def config(path, **kw) -> DataConfig:
    return DataConfig(source="hf", path=str(path), resolution=4, label_column="label", **kw)


def test_save_to_disk_folder_reads_images_captions_labels_and_counts_bad_rows(tmp_path):
    make_dataset(ROWS).save_to_disk(tmp_path / "ds")
    skips = SkipLog()
    records = read_records(config(tmp_path / "ds"), skips=skips)
    assert [r.texts for r in records] == [["a red square"], ["a green square"]]
    assert [r.meta["label"] for r in records] == ["red", "green"]  # ClassLabel ints → names
    assert skips.summary() == {"row has no image": 1, "empty caption": 1}
    dataset = ImageCaptionDataset(records, resolution=4, preload=True, skips=skips)
    red = dataset[0]["pixel_values"]
    assert red.shape == (3, 4, 4)
    assert torch.allclose(red[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))  # 255, 0, 0 → [-1, 1]
    assert torch.allclose(dataset[1]["pixel_values"][:, 2, 2], torch.tensor([-1.0, 1.0, -1.0]))


def test_parquet_file_and_folder_of_split_files(tmp_path):
    make_dataset(ROWS[:2]).to_parquet(str(tmp_path / "one.parquet"))
    records = read_records(config(tmp_path / "one.parquet"))
    assert [r.meta["label"] for r in records] == ["red", "green"]
    assert records[0].image[:4] == b"\x89PNG"  # the encoded bytes travel, decoded only by the data set

    folder = tmp_path / "hub-layout"
    folder.mkdir()
    make_dataset(ROWS[:2]).to_parquet(str(folder / "train-00000-of-00001.parquet"))
    make_dataset([("blue", "a blue square")]).to_parquet(str(folder / "test-00000-of-00001.parquet"))
    assert [r.texts[0] for r in read_records(config(folder))] == ["a red square", "a green square"]
    assert [r.texts[0] for r in read_records(config(folder, split="test"))] == ["a blue square"]
    every = read_records(config(folder), all_splits=True)
    assert sorted((r.meta["split"], r.meta["label"]) for r in every) == [
        ("test", "blue"), ("train", "green"), ("train", "red")]


def test_dataset_dict_split_and_column_names(tmp_path):
    renamed = make_dataset(ROWS[:2]).rename_columns({"image": "img", "text": "caption"})
    datasets.DatasetDict({"train": renamed, "validation": renamed}).save_to_disk(tmp_path / "dd")
    cfg = config(tmp_path / "dd", image_column="img", caption_column="caption")
    assert len(read_records(cfg)) == 2
    with pytest.raises(ValueError, match=r"splits \['train', 'validation'\], not 'test'"):
        read_records(config(tmp_path / "dd", image_column="img", caption_column="caption", split="test"))
    with pytest.raises(ValueError, match="no column 'image'.*data.image_column"):
        read_records(config(tmp_path / "dd", caption_column="caption"))


def test_hub_name_offline_is_one_clear_error():
    from gen.core.errors import UserError

    with pytest.raises(UserError, match="save_to_disk or as parquet and set data.path"):
        read_records(DataConfig(source="hf", name="someone/not-here"))
