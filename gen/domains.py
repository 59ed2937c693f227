"""Domains: what a data world knows about its captions, behind one small interface.

Generic code (`caption score`, best-of-N reranking, the captioner's exact-match metric) asks a domain
"is there an oracle? hard negatives? attributes to probe?" instead of parsing captions itself, so a
folder of photos is never read as shapes captions. Two domains:

- plain: any captions. No oracle, no hard negatives, no attributes; two captions match when their
  normalised text does.
- shapes: the scenes of gen/shapes.py: the strict pixel oracle, one-word hard negatives
  (gen/shapes_negatives.py) and the colour / shape / position attributes.

A folder declares its domain in info.json ({"domain": "shapes"}): `gen make-shapes` writes one, and
`gen sample` writes its generator's (from the model's saved config). An undeclared folder is plain.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Protocol

from PIL import Image

from . import shapes, shapes_negatives
from .cli import UserError
from .config import read_saved
from .outputs import atomic_write_text, dumps
from .shapes_verdict import Verdict

log = logging.getLogger(__name__)
INFO = "info.json"  # a folder's description; its "domain" key names the folder's domain


def same_text(candidate: str, reference: str) -> bool:
    """Equal after lower-casing, dropping punctuation and collapsing spaces ("Hello, world!" == "hello world")."""
    norm = lambda s: " ".join(re.sub(r"[^\w\s]", " ", s.lower()).split())  # noqa: E731
    return norm(candidate) == norm(reference)


class Domain(Protocol):
    """What scoring may ask of a data world."""

    name: str
    has_oracle: bool  # whether `oracle` can ever answer: scores then carry oracle fields, else none at all
    attributes: tuple[str, ...]  # the attributes `variants` edits (caption/attribute_probs.py); () for none

    def oracle(self, image: Image.Image, prompt: str) -> Verdict | None:
        """A pixel check of the prompt, or None where the domain has none for this prompt."""

    def hard_negatives(self, prompt: str) -> list[str]:
        """Captions a small edit away from the prompt that say something else."""

    def same_caption(self, candidate: str, reference: str) -> bool:
        """Whether a caption says what the reference says (the round trip's exact match)."""

    def variants(self, prompt: str) -> dict[str, list[tuple[str, str]]]:
        """Per attribute the prompt states: (value, caption) for its own value first, then each other value."""


class Plain:
    """Any captions: nothing to check pixels against and no grammar to edit."""

    name = "plain"
    has_oracle = False
    attributes: tuple[str, ...] = ()

    def oracle(self, image: Image.Image, prompt: str) -> Verdict | None:
        return None

    def hard_negatives(self, prompt: str) -> list[str]:
        return []

    def same_caption(self, candidate: str, reference: str) -> bool:
        return same_text(candidate, reference)

    def variants(self, prompt: str) -> dict[str, list[tuple[str, str]]]:
        return {}


class Shapes:
    """Single-object shapes scenes (gen/shapes.py)."""

    name = "shapes"
    has_oracle = True
    attributes = shapes.ATTRIBUTES

    def oracle(self, image: Image.Image, prompt: str) -> Verdict | None:
        """The strict oracle's verdict for a prompt that states every attribute; None for any other prompt:
        a verdict on part of a scene would count as a pass what the prompt left open."""
        stated = shapes.parse_caption(prompt)
        return shapes.check_strict(image, prompt) if stated and len(stated) == len(self.attributes) else None

    def hard_negatives(self, prompt: str) -> list[str]:
        return shapes_negatives.hard_negatives(prompt)

    def same_caption(self, candidate: str, reference: str) -> bool:
        """The same colour, shape and position in any phrasing; other captions by normalised text."""
        same = shapes_negatives.same_attributes(candidate, reference)
        return same_text(candidate, reference) if same is None else same

    def variants(self, prompt: str) -> dict[str, list[tuple[str, str]]]:
        return shapes_negatives.variants(prompt)


DOMAINS: dict[str, Domain] = {"plain": Plain(), "shapes": Shapes()}
PLAIN, SHAPES = DOMAINS["plain"], DOMAINS["shapes"]


def get(name: str, where: str = "--domain") -> Domain:
    if name not in DOMAINS:
        raise UserError(f"{where}: unknown domain {name!r}; choose one of: {', '.join(DOMAINS)}")
    return DOMAINS[name]


def declared(folder: str | Path) -> str | None:
    """The domain FOLDER/info.json names, or None (no info.json, no "domain" in it, or not readable)."""
    path = Path(folder) / INFO
    if not path.is_file():  # is_file(): a FIFO is never opened
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        log.warning("%s: not readable as JSON (%s); the folder declares no domain", path, err)
        return None
    name = info.get("domain") if isinstance(info, dict) else None
    return name if isinstance(name, str) else None


def declare(folder: str | Path, name: str) -> Path:
    """Write FOLDER/info.json naming the folder's domain (what `gen sample` records)."""
    get(name, "declare")
    return atomic_write_text(Path(folder) / INFO, dumps({"domain": name}, indent=1) + "\n")


def of_data(source: str | None, path: str | None) -> str:
    """The domain of a data config: source shapes → shapes; a folder that declares one → that one; else plain."""
    if source == "shapes":
        return "shapes"
    found = declared(path) if source == "folder" and isinstance(path, str) and path else None
    return found if found in DOMAINS else "plain"


def of_model(model_dir: str | Path) -> str:
    """A trained model's domain: that of the data config in its roundtrip_config.yaml (plain without one)."""
    data = read_saved(model_dir).get("data")
    return of_data(data.get("source"), data.get("path")) if isinstance(data, dict) else "plain"


UNDECLARED = "the default (the folder declares none)"  # resolve's reason when neither flag nor folder names one


def resolve(explicit: str | None, folder: str | Path) -> tuple[Domain, str]:
    """The domain to score FOLDER in, and why: an explicit choice, else the folder's info.json, else plain."""
    if explicit is not None:
        return get(explicit), "--domain"
    name = declared(folder)
    if name is not None:
        return get(name, f"{Path(folder) / INFO}"), f"declared in {Path(folder) / INFO}"
    return PLAIN, UNDECLARED
