"""Helpers that several parts share: the article, the fused-or-plain AdamW, the HTML page pieces, and
the resumed run's tokenizer."""
from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image

from gen.core.english import article
from gen.core.html import esc, page, png_data_uri, write_page
from gen.data.tokenizer import adopt_tokenizer, train_tokenizer
from gen.training.train_step import adamw


def test_article_follows_the_first_letter():
    assert [article(w) for w in ("orange", "red", "elephant", "yellow", "umbrella")] == ["an", "a", "an", "a", "an"]


def test_adamw_takes_the_options_and_steps_like_plain_adamw():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    opt = adamw((p for p in a.parameters()), lr=0.1, weight_decay=0.01, betas=(0.9, 0.99))  # a generator is fine
    ref = torch.optim.AdamW(b.parameters(), lr=0.1, weight_decay=0.01, betas=(0.9, 0.99))
    assert opt.defaults["lr"] == 0.1 and opt.defaults["betas"] == (0.9, 0.99)
    assert sum(len(g["params"]) for g in opt.param_groups) == 2
    x = torch.ones(4, 3)
    for model, o in ((a, opt), (b, ref)):
        model(x).sum().backward()
        o.step()
    assert torch.allclose(a.weight, b.weight, atol=1e-6) and torch.allclose(a.bias, b.bias, atol=1e-6)


def test_png_data_uri_round_trips_and_converts_modes_png_cannot_store():
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    uri = png_data_uri(Image.fromarray(pixels))
    assert uri.startswith("data:image/png;base64,")
    back = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert back.mode == "RGB" and np.array_equal(np.asarray(back), pixels)
    cmyk = png_data_uri(Image.new("CMYK", (1, 1), (0, 0, 0, 0)))
    assert Image.open(io.BytesIO(base64.b64decode(cmyk.split(",", 1)[1]))).getpixel((0, 0)) == (255, 255, 255)


def test_page_escapes_the_title_and_keeps_the_body(tmp_path):
    assert esc('<a href="x">&') == "&lt;a href=&quot;x&quot;&gt;&amp;"
    text = page("a <b>", "p { color: red; }", "<p>body</p>")
    assert "<title>a &lt;b&gt;</title>" in text and "<h1>a &lt;b&gt;</h1>" in text
    assert "<style>p { color: red; }</style>" in text and "<p>body</p>" in text
    assert "<h1>other</h1>" in page("tab", "", "", heading="other")
    out = write_page(tmp_path / "new" / "p.html", "t", "", "<p>x</p>")
    assert out.read_text() == page("t", "", "<p>x</p>")
    assert [p.name for p in out.parent.iterdir()] == ["p.html"]  # no temp file left beside it


def test_adopt_tokenizer_copies_only_from_another_folder(tmp_path):
    tok = train_tokenizer(["a red circle", "an orange square"] * 4, vocab_size=270)
    source, saved = tmp_path / "old" / "tokenizer", tmp_path / "new" / "tokenizer"
    tok.save_pretrained(source)
    adopted = adopt_tokenizer(source, saved)
    assert adopted.get_vocab() == tok.get_vocab()
    assert sorted(p.name for p in saved.iterdir()) == sorted(p.name for p in source.iterdir())
    before = {p.name: p.stat().st_mtime_ns for p in source.iterdir()}
    again = adopt_tokenizer(source, source)  # resuming in place: the folder already holds it
    assert again.get_vocab() == tok.get_vocab()
    assert {p.name: p.stat().st_mtime_ns for p in source.iterdir()} == before
