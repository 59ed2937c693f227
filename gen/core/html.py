"""One self-contained HTML page: images inlined as PNG data URIs, text escaped, written atomically.

`gen evaluate`'s evaluation.html and caption's report.html are both built from these pieces, so both
open offline from one file with no side files or external assets.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from PIL import Image

from gen.core.outputs import atomic_write_text


def esc(value: object) -> str:
    """Any value as text safe in HTML text and in a quoted attribute."""
    return html.escape(str(value), quote=True)


def png_data_uri(image: Image.Image) -> str:
    """An image as a base64 PNG data URI, so the page needs no side files."""
    if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA"):
        image = image.convert("RGB")  # PNG cannot store e.g. float or CMYK modes
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def page(title: str, css: str, body: str, heading: str | None = None) -> str:
    """A whole HTML document: `title` in the tab, `heading` (default: the title) as its <h1>, then `body`."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{esc(title)}</title>\n<style>{css}</style>\n</head>\n<body>\n"
        f"<h1>{esc(heading if heading is not None else title)}</h1>\n{body}\n</body>\n</html>\n"
    )


def write_page(path: str | Path, title: str, css: str, body: str, heading: str | None = None) -> Path:
    """`page(...)` written to `path`, its folder made if missing; a reader never sees half a page."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, page(title, css, body, heading))
