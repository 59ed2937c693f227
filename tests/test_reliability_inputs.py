"""Bad inputs: every bad file or value is a counted skip or one clear error, never a crash.

The bad files are real: PNGs that declare 400 million
pixels in 48 KB, 16-bit and float images, a JPEG with an EXIF Orientation tag, FIFOs behind symlinks.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from caption.search import read_folder_images
from gen.core.config import ConfigError, DataConfig, GenConfig, GenerateConfig, load
from gen.data import DataError, ImageCaptionDataset, SkipLog, load_image, read_coco, read_folder, read_records, read_rgb
from gen.data.images import MAX_PIXELS, to_8bit
from gen.domains.shapes import world as shapes
from gen.data import read_prompts

RED, BLUE = (255, 0, 0), (0, 0, 255)


def write_rows(folder: Path, rows: list) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def solid(path: Path, color=RED, size=(12, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def bomb_png(path: Path, width: int, height: int, rows: int | None = None) -> Path:
    """A real 1-bit greyscale PNG of width×height black pixels: zeros compress ~8000:1, so 20000² is 48 KB.
    `rows` writes only that many rows of data (the header still declares the full size)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    line = b"\0" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(line) for _ in range(height if rows is None else rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, greyscale
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


@contextlib.contextmanager
def deadline(seconds: int):
    """Fail instead of hanging: opening a FIFO would block for ever."""
    def expired(*_):
        raise TimeoutError(f"still running after {seconds} s: something opened a FIFO or decoded a bomb")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def test_bomb_png_helper_writes_a_real_png(tmp_path):
    small = bomb_png(tmp_path / "small.png", 20, 3)
    with Image.open(small) as im:
        assert (im.mode, im.size) == ("1", (20, 3)) and np.asarray(im).sum() == 0
    assert bomb_png(tmp_path / "big.png", 20000, 20000).stat().st_size < 60_000  # 48 KB, 400 Mpx declared


# ---------------------------------------------------------------- decompression bombs


@pytest.fixture
def bomb_folder(tmp_path) -> Path:
    root = tmp_path / "ds"
    solid(root / "good.png")
    bomb_png(root / "bomb.png", 20000, 20000)  # 400 M pixels: PIL raises DecompressionBombError
    bomb_png(root / "between.png", 10000, 10000)  # 100 M: PIL only warns, and would decode
    bomb_png(root / "huge.png", 60000, 60000, rows=10)  # 3.6 G declared: refused from the header alone
    write_rows(root, [{"file_name": n, "text": "x"} for n in ("good.png", "bomb.png", "between.png", "huge.png")])
    return root


def test_decompression_bomb_is_a_counted_skip(bomb_folder):
    skips = SkipLog()
    records = read_folder(bomb_folder, skips=skips)
    assert len(records) == 4 and not skips.counts  # the rows are fine; the images are refused when loaded
    with deadline(20):
        ds = ImageCaptionDataset(records, resolution=8, preload=True, skips=skips)
    assert ds[0]["pixel_values"].shape == (3, 8, 8) and [ds[i] for i in (1, 2, 3)] == [None, None, None]
    assert skips.counts == {"decompression bomb": 3}
    assert [i["file_name"] for i in skips.items] == ["bomb.png", "between.png", "huge.png"]
    assert [i["row"] for i in skips.items] == [2, 3, 4]
    assert ds.usable() == 1


def test_declared_size_is_checked_even_when_pil_is_told_not_to(bomb_folder, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # some libraries switch PIL's own check off
    with deadline(20):
        for name in ("bomb.png", "between.png", "huge.png"):
            with pytest.raises(ValueError, match="decompression bomb: declares .* over 89478485"):
                read_rgb(bomb_folder / name)
    assert MAX_PIXELS == 89_478_485


def test_caption_search_skips_bombs(bomb_folder):
    skips = SkipLog()
    with deadline(20):
        found = read_folder_images(bomb_folder, skips)
    assert [name for name, _ in found] == ["good.png"]
    assert skips.counts == {"decompression bomb": 3}


def test_caption_describe_and_score_skip_bombs(captioner_dir, bomb_folder, tmp_path):
    from caption.describe import describe
    from caption.evaluation.score import score_folder

    paths = [bomb_folder / n for n in ("good.png", "bomb.png", "between.png")]
    with deadline(60):
        results = describe(captioner_dir, paths)
    assert isinstance(results[0]["caption"], str)
    assert results[1]["skipped"].startswith("decompression bomb") and "caption" not in results[1]
    assert results[2]["skipped"].startswith("decompression bomb")
    # `caption score` reads the same rows: the 400-M-pixel PNG must be a skip there too, not an exit with rc 1.
    write_rows(bomb_folder, [{"file_name": "good.png", "text": "a red square"},
                             {"file_name": "bomb.png", "text": "a bomb"}])
    with deadline(120):
        summary = score_folder(captioner_dir, bomb_folder, tmp_path / "scored", k=2)
    assert summary["table"]["images"] == 1 and summary["table"]["skipped"] == 1
    assert [s["file_name"] for s in summary["skipped"]] == ["bomb.png"]


# ---------------------------------------------------------------- interrupted shapes builds


def test_interrupted_shapes_build_is_rebuilt_not_reused(tmp_path, monkeypatch):
    folder = tmp_path / "shapes"
    write_example = shapes._write_example

    def interrupted(out, index, *args):  # the real writer, stopped at image 10 as by Ctrl-C
        if index == 10:
            raise KeyboardInterrupt
        return write_example(out, index, *args)

    monkeypatch.setattr(shapes, "_write_example", interrupted)
    with pytest.raises(KeyboardInterrupt):
        shapes.make_dataset(folder, count=200, size=16)
    assert len(list((folder / "images").glob("*.png"))) == 10
    assert not (folder / "metadata.jsonl").exists() and not shapes.is_complete(folder)
    monkeypatch.undo()
    cfg = DataConfig(source="shapes", path=str(folder), resolution=16, generate=GenerateConfig(count=200))
    records = read_records(cfg, all_splits=True)
    assert len(records) == 200 and shapes.is_complete(folder)
    assert json.loads((folder / "info.json").read_text())["count"] == 200


def test_partial_build_without_info_json_is_rebuilt(tmp_path, caplog):
    folder = tmp_path / "shapes"
    shapes.make_dataset(folder, count=10, size=16)
    (folder / "info.json").unlink()  # rows, no info.json: a build stopped by a writer without that marker
    assert not shapes.is_complete(folder)
    cfg = DataConfig(source="shapes", path=str(folder), resolution=16, generate=GenerateConfig(count=200))
    with caplog.at_level(logging.WARNING, logger="gen.domains.shapes.world"):
        assert len(read_records(cfg, all_splits=True)) == 200
    assert "unfinished shapes build" in caplog.text


def test_finished_build_is_reused_and_a_different_one_is_named(tmp_path, caplog):
    folder = tmp_path / "shapes"
    shapes.make_dataset(folder, count=40, size=16)
    stamp = (folder / "metadata.jsonl").stat().st_mtime_ns
    cfg = DataConfig(source="shapes", path=str(folder), resolution=16, generate=GenerateConfig(count=40))
    assert len(read_records(cfg, all_splits=True)) == 40
    with caplog.at_level(logging.WARNING, logger="gen.domains.shapes.world"):
        assert len(read_records(dataclasses.replace(cfg, generate=GenerateConfig(count=80)), all_splits=True)) == 40
    assert (folder / "metadata.jsonl").stat().st_mtime_ns == stamp  # never rewritten
    assert "not the (80, 16, 0) asked for" in caplog.text
    # A finished set whose rows were cut short afterwards no longer counts as finished.
    lines = (folder / "metadata.jsonl").read_text().split("\n")
    (folder / "metadata.jsonl").write_text("\n".join(lines[:5]) + "\n")
    assert not shapes.is_complete(folder)


# ---------------------------------------------------------------- 16-bit and float images


def test_16bit_and_float_images_are_scaled_to_8_bits(tmp_path):
    ramp16 = np.array([[0, 257 * 64, 257 * 128, 65535]], dtype=np.uint16)
    Image.fromarray(ramp16).save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im:
        assert im.mode == "I;16"  # what PIL makes of a 16-bit greyscale PNG
    assert np.asarray(read_rgb(tmp_path / "g16.png"))[0, :, 0].tolist() == [0, 64, 128, 255]

    unit = np.array([[0.0, 0.25, 0.5, 1.0]], dtype=np.float32)
    Image.fromarray(unit, "F").save(tmp_path / "unit.tif")
    assert np.asarray(read_rgb(tmp_path / "unit.tif"))[0, :, 1].tolist() == [0, 64, 128, 255]

    wide = np.array([[-5.0, 64.0, 128.0, 300.0]], dtype=np.float32)  # above 1: read as [0, 255], clipped
    Image.fromarray(wide, "F").save(tmp_path / "wide.tif")
    assert np.asarray(read_rgb(tmp_path / "wide.tif"))[0, :, 2].tolist() == [0, 64, 128, 255]

    as_int32 = Image.fromarray(np.full((4, 4), 40000, dtype=np.int32))  # mode "I": how PIL reads other 16-bit files
    assert as_int32.mode == "I" and as_int32.convert("RGB").getextrema()[0] == (255, 255)  # the bug: white
    image, note = to_8bit(as_int32)
    assert np.asarray(image).max() == round(40000 / 257) and note.startswith("16-bit")


def test_high_depth_images_warn_once_per_data_set(tmp_path, caplog):
    root = tmp_path / "ds"
    root.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 65535 // (i + 1), dtype=np.uint16)).save(root / f"g{i}.png")
    Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32), "F").save(root / "f.tif")
    write_rows(root, [{"file_name": n, "text": "grey"} for n in ("g0.png", "g1.png", "g2.png", "f.tif")])
    skips = SkipLog()
    with caplog.at_level(logging.WARNING, logger="gen.data"):
        ds = ImageCaptionDataset(read_folder(root), resolution=8, preload=True, skips=skips)
    assert skips.notes == {"16-bit greyscale scaled to 8 bits (÷257)": 3,
                           "float image read as [0, 1] and scaled to 8 bits": 1}
    assert caplog.text.count("16-bit greyscale") == 1 and caplog.text.count("float image") == 1
    assert not skips.counts
    # 65535 → white (1.0); 65535 // 2 → mid-grey, where PIL's own convert gave white for every one of them.
    assert [round(float(ds[i]["pixel_values"].mean()), 2) for i in range(4)] == [1.0, 0.0, -0.33, 0.0]


# ---------------------------------------------------------------- EXIF orientation


def test_exif_orientation_is_applied(tmp_path):
    stored = Image.new("RGB", (16, 8), BLUE)
    stored.paste(RED, (0, 0, 8, 8))  # stored sideways: red on the left half, blue on the right
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view": the stored left becomes the top
    stored.save(tmp_path / "phone.jpg", quality=95, exif=exif)
    with Image.open(tmp_path / "phone.jpg") as im:
        assert im.size == (16, 8) and im.getexif()[0x0112] == 6  # a real tag that PIL leaves to the reader
    upright = np.asarray(read_rgb(tmp_path / "phone.jpg")).astype(int)
    assert upright.shape == (16, 8, 3)  # (H, W, C): tall, as a viewer shows it
    assert np.abs(upright[2, 4] - RED).max() < 30 and np.abs(upright[13, 4] - BLUE).max() < 30
    pixels = load_image(tmp_path / "phone.jpg", 8)  # the training path: short side 8 → 8×16 → centre crop
    assert pixels.shape == (3, 8, 8)


# ---------------------------------------------------------------- COCO JSON


def test_coco_file_level_problems_are_one_line_errors(tmp_path):
    bad = {
        "latin1.json": '{"images": [], "annotations": [{"caption": "caf\xe9"}]}'.encode("latin-1"),
        "list.json": b'[{"id": 1, "file_name": "a.png"}]',
        "broken.json": b'{"images": [',
        "images_dict.json": b'{"images": {"id": 1}, "annotations": []}',
        "no_images.json": b'{"annotations": []}',
    }
    expected = {"latin1.json": "not UTF-8", "list.json": "top level is a JSON list", "broken.json": "not valid JSON",
                "images_dict.json": '"images" is a JSON dict', "no_images.json": 'no "images" list'}
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DataError) as err:
            read_coco(tmp_path / name)
        message = str(err.value)
        assert message.startswith(str(tmp_path / name)) and expected[name] in message and "\n" not in message
    with pytest.raises(FileNotFoundError, match="no such COCO captions file"):
        read_coco(tmp_path / "absent.json")


def test_coco_bad_rows_are_counted_skips(tmp_path):
    solid(tmp_path / "a.png")
    solid(tmp_path / "b.png")
    data = {
        "images": [{"id": 1, "file_name": "a.png"}, "not an image row", 7, {"id": [2], "file_name": "b.png"},
                   {"id": 3, "file_name": "b.png"}],
        "annotations": [{"image_id": 1, "caption": "a red square"}, "free text", None, [1, 2],
                        {"image_id": [1], "caption": "unhashable id"}, {"caption": "no id"},
                        {"image_id": 3, "caption": 42}, {"image_id": 3, "caption": "b's caption"}],
    }
    (tmp_path / "captions.json").write_bytes(b"\xef\xbb\xbf" + json.dumps(data).encode())  # with a BOM: still fine
    skips = SkipLog()
    records = read_coco(tmp_path / "captions.json", skips=skips)
    assert [(r.path.name, r.texts, r.row) for r in records] == [("a.png", ["a red square"], 0),
                                                                ("b.png", ["b's caption"], 4)]
    assert skips.counts == {"annotation is not an object": 3, "annotation has no image_id": 2,
                            "image row is not an object": 2, "empty caption": 1}


# ---------------------------------------------------------------- line splitting


def test_only_newlines_split_rows_and_prompts(tmp_path):
    solid(tmp_path / "a.png")
    solid(tmp_path / "b.png")
    odd = "a red square\u2028on the left\x85of it\x1cthere"  # all of these are str.splitlines boundaries
    (tmp_path / "metadata.jsonl").write_text(
        json.dumps({"file_name": "a.png", "text": odd}, ensure_ascii=False) + "\r\n"
        + json.dumps({"file_name": "b.png", "text": "two"}) + "\n", encoding="utf-8")
    skips = SkipLog()
    records = read_folder(tmp_path, skips=skips)
    assert [(r.path.name, r.texts, r.row) for r in records] == [("a.png", [odd], 1), ("b.png", ["two"], 2)]
    assert not skips.counts
    (tmp_path / "prompts.txt").write_text("a red circle\u2028on the left\n\nsecond\x0cprompt\r\n  \nthird",
                                          encoding="utf-8")
    assert read_prompts(tmp_path / "prompts.txt") == ["a red circle\u2028on the left", "second\x0cprompt", "third"]


# ---------------------------------------------------------------- search stays inside its folder


def test_search_refuses_symlinks_out_of_the_folder(tmp_path):
    root = tmp_path / "imgs"
    solid(root / "good.png")
    solid(root / "sub" / "also.png", BLUE)
    secret = solid(tmp_path / "secret.png", BLUE)
    os.mkfifo(tmp_path / "outside_fifo")
    os.mkfifo(root / "fifo.png")
    (root / "link.png").symlink_to(secret)
    (root / "fifo_link.png").symlink_to(tmp_path / "outside_fifo")
    (root / "inner_link.png").symlink_to(root / "good.png")  # inside: allowed, as in the data loader
    (root / "outdir").symlink_to(tmp_path, target_is_directory=True)  # never walked into
    skips = SkipLog()
    with deadline(20):
        found = read_folder_images(root, skips)
    assert [name for name, _ in found] == ["good.png", "inner_link.png", "sub/also.png"]
    assert skips.counts == {"file is outside the images folder": 2, "not a regular file": 1}
    assert {i["file_name"] for i in skips.items} == {"link.png", "fifo_link.png", "fifo.png"}


# ---------------------------------------------------------------- config ranges


@pytest.mark.parametrize("override, key, allowed", [
    ("train.lr=nan", "train.lr", "a finite number > 0"),
    ("train.lr=0", "train.lr", "a finite number > 0"),
    ("train.lr=.inf", "train.lr", "a finite number > 0"),
    ("train.batch_size=0", "train.batch_size", "≥ 1"),
    ("train.grad_accum=0", "train.grad_accum", "≥ 1"),
    ("train.max_steps=-5", "train.max_steps", "≥ 1"),
    ("train.ckpt_every=0", "train.ckpt_every", "≥ 1"),
    ("train.keep_last=-1", "train.keep_last", "≥ 0"),
    ("train.log_every=0", "train.log_every", "≥ 1"),
    ("train.eval_every=-1", "train.eval_every", "≥ 0"),
    ("train.warmup_steps=-1", "train.warmup_steps", "≥ 0"),
    ("train.max_minutes=0", "train.max_minutes", "null or > 0"),
    ("train.max_minutes=nan", "train.max_minutes", "null or > 0"),
    ("train.grad_clip=-1", "train.grad_clip", "≥ 0"),
    ("train.ema_decay=1", "train.ema_decay", "in [0, 1)"),
    ("train.weight_decay=nan", "train.weight_decay", "finite"),
    ("train.weight_decay=-0.1", "train.weight_decay", "≥ 0"),
    ("train.threads=0", "train.threads", "null or ≥ 1"),
    ("train.max_bad_steps=0", "train.max_bad_steps", "≥ 1"),
    ("data.resolution=4", "data.resolution", "≥ 8"),
    ("diffusion.cond_drop=1.5", "diffusion.cond_drop", "in [0, 1]"),
    ("text.max_length=1", "text.max_length", "≥ 2"),
    ("sample.steps=0", "sample.steps", "≥ 1"),
    ("sample.guidance=nan", "sample.guidance", "finite"),
])
def test_out_of_range_config_values_are_named(override, key, allowed):
    with pytest.raises(ConfigError) as err:
        load(GenConfig, None, [override])
    message = str(err.value)
    assert message.startswith(f"config key {key}=") and allowed in message
    shown, given = message.split("=", 1)[1].split(" ")[0], override.split("=", 1)[1]
    assert float(shown) == float(given.replace(".inf", "inf")) or (shown == given == "nan")  # the value, too


def test_captioner_config_is_checked_too_and_edges_are_allowed():
    from caption.train import CaptionConfig

    for override in ("train.batch_size=0", "train.max_steps=-5", "model.decoder.max_length=1", "eval.batch_size=0"):
        with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.")):
            load(CaptionConfig, None, [override])
    edges = ["train.keep_last=0", "train.eval_every=0", "train.max_minutes=null", "train.threads=null",
             "train.ema_decay=0", "train.grad_clip=0", "train.warmup_steps=0", "diffusion.cond_drop=1",
             "data.resolution=8", "train.max_steps=1", "sample.guidance=0"]
    cfg = load(GenConfig, None, edges)
    assert (cfg.train.keep_last, cfg.train.max_minutes, cfg.diffusion.cond_drop) == (0, None, 1.0)
