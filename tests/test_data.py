"""gen.data: metadata.jsonl and COCO parsing, image transforms, skipping bad input, the resumable sampler."""
from __future__ import annotations

import collections
import json
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image

from gen.data import (
    EpochBatchSampler,
    ImageCaptionDataset,
    SkipLog,
    collate,
    load_image,
    read_coco,
    read_folder,
    resolve_inside,
)

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def write_rows(folder: Path, rows: list) -> None:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")


def solid(path: Path, color=RED, size=(12, 12), mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path)
    return path


@pytest.fixture
def dataset_dir(tmp_path) -> Path:
    root = tmp_path / "ds"
    solid(root / "a.png", RED)
    solid(root / "sub" / "b.png", GREEN)
    solid(root / "c.png", BLUE)
    write_rows(root, [
        {"file_name": "a.png", "text": "a red square", "split": "train", "color": "red"},
        {"file_name": "sub/b.png", "text": ["a green square", "green block", "a square that is green"], "split": "train"},
        {"file_name": "c.png", "text": "a blue square", "split": "val"},
    ])
    return root


# ---------------------------------------------------------------- metadata.jsonl


def test_read_folder_parses_string_and_list_text(dataset_dir):
    records = read_folder(dataset_dir)
    assert [r.path.name for r in records] == ["a.png", "b.png", "c.png"]
    assert records[0].texts == ["a red square"]
    assert records[1].texts == ["a green square", "green block", "a square that is green"]
    assert records[1].path == (dataset_dir / "sub" / "b.png").resolve()
    # Other fields are kept as meta; file_name and text are not repeated there.
    assert records[0].meta == {"split": "train", "color": "red"}


def test_read_folder_split_filter(dataset_dir):
    assert [r.path.name for r in read_folder(dataset_dir, split="train")] == ["a.png", "b.png"]
    assert [r.path.name for r in read_folder(dataset_dir, split="val")] == ["c.png"]
    assert read_folder(dataset_dir, split="nope") == []


def test_rows_without_split_field_are_kept_by_any_split(tmp_path):
    solid(tmp_path / "x.png")
    write_rows(tmp_path, [{"file_name": "x.png", "text": "x"}])
    assert len(read_folder(tmp_path, split="train")) == 1
    assert len(read_folder(tmp_path, split="val")) == 1


def test_read_folder_needs_metadata(tmp_path):
    with pytest.raises(FileNotFoundError, match="metadata.jsonl"):
        read_folder(tmp_path)


def test_one_caption_drawn_per_visit(dataset_dir):
    ds = ImageCaptionDataset(read_folder(dataset_dir), resolution=8)
    texts = ds.records[1].texts
    drawn = [ds[(1, draw)]["text"] for draw in range(60)]
    assert all(t in texts for t in drawn)
    # Deterministic per draw key ...
    assert drawn == [ds[(1, draw)]["text"] for draw in range(60)]
    # ... and different draws reach every caption.
    assert set(drawn) == set(texts)
    # A plain index is draw 0; a single caption is always that caption.
    assert ds[1]["text"] == ds[(1, 0)]["text"]
    assert {ds[(0, d)]["text"] for d in range(10)} == {"a red square"}


def test_flip_and_caption_choice_are_independent(tmp_path):
    """With hflip on, every (flipped, caption) pair must occur: the two draws may not share one random number."""
    image = Image.new("RGB", (8, 8), RED)
    image.paste(Image.new("RGB", (4, 8), BLUE), (4, 0))  # red left half, blue right half
    image.save(tmp_path / "lr.png")
    write_rows(tmp_path, [{"file_name": "lr.png", "text": ["one", "two", "three"]}])
    ds = ImageCaptionDataset(read_folder(tmp_path), resolution=8, hflip=True)
    seen = collections.Counter()
    for draw in range(600):
        item = ds[(0, draw)]
        flipped = bool(item["pixel_values"][2, 4, 0] > 0)  # blue now on the left
        seen[(flipped, item["text"])] += 1
    assert {f for f, _ in seen} == {True, False}
    assert set(seen) == {(f, t) for f in (True, False) for t in ("one", "two", "three")}, seen


# ---------------------------------------------------------------- COCO


def test_read_coco(tmp_path):
    solid(tmp_path / "imgs" / "1.png", RED)
    solid(tmp_path / "imgs" / "2.png", GREEN)
    solid(tmp_path / "imgs" / "3.png", BLUE)
    data = {
        "images": [{"id": 1, "file_name": "1.png"}, {"id": 2, "file_name": "2.png"},
                   {"id": 3, "file_name": "3.png"}, {"id": 4, "file_name": "../secret.png"}],
        "annotations": [{"image_id": 1, "caption": "red one"}, {"image_id": 2, "caption": "green one"},
                        {"image_id": 1, "caption": "  also red  "}, {"image_id": 4, "caption": "escape"}],
    }
    solid(tmp_path / "secret.png")
    (tmp_path / "captions.json").write_text(json.dumps(data))
    skips = SkipLog()
    records = read_coco(tmp_path / "captions.json", tmp_path / "imgs", skips)
    assert [r.path.name for r in records] == ["1.png", "2.png"]
    assert records[0].texts == ["red one", "also red"]
    assert records[0].meta == {"image_id": 1}
    assert records[1].texts == ["green one"]
    # Image 3 has no caption, image 4 leaves the image root.
    assert skips.counts == {"empty caption": 1, "file_name is outside the data-set folder": 1}


def test_read_coco_image_root_defaults_to_json_folder(tmp_path):
    solid(tmp_path / "1.png")
    (tmp_path / "c.json").write_text(json.dumps({"images": [{"id": 7, "file_name": "1.png"}],
                                                 "annotations": [{"image_id": 7, "caption": "x"}]}))
    (record,) = read_coco(tmp_path / "c.json")
    assert record.path == (tmp_path / "1.png").resolve() and record.texts == ["x"]


# ---------------------------------------------------------------- images


def test_load_image_resizes_short_side_and_centre_crops(tmp_path):
    image = Image.new("RGB", (60, 20), RED)
    image.paste(Image.new("RGB", (20, 20), GREEN), (20, 0))
    image.paste(Image.new("RGB", (20, 20), BLUE), (40, 0))
    image.save(tmp_path / "wide.png")
    pixels = load_image(tmp_path / "wide.png", 10)  # 60x20 → 30x10 → centre 10x10: the green third
    assert pixels.shape == (3, 10, 10) and pixels.dtype == torch.uint8
    inner = pixels[:, :, 2:8].int()
    assert (inner[1] > 200).all() and (inner[0] < 40).all() and (inner[2] < 40).all()


def test_load_image_tall_image(tmp_path):
    image = Image.new("RGB", (16, 48), RED)
    image.paste(Image.new("RGB", (16, 16), GREEN), (0, 16))
    image.save(tmp_path / "tall.png")
    pixels = load_image(tmp_path / "tall.png", 8)
    assert pixels.shape == (3, 8, 8)
    assert (pixels[1, 2:6].int() > 200).all() and (pixels[0, 2:6].int() < 40).all()


@pytest.mark.parametrize("mode, color, expected", [
    ("L", 128, (128, 128, 128)),
    ("RGBA", (10, 200, 30, 128), (10, 200, 30)),
    ("P", 3, (90, 60, 30)),
    ("1", 1, (255, 255, 255)),
])
def test_load_image_converts_to_rgb(tmp_path, mode, color, expected):
    image = Image.new(mode, (12, 12), color)
    if mode == "P":
        palette = [0] * 768
        palette[9:12] = [90, 60, 30]
        image.putpalette(palette)
    image.save(tmp_path / "im.png")
    pixels = load_image(tmp_path / "im.png", 6)
    assert pixels.shape == (3, 6, 6)
    assert pixels[:, 3, 3].tolist() == list(expected)


def test_dataset_items_are_scaled_to_minus_one_one(dataset_dir):
    ds = ImageCaptionDataset(read_folder(dataset_dir), resolution=8, preload=True)
    item = ds[0]
    assert item["pixel_values"].shape == (3, 8, 8) and item["pixel_values"].dtype == torch.float32
    assert torch.allclose(item["pixel_values"][:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    assert item["index"] == 0
    batch = collate([ds[0], None, ds[2]])
    assert batch["pixel_values"].shape == (2, 3, 8, 8)
    assert batch["text"] == ["a red square", "a blue square"] and batch["index"] == [0, 2]
    assert collate([None])["text"] == []


# ---------------------------------------------------------------- bad input


def test_bad_rows_are_skipped_and_counted(tmp_path):
    root = tmp_path / "ds"
    solid(root / "good.png", RED)
    solid(root / "blank_caption.png")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 10)
    full = root / "full.png"
    solid(full, GREEN, size=(64, 64))
    (root / "truncated.png").write_bytes(full.read_bytes()[: len(full.read_bytes()) // 2])
    (root / "notes.png").write_text("hello, I am text")
    secret = solid(tmp_path / "secret.png", BLUE)  # outside the data set
    write_rows(root, [
        {"file_name": "good.png", "text": "ok"},
        {"file_name": "corrupt.png", "text": "corrupt"},
        {"file_name": "truncated.png", "text": "truncated"},
        {"file_name": "notes.png", "text": "text file"},
        {"file_name": "missing.png", "text": "missing"},
        {"file_name": "blank_caption.png", "text": "   "},
        {"file_name": "blank_caption.png", "text": []},
        {"file_name": "blank_caption.png", "text": [3, None]},
        {"text": "no file"},
        "{this is not json",
        "[1, 2]",
        {"file_name": "../secret.png", "text": "escape"},
        {"file_name": "../../etc/passwd", "text": "escape"},
        {"file_name": str(secret), "text": "absolute"},
        {"file_name": "/etc/passwd", "text": "absolute"},
    ])
    skips = SkipLog()
    records = read_folder(root, skips=skips)
    assert [r.path.name for r in records] == ["good.png", "corrupt.png", "truncated.png", "notes.png"]
    assert all(r.path.is_relative_to(root.resolve()) for r in records)
    assert skips.counts == {
        "missing file": 1,
        "empty caption": 3,
        "row has no file_name": 1,
        "row is not valid JSON": 2,
        "file_name is outside the data-set folder": 4,
    }
    # The unreadable files pass the row checks and are caught when decoded, never crashing.
    ds = ImageCaptionDataset(records, resolution=8, preload=True, skips=skips)
    assert ds[0] is not None
    assert [ds[i] for i in (1, 2, 3)] == [None, None, None]
    unreadable = {k: v for k, v in skips.counts.items() if k.startswith("unreadable image")}
    assert sum(unreadable.values()) == 3
    assert {i["file_name"] for i in skips.items if i["reason"].startswith("unreadable")} == \
        {"corrupt.png", "truncated.png", "notes.png"}
    batch = collate([ds[i] for i in range(4)])
    assert batch["text"] == ["ok"] and batch["pixel_values"].shape == (1, 3, 8, 8)
    assert skips.summary() == dict(skips.counts)


def test_skips_are_logged(tmp_path, caplog):
    write_rows(tmp_path, [{"file_name": "gone.png", "text": "x"}])
    with caplog.at_level(logging.WARNING, logger="gen.data"):
        assert read_folder(tmp_path) == []
    assert "gone.png" in caplog.text and "missing file" in caplog.text


def test_nothing_outside_the_folder_is_read(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    secret = solid(tmp_path / "secret.png", BLUE)
    (root / "link.png").symlink_to(secret)  # a link inside that points outside
    write_rows(root, [{"file_name": "../secret.png", "text": "x"}, {"file_name": "link.png", "text": "y"},
                      {"file_name": str(secret), "text": "z"}])
    skips = SkipLog()
    assert read_folder(root, skips=skips) == []
    assert skips.counts == {"file_name is outside the data-set folder": 3}


@pytest.mark.parametrize("name, inside", [
    ("a.png", True), ("sub/../a.png", True), ("../a.png", False), ("../../etc/passwd", False),
    ("/etc/passwd", False), ("", False), ("sub/../../x", False),
])
def test_resolve_inside(tmp_path, name, inside):
    assert (resolve_inside(tmp_path, name) is not None) == inside


# ---------------------------------------------------------------- sampler


def take(sampler: EpochBatchSampler, n: int) -> list[list[tuple[int, int]]]:
    it = iter(sampler)
    return [next(it) for _ in range(n)]


def test_sampler_is_deterministic_given_seed():
    a = take(EpochBatchSampler(50, 8, seed=3), 20)
    assert a == take(EpochBatchSampler(50, 8, seed=3), 20)
    assert a != take(EpochBatchSampler(50, 8, seed=4), 20)
    assert all(len(b) == 8 for b in a)


def test_sampler_epochs_cover_items_once_and_reshuffle():
    n, bs = 50, 8
    batches = take(EpochBatchSampler(n, bs, seed=0), 12)  # 6 full batches per epoch, 2 left out
    epoch0 = [i for b in batches[:6] for i, _ in b]
    epoch1 = [i for b in batches[6:] for i, _ in b]
    assert len(set(epoch0)) == 48 and len(set(epoch1)) == 48
    assert epoch0 != epoch1
    # An item's draw key changes with the epoch, so a multi-caption item shows another caption.
    draws0 = {i: d for b in batches[:6] for i, d in b}
    draws1 = {i: d for b in batches[6:] for i, d in b}
    common = set(draws0) & set(draws1)
    assert sum(draws0[i] != draws1[i] for i in common) == len(common)


@pytest.mark.parametrize("k", [1, 5, 6, 13])
def test_sampler_restart_reproduces_the_tail(k):
    full = take(EpochBatchSampler(50, 8, seed=1), 20)
    assert take(EpochBatchSampler(50, 8, seed=1, start_batch=k), 20 - k) == full[k:]


def test_rank_slices_partition_one_global_batch():
    world, bs = 3, 4
    single = take(EpochBatchSampler(61, bs * world, seed=2), 10)
    ranks = [take(EpochBatchSampler(61, bs, seed=2, rank=r, world_size=world), 10) for r in range(world)]
    for step in range(10):
        parts = [ranks[r][step] for r in range(world)]
        assert all(len(p) == bs for p in parts)
        joined = [x for p in parts for x in p]
        assert len({i for i, _ in joined}) == bs * world  # disjoint
        assert sorted(joined) == sorted(single[step])  # together: the one global batch


def test_sampler_refuses_too_small_data():
    with pytest.raises(ValueError, match="fewer than one batch"):
        EpochBatchSampler(5, 4, seed=0, world_size=2)


def test_sampler_drives_a_dataloader(dataset_dir):
    ds = ImageCaptionDataset(read_folder(dataset_dir), resolution=8)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=EpochBatchSampler(len(ds), 2, seed=0), collate_fn=collate)
    batches = [b for _, b in zip(range(3), loader)]
    assert [b["pixel_values"].shape for b in batches] == [(2, 3, 8, 8)] * 3
    assert all(set(b["index"]) <= {0, 1, 2} for b in batches)



# ---------------------------------------------------------------- data configs


def test_read_records_writes_shapes_data_when_missing(tmp_path):
    from gen.core.config import DataConfig, GenerateConfig
    from gen.data import read_records

    cfg = DataConfig(source="shapes", resolution=8, generate=GenerateConfig(count=40), split="train")
    records = read_records(cfg, default_dir=tmp_path)
    assert (tmp_path / "data" / "metadata.jsonl").is_file()
    rows = [json.loads(line) for line in (tmp_path / "data" / "metadata.jsonl").read_text().splitlines()]
    assert len(rows) == 40
    assert len(records) == sum(r["split"] == "train" for r in rows) > 0
    assert all(r.meta["split"] == "train" and set(r.meta) >= {"color", "shape", "position"} for r in records)
    with Image.open(records[0].path) as im:
        assert im.size == (8, 8)
    # A second call reads what is there rather than writing again.
    stamp = (tmp_path / "data" / "metadata.jsonl").stat().st_mtime_ns
    assert [r.path for r in read_records(cfg, default_dir=tmp_path)] == [r.path for r in records]
    assert (tmp_path / "data" / "metadata.jsonl").stat().st_mtime_ns == stamp


def test_read_records_refuses_bad_sources(tmp_path):
    from gen.core.config import DataConfig
    from gen.data import read_records

    with pytest.raises(ValueError, match="data.path"):
        read_records(DataConfig(source="folder", path=""))
    with pytest.raises(ValueError, match="data.source"):
        read_records(DataConfig(source="webdataset", path=str(tmp_path)))


def test_data_labels_keeps_only_those_classes(tmp_path):
    from gen.core import config as config_io
    from gen.core.config import DataConfig
    from gen.data import read_records

    root = tmp_path / "ds"
    rows = []
    for i, (label, split) in enumerate([("cat", "train"), ("dog", "train"), ("cat", "unseen"), ("owl", "train"),
                                        (3, "train")]):
        solid(root / f"{i}.png")
        rows.append({"file_name": f"{i}.png", "text": f"a {label}", "label": label, "split": split})
    write_rows(root, rows)
    kept = read_records(DataConfig(path=str(root), labels=["cat", "3"]))
    assert [r.path.name for r in kept] == ["0.png", "4.png"]  # split train still applies; 3 reads as "3"
    assert len(read_records(DataConfig(path=str(root), labels=["cat"]), all_splits=True)) == 2
    assert len(read_records(DataConfig(path=str(root)))) == 4  # null keeps every label
    with pytest.raises(ValueError, match="no row has.*'emu'"):
        read_records(DataConfig(path=str(root), labels=["cat", "emu"]))  # a typo is not an empty class
    cfg = config_io.load(config_io.GenConfig, None, [f"data.path={root}", "data.labels=[dog]"])  # as --set gives it
    assert cfg.data.labels == ["dog"]
