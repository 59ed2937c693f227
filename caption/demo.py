"""`make demo`: the whole round trip on the built-in shapes data, offline, on a CPU.

shapes data → captioner → generator → samples (seen and unseen combinations) → judge + oracle →
OUT/{grid.png, report.html, summary.json} (runs/demo/samples unless told), then a short table.

The generator's steps run as the `python -m gen` commands the README lists, each in its own process: the
captioner never imports the generator, and each training gets a fresh process of its own.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from caption.evaluation.meta_eval import meta_eval
from caption.evaluation.score import score_folder
from caption.train import train as train_captioner
from gen import domains
from gen.core.outputs import atomic_write_text, dumps
from gen.core.processes import run_gen

SEED = 0
WORLD = domains.get("shapes")  # the demo's data world: it draws the data and its oracle checks the images
# What each training ran in and the timings that chose it (`auto`): two models in one process may differ.
PRECISION_KEYS = ("mixed_precision", "mixed_precision_reason", "mixed_precision_seconds_per_step")


def demo_prompts(data_dir: Path | None = None, seen: int = 28) -> list[str]:
    """Every held-out (never trained on) combination plus a fixed draw of seen ones, canonical phrasing: the
    shapes world's evaluation prompts for the data folder (its heldout.json), or for the demo data (seed 0)."""
    return domains.scenes(WORLD, "list evaluation prompts").eval_prompts(data_dir, seen, SEED)


def run(out: str | Path = "runs/demo/samples", runs: str | Path = "runs/demo", data: str | Path = "data/shapes32",
        per_prompt: int = 2, overrides: list[str] | None = None) -> dict:
    """Every step overwrites its earlier result on purpose (overwrite=True): the demo is re-run from scratch.
    `overrides` (KEY=VALUE) apply to both trainings: a trial run, e.g. train.max_steps=20 with train.max_minutes=null."""
    overrides = list(overrides or [])
    out, runs, data = Path(out), Path(runs), Path(data)
    clock = {}
    t0 = time.monotonic()
    print("[1/5] shapes data", flush=True)
    if not (data / "metadata.jsonl").is_file():
        run_gen("make-shapes", str(data), "--count", "20000", "--size", "32", "--seed", str(SEED), "--overwrite")
    clock["data_s"] = time.monotonic() - t0
    print("[2/5] captioner (configs/caption/shapes32.yaml)", flush=True)
    t = time.monotonic()
    cap_dir = train_captioner("configs/caption/shapes32.yaml", runs / "caption", [f"data.path={data}", *overrides],
                              overwrite=True)
    clock["captioner_s"] = time.monotonic() - t
    print("[3/5] generator (configs/gen/shapes32.yaml)", flush=True)
    t = time.monotonic()
    run_gen("train", "configs/gen/shapes32.yaml", "--out", str(runs / "gen"), "--set", f"data.path={data}",
            *[arg for o in overrides for arg in ("--set", o)], "--overwrite")
    gen_dir = runs / "gen" / "model"
    clock["generator_s"] = time.monotonic() - t
    print("[4/5] sampling", flush=True)
    t = time.monotonic()
    prompts = demo_prompts(data)
    out.mkdir(parents=True, exist_ok=True)
    (out / "prompts.txt").write_text("\n".join(prompts) + "\n")
    # Steps and guidance: the model's saved sample settings, which `gen sample` reads (docs/PERFORMANCE.md).
    run_gen("sample", str(gen_dir), "--prompts", str(out / "prompts.txt"), "--num-per-prompt", str(per_prompt),
                "--seed", str(SEED), "--out", str(out), "--overwrite")
    clock["sampling_s"] = time.monotonic() - t
    print("[5/5] scoring", flush=True)
    t = time.monotonic()
    summary = score_folder(cap_dir, out, overwrite=True)
    trust = meta_eval(cap_dir, count=300, out=out / "meta_eval.json")
    clock["scoring_s"] = time.monotonic() - t
    clock["total_min"] = (time.monotonic() - t0) / 60
    n_unseen = len(json.loads((data / "heldout.json").read_text()))
    cap_metrics = json.loads((runs / "caption" / "summary.json").read_text())["metrics"]
    gen_metrics = json.loads((runs / "gen" / "summary.json").read_text())["metrics"]
    summary["demo"] = {"seed": SEED, "prompts": len(prompts), "unseen_prompts": n_unseen, "per_prompt": per_prompt,
                       "oracle": json.loads(run_gen("oracle", str(out), capture=True)), "captioner": cap_metrics, "meta_eval": {
                           k: trust[k] for k in ("judge", "blind_baseline", "alpha_in_use", "suggested_alpha",
                                                "alpha_note", "text_to_image_r@1")},
                       "precision": {name: {k: m.get(k) for k in PRECISION_KEYS}
                                     for name, m in (("captioner", cap_metrics), ("generator", gen_metrics))},
                       "timing": clock}
    atomic_write_text(out / "summary.json", dumps(summary, indent=2))
    _print_table(summary, out)
    return summary


def _print_table(summary: dict, out: Path) -> None:
    d = summary["demo"]
    rows = [
        (f"oracle {' / '.join(WORLD.attributes)}", " / ".join(f"{d['oracle'][a]:.3f}" for a in WORLD.attributes)),
        ("oracle all attributes", f"{d['oracle']['all']:.3f}  (n={d['oracle']['n']})"),
        ("captioner exact match val / unseen", f"{d['captioner'].get('val/exact_match', float('nan')):.3f} / "
                                               f"{d['captioner'].get('unseen/exact_match', float('nan')):.3f}"),
        ("judge AUROC vs oracle (margin)", str(summary["auroc_vs_oracle"]["margin"])),
        ("R-precision@1", f"{summary['table']['r_precision@1']:.3f}"),
        ("round-trip caption exact match", f"{summary['table']['caption_exact_match']:.3f}"),
        (f"meta-eval AUROC {' / '.join(WORLD.attributes)}", " / ".join(
            f"{d['meta_eval']['judge'][f'auroc_{a}']:.3f}" for a in WORLD.attributes)),
        ("  blind baseline", " / ".join(
            f"{d['meta_eval']['blind_baseline'][f'auroc_{a}']:.3f}" for a in WORLD.attributes)),
        ("text→image R@1", f"{d['meta_eval']['text_to_image_r@1']:.3f}"),
        ("precision: captioner / generator", " / ".join(d["precision"][m]["mixed_precision"] or "?"
                                                         for m in ("captioner", "generator"))),
        ("minutes: captioner / generator / total", f"{d['timing']['captioner_s'] / 60:.1f} / "
                                                   f"{d['timing']['generator_s'] / 60:.1f} / {d['timing']['total_min']:.1f}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"\nroundtrip demo — {out}/{{grid.png, report.html, summary.json}}")
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
