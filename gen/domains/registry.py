"""Which world a folder or a model belongs to: the registry of domains and info.json declarations.

Three domains: plain (any captions), shapes (shapes/: one object) and scenes (scenes/: 1–4 objects). A folder declares its domain in info.json
({"domain": "shapes"}): `gen make-shapes` writes one, and `gen sample` writes its generator's (from the
model's saved config). An undeclared folder is plain.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from gen.core.config import read_saved
from gen.core.errors import UserError
from gen.core.outputs import atomic_write_text, dumps
from gen.domains.base import Domain, Plain, Scenes
from gen.domains.scenes import MultiObjectScenes
from gen.domains.shapes import Shapes

log = logging.getLogger(__name__)
INFO = "info.json"  # a folder's description; its "domain" key names the folder's domain


DOMAINS: dict[str, Domain] = {"plain": Plain(), "shapes": Shapes(), "scenes": MultiObjectScenes()}
PLAIN, SHAPES = DOMAINS["plain"], DOMAINS["shapes"]
# base.Scenes's methods, checked by name: the capability is optional, so no class has to declare it.
SCENE_METHODS = ("make_dataset", "ensure_dataset", "eval_prompts", "renders", "scene", "corrupt")


def get(name: str, where: str = "--domain") -> Domain:
    if name not in DOMAINS:
        raise UserError(f"{where}: unknown domain {name!r}; choose one of: {', '.join(DOMAINS)}")
    return DOMAINS[name]


def draws_scenes(domain: Domain) -> bool:
    """Whether DOMAIN draws its own images (has every method of base.Scenes); plain does not."""
    return all(callable(getattr(domain, method, None)) for method in SCENE_METHODS)


def scenes(domain: Domain, what: str) -> Scenes:
    """DOMAIN as a world that draws its own images, or a UserError saying it cannot `what` and which domains can."""
    if not draws_scenes(domain):
        able = [n for n, d in DOMAINS.items() if draws_scenes(d)]
        raise UserError(f"the {domain.name} domain cannot {what}: it draws no images of its own "
                        f"(domains that do: {', '.join(able) or 'none'})")
    return domain  # type: ignore[return-value]  # draws_scenes checked the protocol's methods


def undeclared_oracle() -> Domain:
    """The oracle for images of no declared domain: shapes. Folders were written before they declared their domain
    only while shapes was the one world with an oracle, so an undeclared folder of checkable prompts is shapes;
    scenes folders always declare theirs (`gen sample`, `gen geneval`)."""
    return DOMAINS["shapes"]


def generating() -> list[str]:
    """The domains that write their own data sets; each name is also a `data.source`."""
    return [n for n, d in DOMAINS.items() if draws_scenes(d)]


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
    """The domain of a data config: a source that names a domain (shapes) → it; a folder that declares one → that
    one; else plain."""
    if source in generating():
        return source
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
