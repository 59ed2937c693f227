"""gen evaluate says how a folder's images were chosen: best of N by a scorer (rows with rerank / kept / candidates,
as `gen sample --rerank` writes them) or plain samples, in evaluation.json and at the top of evaluation.html."""
from __future__ import annotations

import json
from pathlib import Path

from test_evaluate_real import CFG, real_dir, square, write_jsonl  # noqa: F401 - real_dir is a fixture used below

from gen.data.records import read_folder
from gen.evaluate.real import evaluate_samples
from gen.data.selection import describe, folder_selection, row_selection

PROMPTS = [("a red thing", "red"), ("a red thing", "red"), ("a blue thing", "blue"), ("a green thing", "green")]


def samples(root: Path, rerank: str | None, n: int = 8, plain_tail: int = 0) -> Path:
    """A tiny `gen sample` folder of PROMPTS; with RERANK, each row as best of N (the last PLAIN_TAIL rows plain)."""
    rows = []
    for k, (prompt, color) in enumerate(PROMPTS):
        seed = k * n + 1
        square(root / f"{k:05d}-seed{seed}.png", color, seed=2000 + k)
        row = {"file_name": f"{k:05d}-seed{seed}.png", "text": prompt, "seed": seed, "steps": 20, "guidance": 5.0}
        if rerank is not None and k < len(PROMPTS) - plain_tail:
            row |= {"rerank": rerank, "kept": 1,
                    "candidates": [{"seed": k * n + j, "score": 0.1 * j} for j in range(n)]}
        rows.append(row)
    write_jsonl(root, rows)
    return root


def test_each_row_says_how_it_was_chosen():
    assert row_selection({"seed": 3}) == {"kind": "plain"}
    assert row_selection({"rerank": "judge:prob", "kept": 3, "candidates": [{"seed": s} for s in range(8)]}) == {
        "kind": "best_of_n", "n": 8, "scorer": "judge:prob"}
    assert row_selection({"rerank": "random"}) == {"kind": "best_of_n", "n": None, "scorer": "random"}


def test_a_folder_shares_one_selection_or_lists_each(tmp_path):
    plain = read_folder(samples(tmp_path / "plain", None))
    assert folder_selection(plain) == {"kind": "plain"}
    assert describe(folder_selection(plain)).startswith("plain samples")

    judged = read_folder(samples(tmp_path / "judged", "judge:prob"))
    assert folder_selection(judged) == {"kind": "best_of_n", "n": 8, "scorer": "judge:prob"}
    assert describe(folder_selection(judged)) == "best of 8 candidates per image by judge:prob (gen sample --rerank)"

    lucky = read_folder(samples(tmp_path / "random", "random", n=4))
    assert describe(folder_selection(lucky)) == ("one of 4 candidates per image kept at random "
                                                 "(--rerank random, the baseline)")

    mixed = folder_selection(read_folder(samples(tmp_path / "mixed", "judge:prob", plain_tail=1)))
    assert mixed == {"kind": "mixed", "groups": [{"kind": "best_of_n", "n": 8, "scorer": "judge:prob", "images": 3},
                                                 {"kind": "plain", "images": 1}]}
    assert describe(mixed) == ("mixed: 3 images best of 8 candidates per image by judge:prob (gen sample --rerank); "
                               "1 images plain samples: one sample per image, nothing chosen (no --rerank)")
    assert folder_selection([]) == {"kind": "plain"}


def test_evaluate_records_the_selection_and_shows_it_first(real_dir, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setenv("ROUNDTRIP_CACHE", str(tmp_path / "cache"))
    folder = samples(tmp_path / "judged", "judge:prob")
    summary = evaluate_samples(folder, real_dir, cfg=CFG)
    best_of_8 = {"kind": "best_of_n", "n": 8, "scorer": "judge:prob"}
    assert summary["selection"] == best_of_8
    assert json.loads((folder / "evaluation.json").read_text())["selection"] == best_of_8
    page = (folder / "evaluation.html").read_text()
    words = "best of 8 candidates per image by judge:prob"
    # At the top, before any number, and again in the accuracy's own row.
    assert page.index("How these images were chosen") < page.index(words) < page.index("<table")
    cas_row = page[page.index("<th>cas</th>"):].split("</tr>")[0]
    assert words in cas_row

    plain = samples(tmp_path / "plain", None)
    summary = evaluate_samples(plain, real_dir, cfg=CFG)  # the cached classifier: no second training
    assert summary["selection"] == {"kind": "plain"} and summary["classifier"]["cached"] is True
    assert "plain samples: one sample per image" in (plain / "evaluation.html").read_text()


def test_the_score_report_says_how_its_images_were_chosen_before_any_number(tmp_path):
    from caption.report.page import write_report

    summary = {"selection": {"kind": "best_of_n", "n": 8, "scorer": "judge:prob"}, "headline": []}
    page = write_report(tmp_path / "report.html", [], summary).read_text(encoding="utf-8")
    intro = page.index("How the images were chosen")
    assert "best of 8 candidates per image by judge:prob" in page[intro:intro + 300]
    assert "docs/glossary.md" in page
    plain = write_report(tmp_path / "plain.html", [], {"selection": {"kind": "plain"}}).read_text(encoding="utf-8")
    assert "plain samples: one sample per image" in plain
