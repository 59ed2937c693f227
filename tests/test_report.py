"""The HTML report and search strip: self-contained, escaped, one card per row."""

import base64
import html
import io
import re

import numpy as np
from PIL import Image

from caption.report.page import flatten, logprob_color, write_report, write_strip

EVIL_PROMPT = 'a red square <script>alert("x")</script>'


def _image(color: tuple[int, int, int]) -> Image.Image:
    return Image.new("RGB", (16, 16), color)


def _rows() -> list[dict]:
    return [
        {
            "image": _image((255, 0, 0)),
            "prompt": EVIL_PROMPT,
            "token_logprobs": [["a", -0.05], [" red", -1.2], [" square", -7.0], [" <script>", -3.0]],
            "caption": "a red square",
            "score": 1.23456,
            "passed": True,
            "oracle": {"color": True, "shape": True},
            "rank": 0,
        },
        {
            "image": _image((0, 0, 255)),
            "prompt": "a blue circle",
            "token_logprobs": [["a", -0.5], [" blue", -2.0], [" circle", -0.2]],
            "caption": "a green circle",
            "score": -0.5,
            "passed": False,
            "oracle": {"color": False, "shape": True},
            "rank": 3,
        },
        {
            "image": _image((0, 255, 0)),
            "prompt": "something odd",
            "token_logprobs": [],
            "caption": None,
            "score": 0.0,
            "passed": None,
            "oracle": None,
            "rank": None,
            "skipped_reason": "unparseable prompt",
        },
    ]


SUMMARY = {
    "n": 3,
    "auroc": 0.87654,
    "r_precision": {"r@1": 0.5, "r@5": 0.91},
    "skipped": [{"file_name": "odd<1>.png", "reason": "no <attributes>"}],
}


def _report(tmp_path) -> str:
    out = write_report(tmp_path / "sub" / "report.html", _rows(), SUMMARY, title="toy <report>")
    assert out.exists()
    return out.read_text(encoding="utf-8")


def test_one_card_per_row_with_verdict_classes(tmp_path):
    page = _report(tmp_path)
    assert len(re.findall(r'<div class="card (pass|fail|unknown)">', page)) == 3
    assert '<div class="card pass">' in page
    assert '<div class="card fail">' in page
    assert '<div class="card unknown">' in page


def test_images_embedded_as_decodable_png(tmp_path):
    page = _report(tmp_path)
    payloads = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(payloads) == 3
    first = Image.open(io.BytesIO(base64.b64decode(payloads[0])))
    assert first.size == (16, 16) and first.convert("RGB").getpixel((0, 0)) == (255, 0, 0)
    assert "image-rendering: pixelated" in page


def test_text_is_escaped(tmp_path):
    page = _report(tmp_path)
    assert "<script>" not in page
    assert html.escape(EVIL_PROMPT, quote=True) in page  # whole prompt, e.g. as the image alt text
    assert "&lt;script&gt;" in page  # and token by token
    assert "toy &lt;report&gt;" in page
    assert "odd&lt;1&gt;.png" in page and "no &lt;attributes&gt;" in page


def test_tokens_shaded_with_tooltips(tmp_path):
    page = _report(tmp_path)
    assert f"background:{logprob_color(-0.05)}" in page
    assert "logprob -7.00" in page
    assert logprob_color(-0.1) == "hsl(120, 70%, 80%)"  # confident: green
    assert logprob_color(-5.0) == logprob_color(-20.0) == "hsl(0, 70%, 80%)"  # surprising: red


def test_summary_and_card_numbers(tmp_path):
    page = _report(tmp_path)
    assert "0.877" in page  # auroc to 3 decimals
    assert "r_precision.r@1" in page and "0.500" in page and "0.910" in page
    assert "1.235" in page and "-0.500" in page  # card scores
    assert "(no caption)" in page and "unparseable prompt" in page
    assert "color ✗" in page and "shape ✓" in page


def test_flatten_nested_and_numpy():
    flat = flatten({"a": {"b": np.float32(0.25), "c": {"d": 2}}, "skipped": [], "ci": (0.1, 0.2)})
    assert flat == {"a.b": np.float32(0.25), "a.c.d": 2, "ci": "[0.100, 0.200]"}


def test_self_contained(tmp_path):
    page = _report(tmp_path)
    assert not re.search(r"https?://", page)
    assert "<link" not in page and "<script" not in page


def test_strip_in_rank_order(tmp_path):
    items = [(_image((9, 9, 9)), "best.png", 2.5), (_image((1, 1, 1)), "worst<2>.png", -1.0)]
    out = write_strip(tmp_path / "strip.html", items, query="red <square>")
    page = out.read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 2
    assert page.index("best.png") < page.index("worst&lt;2&gt;.png")
    assert "#1 best.png" in page and "2.500" in page and "-1.000" in page
    assert "search: red &lt;square&gt;" in page
    assert not re.search(r"https?://", page)
