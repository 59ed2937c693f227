"""`caption geneval CAPTIONER`: the judge per GenEval task (caption/evaluation/tasks.py), in a domain that poses them.

On clean renders of the domain's benchmark, `renders` per task: R@1 of the prompt among its hard negatives, per task
and per kind of edit. On generated images (a generator sampled here, or `gen sample` / `gen geneval` folders):
the generated-image meta-evaluation (caption/evaluation/meta_eval_generated.py), whose report then holds the judge
against the strict oracle and best-of-N per task. OUT gets judge.json (every number), judge.md (the table printed)
and report.html (the table, then clean renders with the judge's misses first).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from caption.evaluation.meta_eval_generated import images_domain, meta_eval_generated
from caption.judge.negatives import has_tasks
from caption.evaluation.tasks import (
    OVERALL,
    judge_scorer,
    markdown_table,
    r_precision,
    rank_renders,
    renders_per_task,
    table,
    task_prompts,
)
from caption.judge.judge import Judge
from caption.judge.views import check_views
from caption.report.page import write_report
from gen import domains
from gen.core.errors import UserError
from gen.core.outputs import atomic_write_text, dumps, refuse_existing, require_dir_or_missing
from gen.domains import Domain

OUTPUTS = ("judge.json", "judge.md", "report.html")
CARDS_PER_TASK = 6


def task_domain(captioner_dir: str | Path, gen_model: str | Path | None, name: str | None) -> Domain:
    """The images' domain (images_domain), which must pose GenEval tasks."""
    world = images_domain(captioner_dir, gen_model, name)
    if not has_tasks(world):
        able = [n for n, d in domains.DOMAINS.items() if has_tasks(d)]
        raise UserError(f"the {world.name} domain poses no GenEval tasks; `caption geneval` needs one that does "
                        f"({', '.join(able) or 'none'}): pass --domain")
    return world


def check_arguments(out: Path, renders: int, per_prompt: int, best_of: int, prompts_per_task: int, seed: int,
                    views: int | None, overwrite: bool) -> None:
    """Every mistake a user can fix, before a model loads."""
    check_views(views)
    if renders < 0 or prompts_per_task < 1 or per_prompt < 1 or best_of < 1:
        raise UserError("--renders must be ≥ 0, and --prompts-per-task, --num-per-prompt and --best-of ≥ 1")
    if seed < 0:
        raise UserError(f"--seed must be a whole number ≥ 0, not {seed}")
    require_dir_or_missing(out)
    if not overwrite:
        refuse_existing([out / name for name in OUTPUTS], "caption geneval")


def judge_geneval(captioner_dir: str | Path, out: str | Path, gen_model: str | Path | None = None,
                  sample_dirs: Sequence[str | Path] = (), prompts: Sequence[str] | None = None,
                  prompts_per_task: int = 8, renders: int = 50, checkpoints: Sequence[str | Path] = (),
                  steps: Sequence[int | None] = (None,), per_prompt: int = 4, best_of: int = 4,
                  guidance: float | None = None, seed: int = 1234, batch_size: int = 32, views: int | None = None,
                  domain: str | None = None, device: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    """R@1 among hard negatives on `renders` clean renders per task; with GEN_MODEL (each of `steps`, None: its own)
    or sample folders, the judge against the oracle and best-of-N per task on generated images (prompts: the
    given ones, else `prompts_per_task` of each task). Writes OUT/judge.json, judge.md and report.html."""
    out = Path(out)
    check_arguments(out, renders, per_prompt, best_of, prompts_per_task, seed, views, overwrite)
    judge = Judge(captioner_dir, device=device, views=views)  # first: a folder that is no captioner says so
    world = task_domain(captioner_dir, gen_model, domain)
    items = renders_per_task(world, renders, judge.size, seed) if renders else []
    ranked = rank_renders(judge_scorer(judge), items, world)
    clean = r_precision(ranked, world.tasks) if items else None
    generated = None
    if gen_model is not None or sample_dirs:
        asked = list(prompts) if prompts else task_prompts(world, prompts_per_task)
        generated = meta_eval_generated(captioner_dir, gen_model, asked, checkpoints, steps, per_prompt, guidance, seed,
                                        batch_size, device=device, sample_dirs=sample_dirs, domain=world.name,
                                        judge=judge)
    found = (generated or {}).get("tasks", {})
    names = getattr(world, "task_names", None) or {}
    rows = table(clean, found.get("judge_vs_oracle"), found.get("best_of_n"), world.tasks, best_of, names)
    report = {"captioner": str(captioner_dir), "domain": world.name, "alpha": judge.alpha, "seed": seed,
              "renders_per_task": renders, "best_of": best_of, "table": rows,
              "clean": {"r_precision": clean, "renders": ranked}, "generated": generated}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "judge.json", dumps(report, indent=1) + "\n")
    atomic_write_text(out / "judge.md", markdown_table(rows) + "\n")
    _write_html(out / "report.html", report, items, ranked)
    return report


def _headline(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The overall numbers report.html opens with."""
    items = []
    clean = report["clean"]["r_precision"]
    if clean:
        items.append({"key": "r@1", "label": "judge R@1 among hard negatives", "note": "clean renders: the prompt "
                      "scored above every edit of its claim (a tie is a miss)", **clean[OVERALL]["r@1"]})
    found = (report["generated"] or {}).get("tasks", {})
    if found:
        items.append({"key": "auroc", "label": "judge vs oracle AUROC", "note": "generated images: the judge's "
                      "probability separates right from not right (strict)", **found["judge_vs_oracle"][OVERALL]["auroc"]})
        best = found["best_of_n"].get(str(report["best_of"]), {}).get(OVERALL)
        if best:
            items.append({"key": "lift", "label": f"best-of-{report['best_of']} lift over random",
                          "note": "the oracle's accuracy of the judge's pick minus a random pick's, mean over tasks",
                          **best["lift_judge_prob"]})
    return items


def _write_html(path: Path, report: dict[str, Any], items: Sequence[tuple], ranked: Sequence[dict[str, Any]]) -> None:
    """The per-task table, then up to CARDS_PER_TASK clean renders per task, the judge's misses first."""
    tasks = list(dict.fromkeys(r["task"] for r in ranked))  # in the domain's order, as the renders come
    order = sorted(range(len(ranked)), key=lambda i: (tasks.index(ranked[i]["task"]), ranked[i]["hit"]))
    shown: dict[str, int] = {}
    cards = []
    for i in order:
        r = ranked[i]
        if shown.setdefault(r["task"], 0) < CARDS_PER_TASK:
            shown[r["task"]] += 1
            cards.append({"image": items[i][0], "prompt": r["prompt"], "caption": f"best rival ({r['best_kind']}): "
                          f"{r['best_negative']}", "score": r["margin"], "rank": r["rank"], "passed": r["hit"]})
    generated = report["generated"] or {}
    summary = {"headline": _headline(report), "task_table": report["table"],
               "task_note": "R@1: clean renders, the prompt against every hard negative; AUROC, ECE: the judge's "
                            "probability of the prompt against its hard negatives on generated images, against the "
                            "strict oracle (unsure counts as not right); best-of-N: the oracle's accuracy of the "
                            "image kept. Overall best-of-N is the mean of the task means.",
               "calibration": {"reliability": (generated.get("tasks", {}).get("judge_vs_oracle", {})
                                               .get(OVERALL, {}).get("reliability") or [])},
               "alpha": report["alpha"], "domain": report["domain"]}
    write_report(path, cards, summary, title=f"the judge per task: {report['captioner']}")
