"""Animal-MNIST (PyPI `animal-mnist` 0.4, MIT): 10,000 28×28 animal silhouettes → labelled, captioned examples.

The package is never imported: its modules import tensorflow. Its data are two gzip files of pickled numpy
arrays in `data/Animal_MNIST/`, read here by `load_arrays` without running any code the files could name.
"""
from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from gen.core.english import article
from gen.core.errors import DataError
from gen.data.prepare.write import Example, SourceInfo

INFO = SourceInfo(
    name="animal-mnist", module="animal_mnist", pip="pip install --no-deps animal-mnist==0.4",
    license="MIT", url="https://pypi.org/project/animal-mnist/",
    attribution="Animal-MNIST by Sina Mohammadi (MIT licence).",
)
DATA_DIR = Path("data") / "Animal_MNIST"
IMAGES, LABELS = "animal_data_version_3.gz", "animal_label_version_3.gz"
# Label k is the k-th name: the package's description lists them in this (alphabetical) order, and its
# images agree (checked by eye on a grid of each label's first images).
CLASSES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
TEMPLATES = ("a silhouette of {a} {c}", "{a} {c}", "the shape of {a} {c}")
TEST_PER_CLASS = 100
MAX_BYTES = 256 * 2**20  # the most a gzip member may expand to (the real images: 7.8 MB)
CHUNK = 2**20

# A numpy array pickles as _reconstruct(ndarray, shape, dtype) plus __setstate__ with the raw bytes, and
# these names are all such a pickle refers to. numpy 1.x writes numpy.core.multiarray, 2.x numpy._core.
_RECONSTRUCT = np.empty(0).__reduce__()[0]  # numpy's own function, whichever module it lives in
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain numpy arrays and nothing else (Python's pickle docs, "Restricting Globals").

    A pickle can call any importable function while it loads (os.system, say), and the project never runs
    code from a data file. With this find_class a file can only build arrays: any other name is refused.
    """

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused {module}.{name}: only numpy arrays may be loaded") from None


def read_array(path: Path, limit: int = MAX_BYTES) -> np.ndarray:
    """One gzip-pickled numpy array of numbers (object arrays, which could hold anything, are refused).

    The gzip is read in chunks up to `limit` bytes, because a file of a few megabytes can expand to gigabytes."""
    buffer = io.BytesIO()
    with gzip.open(path, "rb") as fh:
        while chunk := fh.read(min(CHUNK, limit + 1 - buffer.tell())):
            buffer.write(chunk)
            if buffer.tell() > limit:
                raise DataError(f"{path}: expands to more than {limit:,} bytes, far more than the package's data; "
                                f"reinstall it ({INFO.pip})")
    buffer.seek(0)
    array = ArrayOnlyUnpickler(buffer).load()
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise pickle.UnpicklingError(f"{path}: expected a numeric numpy array, found {type(array).__name__}")
    return array


def read_package_file(path: Path) -> np.ndarray:
    """read_array with every failure as a one-line DataError naming the file and the fix."""
    try:
        array = read_array(path)
    except (DataError, FileNotFoundError, PermissionError):
        raise  # already one line naming the file
    except Exception as err:  # a malformed gzip or pickle can raise almost any type; each means unusable
        reason = " ".join(str(err).split()) or type(err).__name__
        raise DataError(f"{path}: cannot be read ({reason}); reinstall the package ({INFO.pip})") from err
    if array.size == 0:
        raise DataError(f"{path}: holds an empty array; reinstall the package ({INFO.pip})")
    return array


def load_arrays(package_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int from the package folder, checked against each other.

    Every check runs here, before `gen prepare` writes anything: a label that is NaN, fractional or out of
    range would otherwise fail part-way through writing the PNGs."""
    folder = Path(package_dir) / DATA_DIR
    images, labels = read_package_file(folder / IMAGES), read_package_file(folder / LABELS)
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise DataError(f"{folder}: {images.shape} images do not match {labels.shape} labels")
    pixels, values = images.astype(np.float64), labels.astype(np.float64)  # one check for every numeric dtype
    if not (np.isfinite(pixels).all() and pixels.min() >= 0 and pixels.max() <= 255):
        raise DataError(f"{folder / IMAGES}: pixels outside 0..255 (or NaN)")
    with np.errstate(invalid="ignore"):  # NaN compares False; ~isfinite already marks it
        bad = ~np.isfinite(values) | (values != np.round(values)) | (values < 0) | (values >= len(CLASSES))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(f"{folder / LABELS}: {int(bad.sum())} labels are not whole numbers in "
                        f"0..{len(CLASSES) - 1} (the first, at index {first}, is {labels[first]})")
    return images.astype(np.uint8), labels.astype(np.int64)


def captions(name: str) -> list[str]:
    return [t.format(a=article(name), c=name) for t in TEMPLATES]


def test_mask(labels: np.ndarray, per_class: int = TEST_PER_CLASS, seed: int = 0) -> np.ndarray:
    """True for a seeded, class-balanced test set: `per_class` images of each label."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(len(labels), dtype=bool)
    for k in np.unique(labels):
        index = np.flatnonzero(labels == k)
        mask[rng.choice(index, size=min(per_class, len(index) // 2), replace=False)] = True
    return mask


def examples(package_dir: Path) -> Iterator[Example]:
    """Every image at its source 28 px (resizing is the training config's job), in the package's order.

    The files are read now, so a broken package fails before anything is written."""
    images, labels = load_arrays(package_dir)
    is_test = test_mask(labels)

    def example(i: int) -> Example:
        name = CLASSES[int(labels[i])]
        return Example(f"images/{i:05d}.png", Image.fromarray(images[i], "L"), captions(name), name,
                       "test" if is_test[i] else "train")
    return map(example, range(len(labels)))
