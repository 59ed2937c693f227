"""evaluation.html for `gen evaluate --real`: one self-contained page (images inlined), one row per class."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from gen.core.html import esc, png_data_uri, write_page
from gen.data.selection import describe

CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1em; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: left; vertical-align: middle; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { width: 48px; height: 48px; image-rendering: pixelated; border: 3px solid #aaa; margin: 1px; }
img.ok { border-color: #2a9d3a; } img.bad { border-color: #d33; }
p.selection { font-size: 1.15em; padding: 0.5em 0.8em; border-left: 5px solid #e09b00; background: #fff6e0; }
"""


def data_uri(pixels: torch.Tensor) -> str:
    """A uint8 (3, H, W) image as a base64 PNG data URI."""
    return png_data_uri(Image.fromarray(pixels.permute(1, 2, 0).numpy()))


def fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else esc(value)


def write_html(path: Path, summary: dict[str, Any], classes: Sequence[str], pixels: torch.Tensor,
               wanted: Sequence[int], got: Sequence[int]) -> None:
    """How the images were chosen, first: best-of-N changes what every number means. Then the headline numbers
    (the accuracy beside that selection again), then per class: accuracy and its images (green border: read as
    asked; red: not, with the class the classifier read in the tooltip)."""
    chosen = esc(describe(summary["selection"]))
    notes = {"cas": f"images: {chosen}"}
    head = "".join(f"<tr><th>{esc(k)}</th><td class=num>{fmt(summary[k])}</td><td>{notes.get(k, '')}</td></tr>"
                   for k in ("cas", "real_accuracy", "cas_over_real", "fd", "fd_floor", "n_generated", "n_real_test"))
    rows = []
    for k, name in enumerate(classes):
        stats = summary["per_class"][name]
        images = "".join(
            f'<img class={"ok" if g == w else "bad"} src="{data_uri(pixels[i])}" '
            f'title="read as {esc(classes[g])}" alt="{esc(name)}">'
            for i, (w, g) in enumerate(zip(wanted, got)) if w == k)
        rows.append(f"<tr><td>{esc(name)}</td><td class=num>{fmt(stats['accuracy'])}</td>"
                    f"<td class=num>{stats['n']}</td><td>{images}</td></tr>")
    unknown = summary["unknown_prompts"]
    note = (f"<p>{sum(unknown.values())} samples had prompts with no label and were left out: "
            f"{esc(', '.join(list(unknown)[:10]))}</p>" if unknown else "")
    body = f"""<p class=selection><b>How these images were chosen:</b> {chosen}.</p>
<p>CAS: the share of generated images the classifier reads as the class their prompt asked for, beside its
accuracy on real {esc(summary['test_split'])} images. FD: Fréchet distance in the classifier's feature space,
generated vs real; the floor is real train vs real at the same count.</p>
<table>{head}</table>{note}
<table><tr><th>class</th><th>accuracy</th><th>n</th><th>generated images</th></tr>{''.join(rows)}</table>"""
    write_page(path, "evaluation", CSS, body, heading="Generated images read by a classifier of real images")
