"""`gen serve`'s page in a real browser: Debian's chromium, driven by playwright, against a real server with the tiny
trained generator and captioner. It types a prompt, draws, reads the scores, changes the seed, and sends bad input.

Needs /usr/bin/chromium (`make test` installs it with apt as root) and playwright (the dev extra); without them
it skips and says which is missing. playwright never downloads a browser here: it launches Debian's.
"""
from __future__ import annotations

import io
import shutil

import pytest
from PIL import Image

pytest.importorskip("fastapi", reason="gen serve's tests need the serve extra: pip install -e '.[serve]'")
pytest.importorskip("uvicorn", reason="gen serve's tests need the serve extra: pip install -e '.[serve]'")

from serve_support import fetch, served  # noqa: E402

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"BROWSER TEST SKIPPED: no {CHROMIUM}; install Debian's chromium (as root: apt-get install "
                    "chromium, which `make test` does)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("BROWSER TEST SKIPPED: playwright is not installed; pip install -e '.[dev]'")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def base(gen_run, captioner_dir):
    with served(gen_run / "model", captioner_dir) as url:
        yield url


def pixels(base: str, url: str) -> bytes:
    """An image's pixels (its PNG's bytes differ by the seed in its parameters alone)."""
    return Image.open(io.BytesIO(fetch(base + url))).tobytes()


def generate(page, count: int) -> list[dict]:
    """Click Generate, wait for the run to end; each card's score, seed and image URL, in page order."""
    page.click("#generate")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('Done')", timeout=60_000)
    cards = page.locator("#gallery .card")
    assert cards.count() == count
    return [{"score": cards.nth(i).locator(".score").inner_text(),
             "caption": cards.nth(i).locator(".caption").inner_text(),
             "src": cards.nth(i).locator("img").get_attribute("src"),
             "download": cards.nth(i).locator("a").get_attribute("download")} for i in range(count)]


def test_the_page_draws_scores_reseeds_and_reports_bad_input(browser, base):
    page = browser.new_page()
    page.goto(base)
    page.wait_for_function("document.querySelector('#sampler').options.length > 0")
    assert "caption and its score" in page.inner_text("#order-note")
    page.fill("#prompt", "a red circle on the left")
    page.fill("#seed", "3")
    page.fill("#steps", "3")
    page.fill("#count", "3")
    first = generate(page, 3)
    assert page.inner_text("#seed-used") == "seed 3–5"
    scores = [float(card["score"].split("·")[1]) for card in first]
    assert [card["score"].split(" ")[0] for card in first] == ["#1", "#2", "#3"]
    assert all(0 <= s <= 1 for s in scores) and scores == sorted(scores, reverse=True)
    assert all(card["caption"].startswith("“") or card["caption"] == "(no caption)" for card in first)
    assert sorted(card["download"] for card in first) == [f"roundtrip-seed{s}.png" for s in (3, 4, 5)]

    page.fill("#seed", "40")
    second = generate(page, 3)
    assert page.inner_text("#seed-used") == "seed 40–42"
    assert {pixels(base, c["src"]) for c in first}.isdisjoint({pixels(base, c["src"]) for c in second})
    assert page.locator("#history li").count() == 2

    page.fill("#prompt", "")
    page.click("#generate")
    page.wait_for_selector("#error", state="visible")
    assert "the prompt is empty" in page.inner_text("#error")
    page.fill("#prompt", "a red circle on the left")
    page.fill("#steps", "500")
    page.click("#generate")
    page.wait_for_function("document.querySelector('#error').textContent.includes('500')")
    assert page.inner_text("#error") == "steps must be from 1 to 100, not 500"
    assert page.locator("#gallery .card").count() == 3  # the last images stay
    page.close()
