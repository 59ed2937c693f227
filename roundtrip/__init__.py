"""roundtrip: the public API of the `gen` (text → image) and `caption` (image → text, judge) packages.

Each name is imported on first use (PEP 562 `__getattr__`): the models pull in torch, diffusers and transformers,
which take seconds, and `import roundtrip` (say, for `__version__`) should not.

    from roundtrip import TextToImagePipeline, Captioner, Judge
    pipe = TextToImagePipeline.from_pretrained("runs/demo/gen/model")    # a `gen train` model folder
    captioner, tokenizer = Captioner.from_pretrained("runs/demo/caption/model")
    judge = Judge("runs/demo/caption/model")                             # scores (image, prompt) pairs
"""
from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

# public name → the module that defines it
_EXPORTS = {
    "TextToImagePipeline": "gen.generator.pipeline",
    "Captioner": "caption.model",
    "Judge": "caption.judge.judge",
}
__all__ = ["Captioner", "Judge", "TextToImagePipeline", "__version__"]

try:
    __version__ = version("roundtrip")  # pyproject.toml holds the one version number
except PackageNotFoundError:  # a source tree used without `pip install -e .`
    __version__ = "0+unknown"

if TYPE_CHECKING:  # type checkers and IDEs see the real classes
    from caption.judge.judge import Judge
    from caption.model import Captioner
    from gen.generator.pipeline import TextToImagePipeline


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
