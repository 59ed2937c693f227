"""gen evaluate's classifier cache: keyed on the images' bytes too, kept in the user's cache folder (never in the
data folder, whose own `.classifier` is never read), and retrained when an entry is corrupt.

The real set is test_evaluate_real's: noisy red, green and blue squares that a ResNet-18 at 8 px learns in
seconds."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_model
from test_evaluate_real import CFG, COLORS, square, write_jsonl

from gen.evaluate.classifier import build
from gen.evaluate.real import evaluate_samples

CLASSES = sorted(COLORS)  # blue, green, red: the classifier's class order


def draw_real(root: Path, colour_of: dict[str, str]) -> None:
    """16 squares per label (4 test), each drawn in colour_of[label]; metadata.jsonl depends only on the labels."""
    rows = []
    for c, label in enumerate(COLORS):
        for i in range(16):
            name = f"images/{label}{i}.png"
            square(root / name, colour_of[label], seed=100 * c + i)
            rows.append({"file_name": name, "text": [f"a {label} thing", label], "label": label,
                         "split": "test" if i < 4 else "train"})
    write_jsonl(root, rows)


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ROUNDTRIP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def real_dir(tmp_path) -> Path:
    draw_real(tmp_path / "real", {c: c for c in COLORS})
    return tmp_path / "real"


@pytest.fixture
def samples_dir(tmp_path) -> Path:
    """Two images per colour, each drawn in the colour its prompt names."""
    root, rows = tmp_path / "samples", []
    for k, colour in enumerate([c for c in COLORS for _ in range(2)]):
        square(root / f"{k:05d}-seed{k}.png", colour, seed=1000 + k)
        rows.append({"file_name": f"{k:05d}-seed{k}.png", "text": f"a {colour} thing", "seed": k})
    write_jsonl(root, rows)
    return root


def entries(cache: Path) -> list[Path]:
    folder = cache / "classifiers"
    return sorted(folder.iterdir()) if folder.is_dir() else []


def test_changed_images_under_the_same_metadata_retrain(cache, real_dir, samples_dir):
    first = evaluate_samples(samples_dir, real_dir, cfg=CFG)
    assert (first["cas"], first["real_accuracy"], first["classifier"]["cached"]) == (1.0, 1.0, False)
    metadata = (real_dir / "metadata.jsonl").read_bytes()
    # Every real image recoloured (red drawn green, green blue, blue red); metadata.jsonl byte for byte the same.
    draw_real(real_dir, {"red": "green", "green": "blue", "blue": "red"})
    assert (real_dir / "metadata.jsonl").read_bytes() == metadata
    second = evaluate_samples(samples_dir, real_dir, overwrite=True, cfg=CFG)
    assert second["classifier"]["cached"] is False
    # A classifier of the new images reads every sample as another class, and the real test set perfectly.
    assert (second["cas"], second["real_accuracy"]) == (0.0, 1.0)
    assert [p["predicted"] for p in second["predictions"]] == ["blue", "blue", "red", "red", "green", "green"]
    assert len(entries(cache)) == 2  # one per content


def test_data_folder_classifier_is_never_read_nor_written(cache, real_dir, samples_dir):
    # A data folder from someone else, shipping a classifier that calls everything red, filed under the key
    # that metadata.jsonl and the default settings alone would give (what anyone can compute).
    always_red = build(len(CLASSES))
    with torch.no_grad():
        always_red.fc.weight.zero_()
        always_red.fc.bias.copy_(torch.tensor([0.0, 0.0, 10.0]))
    shipped = real_dir / ".classifier"
    shipped.mkdir()
    save_model(always_red, str(shipped / "model.safetensors"))
    key = hashlib.sha256((real_dir / "metadata.jsonl").read_bytes())
    key.update(json.dumps([CLASSES, dataclasses.asdict(CFG) | {"threads": None}]).encode())
    (shipped / "classifier.json").write_text(json.dumps({"fingerprint": key.hexdigest(), "train_minutes": 0.0}))
    listing = sorted(str(p.relative_to(real_dir)) for p in real_dir.rglob("*"))
    summary = evaluate_samples(samples_dir, real_dir, cfg=CFG)
    assert summary["classifier"]["cached"] is False
    assert (summary["cas"], summary["real_accuracy"]) == (1.0, 1.0)  # its own classifier, not the shipped one
    assert sorted(str(p.relative_to(real_dir)) for p in real_dir.rglob("*")) == listing  # nothing written there
    [entry] = entries(cache)
    assert sorted(p.name for p in entry.iterdir()) == ["classifier.json", "model.safetensors"]


def test_corrupt_cache_entry_is_retrained(cache, real_dir, samples_dir):
    first = evaluate_samples(samples_dir, real_dir, cfg=CFG)
    [entry] = entries(cache)
    for broken, content in [("classifier.json", b"{not json"), ("model.safetensors", b"\x00" * 16)]:
        (entry / broken).write_bytes(content)
        again = evaluate_samples(samples_dir, real_dir, overwrite=True, cfg=CFG)
        assert again["classifier"]["cached"] is False
        assert (again["cas"], again["real_accuracy"]) == (first["cas"], first["real_accuracy"])
        assert entries(cache) == [entry] and json.loads((entry / "classifier.json").read_text())["train_images"] == 36
    reused = evaluate_samples(samples_dir, real_dir, overwrite=True, cfg=CFG)
    assert reused["classifier"]["cached"] is True  # the rewritten entry is whole
    assert reused["fd"] == pytest.approx(first["fd"])


def test_cache_folder_follows_roundtrip_cache_then_xdg_then_home(tmp_path, monkeypatch):
    from gen.evaluate.classifier import cache_dir

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("ROUNDTRIP_CACHE", raising=False)
    assert cache_dir() == tmp_path / "home" / ".cache" / "roundtrip"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "roundtrip"
    monkeypatch.setenv("ROUNDTRIP_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
