"""`caption meta-eval CAPTIONER --generated GEN_MODEL`: can the judge be trusted on generated images?

The renders meta-eval (caption/evaluation/meta_eval.py) asks whether the judge ranks true captions over false
ones on clean renders. The judge is used on generated images, imperfect ones above all, so this one
samples the same prompts (the demo's, by default) from generators of several qualities (a run's
checkpoints from early to late, and each at several DPM++ step counts, 1 step being barely an image),
labels every image per attribute with the strict pixel oracle of the images' domain (Domain.oracle, gen/domains/)
and measures the judge against it (caption/evaluation/oracle_agreement.py). Folders of images already generated
(`gen sample` output) can stand in for, or join, the sampled levels. With several images per prompt it also reports
best-of-N: the oracle accuracy of the image the judge picks among N, against a random pick
(caption/evaluation/best_of_n.py). In a domain that poses tasks (scenes) the judge's probability is that of the whole
prompt against its hard negatives, and the report adds the judge per task (caption/evaluation/tasks.py).
"""
from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from caption.evaluation.best_of_n import best_of_n
from caption.evaluation.oracle_agreement import ALL, agreement_report
from caption.judge.negatives import AgainstNegatives, CLAIM, has_tasks
from caption.evaluation.tasks import (
    OVERALL,
    markdown_table,
    table,
    task_agreement,
    task_best_of_n,
)
from caption.judge.attribute_probs import attribute_probs
from caption.judge.judge import Judge
from gen import domains
from gen.core.errors import UserError
from gen.core.outputs import atomic_write_text, dumps
from gen.core.processes import run_gen
from gen.data import SkipLog, read_folder, read_record_rgb
from gen.domains import RIGHT, UNSURE, Domain

DEFAULT_STEPS = (1, 2, 3, 5, 20)


@dataclass(frozen=True)
class Level:
    """One generator quality: a checkpoint (None: the exported model) sampled with `steps` DPM++ steps, or a
    folder of images some generator already made (`gen sample` output)."""

    checkpoint: Path | None = None
    steps: int | None = None
    folder: Path | None = None

    @property
    def label(self) -> str:
        if self.folder is not None:
            return self.folder.name
        return f"{self.checkpoint.name if self.checkpoint else 'model'}@{self.steps}"


def read_samples(folder: Path) -> tuple[list[Image.Image], list[str], list[int | None]]:
    """Images, prompts and seeds of a samples folder; unreadable images are skipped with a warning."""
    images, prompts, seeds = [], [], []
    skips = SkipLog()
    for rec in read_folder(folder, split=None, skips=skips):
        image = read_record_rgb(rec, skips)  # None: unreadable, counted in skips
        if image is None:
            continue
        images.append(image)
        prompts.append(rec.texts[0])
        seeds.append(rec.meta.get("seed"))
    return images, prompts, seeds


def run_length(prompts: Sequence[str]) -> int:
    """How many images each prompt has in a row (gen sample writes a prompt's images together)."""
    n = 1
    while n < len(prompts) and prompts[n] == prompts[0]:
        n += 1
    return n


def judged_rows(judge: Judge, images: Sequence[Image.Image], prompts: Sequence[str],
                domain: Domain | None = None) -> list[dict[str, Any]]:
    """Per image: the strict oracle's verdicts and fit margin, and the judge's probabilities and readings. In a
    domain that poses tasks, `prob_all` is the judge's probability of the prompt against its hard negatives, and
    the row adds the prompt's task and the caption the judge prefers (`judge_reads`).
    `domain`: the images' (one with an oracle); None: shapes (domains.undeclared_oracle)."""
    domain = domain or domains.undeclared_oracle()
    attributes, tasks = domain.attributes, has_tasks(domain)
    pixels = torch.stack([judge.pil_to_pixels(im) for im in images])  # (N, 3, S, S)
    found = attribute_probs(judge, judge.encode_views(pixels), prompts, AgainstNegatives(domain) if tasks else domain)
    rows = []
    for i, (image, prompt) in enumerate(zip(images, prompts)):
        verdict = domain.oracle(image, prompt)
        if verdict is None:
            asks = f"pose one of its tasks ({', '.join(domain.tasks)})" if tasks else f"state {', '.join(attributes)}"
            raise UserError(f"the {domain.name} oracle cannot check the prompt {prompt!r}: it must {asks}")
        rows.append({"prompt": prompt, "stated": domain.stated(prompt), "verdict": verdict.attributes,
                     "overall": verdict.overall, "plausible": verdict.plausible, "shape_margin": verdict.shape_margin,
                     "prob": {a: float(found.probs[a][i]) for a in attributes}, "prob_all": float(found.all[i]),
                     "reading": {a: found.reading[a][i] for a in attributes}, "debiased": float(found.debiased[i])})
        if tasks:
            rows[-1] |= {"task": domain.task(prompt), "judge_reads": found.reading[CLAIM][i]}
    return rows


def _level_summary(level: Level, rows: Sequence[dict[str, Any]], attributes: Sequence[str]) -> dict[str, Any]:
    verdicts = {a: [r["verdict"][a] for r in rows] for a in attributes} | {ALL: [r["overall"] for r in rows]}
    return {"label": level.label, "checkpoint": str(level.checkpoint) if level.checkpoint else None,
            "steps": level.steps, "folder": str(level.folder) if level.folder else None, "images": len(rows),
            "oracle_right": {a: float(np.mean([v == RIGHT for v in vs])) for a, vs in verdicts.items()},
            "unsure": {a: float(np.mean([v == UNSURE for v in vs])) for a, vs in verdicts.items()},
            "judge_prob_all": float(np.nanmean([r["prob_all"] for r in rows]))}


def images_domain(captioner_dir: str | Path, gen_model: str | Path | None, name: str | None = None) -> Domain:
    """The domain the images are checked in: `name`, else the generator's, else the captioner's; it must have an
    oracle."""
    if name is None:
        name = domains.of_model(gen_model if gen_model is not None else captioner_dir)
    domain = domains.get(name)
    if not domain.has_oracle:
        raise UserError(f"the {domain.name} domain has no pixel oracle to measure the judge against "
                        "(meta-eval on generated images needs one)")
    return domain


def meta_eval_generated(captioner_dir: str | Path, gen_model: str | Path | None, prompts: Sequence[str] = (),
                        checkpoints: Sequence[str | Path] = (), steps: Sequence[int] = DEFAULT_STEPS,
                        per_prompt: int = 2, guidance: float | None = None, seed: int = 0, batch_size: int = 32,
                        out: str | Path | None = None, device: str | None = None,
                        sample_dirs: Sequence[str | Path] = (), views: int | None = None,
                        domain: str | None = None, judge: Judge | None = None) -> dict[str, Any]:
    """Sample every prompt `per_prompt` times (seeds seed + j, the same at every level) from each checkpoint and
    the final model at each step count (None: the model's own), and take the images of each samples folder as they
    are; label every image with the oracle, score it with the judge, and report. `views`: warped copies the judge's
    attribute probabilities average over (caption/judge/views.py); None: the captioner's own setting. `domain`: the
    images' (images_domain). `judge`: one already loaded from CAPTIONER_DIR (then `views` and `device` are its)."""
    world = images_domain(captioner_dir, gen_model, domain)
    judge = judge or Judge(captioner_dir, device=device, views=views)
    levels: list[tuple[Level, list[dict[str, Any]], list[int | None], int]] = []
    for folder in map(Path, sample_dirs):
        images, texts, seeds = read_samples(folder)
        levels.append((Level(folder=folder), judged_rows(judge, images, texts, world), seeds, run_length(texts)))
    if gen_model is not None:
        with tempfile.TemporaryDirectory(prefix="meta-eval-") as tmp:
            prompts_file = Path(tmp) / "prompts.txt"
            prompts_file.write_text("".join(f"{p}\n" for p in prompts), encoding="utf-8")
            for checkpoint in tqdm([*map(Path, checkpoints), None], desc="generators"):
                for s in steps:
                    # `gen sample` draws image j with seed + j, so every level samples the same noise.
                    folder = Path(tmp) / f"level-{len(levels)}"
                    run_gen("sample", str(gen_model), "--prompts", str(prompts_file), "--num-per-prompt",
                            str(per_prompt), *(["--steps", str(s)] if s is not None else []), "--seed", str(seed),
                            "--batch-size", str(batch_size), "--out", str(folder),
                            *(["--guidance", str(guidance)] if guidance is not None else []),
                            *(["--checkpoint", str(checkpoint)] if checkpoint else []),
                            *(["--device", device] if device else []))
                    first = next(iter(read_folder(folder, split=None)), None)
                    if guidance is None and first is not None:  # the model's saved sample.guidance, as gen sample used it
                        guidance = first.meta.get("guidance")
                    if s is None and first is not None:  # the model's saved sample.steps, as gen sample recorded them
                        s = first.meta.get("steps")
                    images, texts, seeds = read_samples(folder)
                    levels.append((Level(checkpoint, s), judged_rows(judge, images, texts, world), seeds, per_prompt))
    rows, summaries, best = [], [], {}
    for level, level_rows, seeds, group in levels:
        for row, s in zip(level_rows, seeds):
            row |= {"level": level.label, "seed": s}
        rows += level_rows
        summaries.append(_level_summary(level, level_rows, world.attributes))
        best[level.label] = best_of_n(level_rows, group)
    report = {"captioner": str(captioner_dir), "generator": str(gen_model) if gen_model else None, "domain": world.name,
              "attributes": list(world.attributes), "margin_attribute": world.margin_attribute,
              "sample_dirs": [str(d) for d in sample_dirs], "prompts": len(prompts), "per_prompt": per_prompt,
              "guidance": guidance, "seed": seed, "alpha": judge.alpha, "views": dataclasses.asdict(judge.views),
              "levels": summaries,
              "judge_vs_oracle": agreement_report(rows, world.attributes, world.margin_attribute),
              "best_of_n": best, "images": rows}
    if has_tasks(world):  # best-of-N over every level's prompts, and with several levels each level's own
        report["tasks"] = {"judge_vs_oracle": task_agreement(rows, world.tasks),
                           "best_of_n": task_best_of_n([(lv, group) for _, lv, _, group in levels], world.tasks),
                           "best_of_n_by_level": {level.label: task_best_of_n([(lv, group)], world.tasks)
                                                  for level, lv, _, group in levels} if len(levels) > 1 else {}}
    if out:
        atomic_write_text(Path(out), dumps(report, indent=2))
    return report


def markdown(report: dict[str, Any]) -> str:
    """The levels' oracle accuracy, then the judge against the oracle, as two small Markdown tables."""
    def ci(m: dict) -> str:
        if m["value"] is None:
            return "n/a"
        return f"{m['value']:.3f}" + (f" [{m['low']:.3f}, {m['high']:.3f}]" if m["low"] is not None else "")

    j = report["judge_vs_oracle"]
    attributes = report.get("attributes") or [a for a, v in j.items() if a != ALL and "auroc" in v]  # older reports
    lines = [f"| level | {''.join(f'{a} | ' for a in attributes)}all | unsure (all) |",
             "| --- " * (len(attributes) + 3) + "|"]
    lines += [f"| {lv['label']} | " + " | ".join(f"{lv['oracle_right'][a]:.3f}" for a in (*attributes, ALL))
              + f" | {lv['unsure'][ALL]:.3f} |" for lv in report["levels"]]
    views = report.get("views") or {}
    seen = (f"each image and {views['count']} warped views of it (up to {views['warp']:g} px)" if views.get("count")
            else "each image alone")
    lines += ["", f"The judge's probabilities average over {seen}.", "",
              "| | AUROC | agreement | ECE | unsure rate |", "| --- | --- | --- | --- | --- |"]
    # Agreement compares the judge's reading of each attribute with the prompt's; with none there is nothing to read.
    lines += [f"| {a} | {ci(j[a]['auroc'])} | {ci(j[a]['agreement']) if attributes else 'n/a'} | {ci(j[a]['ece'])} | "
              f"{ci(j[a]['unsure_rate'])} |" for a in (*attributes, ALL)]
    margin = report.get("margin_attribute")
    if margin is not None:
        lines += ["", f"Spearman, judge's {margin} probability vs oracle {margin} margin: "
                  f"{ci(j['spearman_shape_margin'])}"]
    if "tasks" in report:
        found = report["tasks"]
        tasks = [t for t in found["judge_vs_oracle"] if t != OVERALL]
        lines += ["", "Per task: the judge's probability of the prompt against its hard negatives, against the strict "
                  "verdict (unsure counts as not right); best-of-N with the largest N the images allow.", "",
                  markdown_table(table(None, found["judge_vs_oracle"], found["best_of_n"], tasks, wanted=8))]
    return "\n".join(lines)

