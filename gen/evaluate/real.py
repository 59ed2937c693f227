"""`gen evaluate SAMPLES --real DIR`: how recognisable generated images are, judged by a classifier of real data.

- Classification Accuracy Score (Ravuri & Vinyals 2019, "Classification Accuracy Score for Conditional
  Generative Models"): the share of generated images that a classifier trained on real images reads as the
  class their prompt asked for, beside that classifier's accuracy on real test images. Here the classifier is
  trained on real data and reads generated data (the paper's CAS trains on generated data and tests on real;
  this direction needs no classifier per model, so one classifier scores every model on the same scale).
- Fréchet distance (Heusel et al. 2017's FID formula) in that classifier's penultimate feature space,
  generated vs real test, with real train vs real test at the same number of images as the floor: the
  distance has a bias that grows as the count shrinks, so a floor at the same count is the fair comparison.

Each sample's label is its row's `label`, else its prompt looked up among the real set's captions; prompts that
map to no label are counted and left out. evaluation.json lists every judged image's label and the classifier's
reading (`predictions`), so `caption score` can measure how often its judge agrees with the classifier, and how
the images were chosen (`selection`, gen/evaluate/selection.py): every score of a best-of-N folder is of the
kept candidates, not of plain samples.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from gen.core.errors import UserError
from gen.core.outputs import atomic_write_text, dumps, refuse_existing
from gen.data.labels import caption_labels, labelled, row_name, sample_labels
from gen.data.records import Record, SkipLog, label_of, read_folder
from gen.evaluate.class_grid import class_grid
from gen.evaluate.classifier import ClassifierConfig, cached_classifier, load_pixels, predict
from gen.evaluate.html import write_html
from gen.data.selection import describe, folder_selection

log = logging.getLogger(__name__)
OUTPUTS = ("evaluation.json", "evaluation.html", "per_class_grid.png")


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """‖μa − μb‖² + tr(Σa + Σb − 2 (Σa Σb)^½) of two feature sets (N, D).

    tr (Σa Σb)^½ is the sum of the square roots of the eigenvalues of Σa Σb, which are real and ≥ 0 because
    both are covariance matrices; that needs no matrix square root (scipy.linalg.sqrtm), and no complex part
    to discard when Σ is singular, as it is with fewer images than feature dimensions.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mu = a.mean(axis=0) - b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    eig = np.linalg.eigvals(cov_a @ cov_b).real
    return float(mu @ mu + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(np.clip(eig, 0, None)).sum())


def per_class(classes: Sequence[str], wanted: Sequence[int], got: Sequence[int]) -> dict[str, dict[str, Any]]:
    counts = collections.Counter(wanted)
    hits = collections.Counter(w for w, g in zip(wanted, got) if w == g)
    return {c: {"n": counts[k], "correct": hits[k], "accuracy": hits[k] / counts[k] if counts[k] else None}
            for k, c in enumerate(classes)}


def evaluate_samples(samples_dir: str | Path, real_dir: str | Path, test_split: str = "test",
                     overwrite: bool = False, cfg: ClassifierConfig | None = None) -> dict[str, Any]:
    """Write SAMPLES/evaluation.json, evaluation.html and per_class_grid.png; return the summary."""
    samples_dir, real_dir, cfg = Path(samples_dir), Path(real_dir), cfg or ClassifierConfig()
    if not overwrite:
        refuse_existing([samples_dir / n for n in OUTPUTS], "gen evaluate")
    skips = SkipLog()
    real = read_folder(real_dir, split=None, skips=skips)
    classes = sorted({label_of(r) for r in labelled(real, "train")})
    if len(classes) < 2:
        raise UserError(f"{real_dir}: the train split has {len(classes)} labels; evaluation needs rows with "
                        '"label" and "split": "train" of at least two classes (see `gen prepare`)')
    test = labelled(real, test_split, classes)
    if not test:
        raise UserError(f"{real_dir}: no labelled rows of split {test_split!r}; pass --test-split")
    model, info = cached_classifier(real_dir, classes, labelled(real, "train", classes), cfg, skips)
    index = {c: k for k, c in enumerate(classes)}

    test_pixels, kept = load_pixels(test, cfg.resolution, skips)
    test_true = [index[label_of(test[i])] for i in kept]
    test_pred, test_feats = predict(model, test_pixels)
    real_accuracy = float(np.mean(np.array(test_true) == test_pred.numpy()))

    read = _read_generated(samples_dir, real, classes, index, model, cfg, skips)
    gen_pixels, wanted, got, gen_feats, unknown = read.pixels, read.wanted, read.got, read.features, read.unknown
    n = len(wanted)
    train_sample = labelled(real, "train", classes)
    order = np.random.default_rng(0).permutation(len(train_sample))[:n]
    floor_pixels, _ = load_pixels([train_sample[i] for i in order], cfg.resolution, skips)
    enough = n >= 2 and len(floor_pixels) >= 2
    summary = {
        "selection": read.selection,
        "cas": sum(w == g for w, g in zip(wanted, got)) / n if n else None,
        "real_accuracy": real_accuracy,
        "fd": frechet_distance(gen_feats.numpy(), test_feats.numpy()) if enough else None,
        "fd_floor": frechet_distance(predict(model, floor_pixels)[1].numpy(), test_feats.numpy()) if enough else None,
        "per_class": per_class(classes, wanted, got),
        "n_generated": n, "n_real_test": len(test_true), "n_floor": len(floor_pixels),
        "unknown_prompts": dict(unknown), "skipped": skips.summary(), "test_split": test_split,
        "classifier": {k: v for k, v in info.items() if k != "fingerprint"}, "predictions": read.predictions,
    }
    summary["cas_over_real"] = (summary["cas"] / real_accuracy if summary["cas"] is not None and real_accuracy
                                else None)
    class_grid(gen_pixels, wanted, got, classes, samples_dir / "per_class_grid.png",
               title=f"how the images were chosen: {describe(read.selection)}")
    write_html(samples_dir / "evaluation.html", summary, classes, gen_pixels, wanted, got)
    atomic_write_text(samples_dir / "evaluation.json", dumps(summary, indent=2))
    if unknown:
        log.warning("%d samples have prompts with no label in %s (left out): %s", sum(unknown.values()), real_dir,
                    ", ".join(list(unknown)[:5]))
    print(f"CAS {_pct(summary['cas'])} (classifier on real {test_split}: {_pct(real_accuracy)}); "
          f"FD {_num(summary['fd'])} (real-vs-real floor {_num(summary['fd_floor'])}); "
          f"{n} generated images ({describe(read.selection)}), {len(test_true)} real {test_split} images → "
          f"{samples_dir / 'evaluation.json'}")
    return summary


@dataclasses.dataclass
class _Generated:
    """The generated images the classifier read: pixels, asked and read class indices, features, and the
    per-image predictions, and how those images were chosen; prompts that name no class of the real set are counted
    in `unknown`."""

    pixels: torch.Tensor  # (N, 3, S, S)
    wanted: list[int]
    got: list[int]
    features: torch.Tensor  # (N, F)
    predictions: list[dict[str, str]]
    unknown: collections.Counter
    selection: dict[str, Any]


def _read_generated(samples_dir: Path, real: list[Record], classes: list[str], index: dict[str, int],
                    model: torch.nn.Module, cfg: ClassifierConfig, skips: SkipLog) -> _Generated:
    """Each sample's asked class (from its label or prompt), and what the classifier reads in its image."""
    samples = read_folder(samples_dir, split=None, skips=skips)
    asked = sample_labels(samples, caption_labels(real), classes)
    known = [(rec, a) for rec, a in zip(samples, asked) if a is not None]
    unknown = collections.Counter(rec.texts[0] for rec, a in zip(samples, asked) if a is None)
    pixels, kept = load_pixels([rec for rec, _ in known], cfg.resolution, skips)
    wanted = [index[known[i][1]] for i in kept]
    pred, features = predict(model, pixels)
    got = pred.tolist()
    predictions = [{"file_name": row_name(known[i][0], samples_dir), "label": classes[w], "predicted": classes[g]}
                   for i, w, g in zip(kept, wanted, got)]
    selection = folder_selection([known[i][0] for i in kept])
    return _Generated(pixels, wanted, got, features, predictions, unknown, selection)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"
