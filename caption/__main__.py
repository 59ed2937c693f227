"""python -m caption {train, describe, score, search, meta-eval, geneval, demo}: parse arguments, call one function."""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from gen.core.cli import add_debug_flag, add_device_flag, add_train_parser, debug_parent, resolve_device, run_cli
from gen.core.errors import UserError


def _add_views(p: argparse.ArgumentParser) -> None:
    p.add_argument("--views", type=int, metavar="N",
                   help="warped copies of each image the attribute probabilities average over (docs/judge.md); "
                        "0: the image alone; default: the captioner's own (judge.views), none without warps")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m caption", description="Train a captioner and judge images with it.")
    add_debug_flag(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    common = [debug_parent()]

    add_train_parser(sub, common, "captioner")

    p = sub.add_parser("describe", parents=common, help="caption images")
    p.add_argument("model_dir", help="a captioner model folder (the model/ of a `caption train` run)")
    p.add_argument("images", nargs="+", help="image files to caption")
    dec = p.add_mutually_exclusive_group()
    dec.add_argument("--beams", type=int, default=1, help="beam-search width (default 1: greedy)")
    dec.add_argument("--top-p", type=float, help="nucleus sampling with this p in (0, 1] instead of beams")
    p.add_argument("--seed", type=int, default=0, help="seed for --top-p sampling")
    p.add_argument("--json", action="store_true", help="print one JSON object per image")
    add_device_flag(p)

    p = sub.add_parser("score", parents=common, help="score a folder of generated images against their prompts")
    p.add_argument("model_dir", help="a captioner model folder (the model/ of a `caption train` run)")
    p.add_argument("samples_dir", help="a folder of images with metadata.jsonl (e.g. `gen sample` output)")
    p.add_argument("--out", help="the folder to write scores.jsonl, summary.json and report.html (default: SAMPLES_DIR)")
    _add_alpha(p)
    p.add_argument("--distractors", type=int, default=20,
                   help="other prompts each image is ranked against for R-precision (default 20)")
    p.add_argument("--domain",  # checked by gen.domains.get, which lists the choices (no import at parse time)
                   help="what the prompts are: shapes (oracle, hard negatives) or plain (neither); default: the "
                        "domain SAMPLES_DIR/info.json declares (`gen sample` writes it), else plain")
    p.add_argument("--split", help="score only rows of this split (e.g. test, for a `gen prepare` folder)")
    p.add_argument("--labels-from", metavar="DIR",
                   help="a labelled data set (`gen prepare`) whose captions give each prompt its class, for the "
                        "judge's zero-shot class accuracy; rows with a `label` need none")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the outputs of an earlier score (other summary.json sections are kept)")
    _add_views(p)
    add_device_flag(p)

    p = sub.add_parser("search", parents=common, help="rank the images of a folder by a text query")
    p.add_argument("model_dir", help="a captioner model folder (the model/ of a `caption train` run)")
    p.add_argument("images_dir", help="the folder of images to rank")
    p.add_argument("query", help="the text to rank them by")
    p.add_argument("--top", type=int, default=5, help="how many of the best to list (default 5)")
    p.add_argument("--out", help="also write an HTML strip of the top images to this file")
    p.add_argument("--html", dest="out", default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # the old name of --out
    _add_alpha(p)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    add_device_flag(p)

    p = sub.add_parser("demo", parents=common, help="the whole round trip on shapes data (what `make demo` runs)")
    p.add_argument("--out", default="runs/demo/samples",
                   help="the folder to write samples and reports (default runs/demo/samples; `make update-samples` "
                        "writes the committed samples/demo)")
    p.add_argument("--runs", default="runs/demo", help="the folder for the two training runs (default runs/demo)")
    p.add_argument("--data", default="data/shapes32", help="the shapes data set, made if missing (default data/shapes32)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override for both trainings, e.g. train.max_steps=20 for a trial run (repeatable)")

    p = sub.add_parser("meta-eval", parents=common,
                       help="how far to trust the judge: error ladders on held-out shapes renders, or (--generated) "
                            "the strict oracle on images from generators of several qualities")
    p.add_argument("model_dir", help="a captioner model folder (the model/ of a `caption train` run)")
    p.add_argument("--count", type=int, default=300, help="renders (without --generated)")
    p.add_argument("--size", type=int, help="render size (without --generated; default: the captioner's)")
    p.add_argument("--seed", type=int, default=1234, help="seed of the renders, or of the generated images")
    p.add_argument("--out", help="also write the report to this JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--generated", metavar="GEN_MODEL", help="a `gen train` model folder: judge its images instead")
    p.add_argument("--samples", nargs="+", default=[], metavar="DIR",
                   help="folders of generated images (`gen sample` output) to judge as further quality levels")
    p.add_argument("--checkpoints", nargs="+", default=[], metavar="CKPT",
                   help="with --generated: checkpoint folders of its run, sampled before the final model")
    p.add_argument("--steps", default="1,2,3,5,20", help="with --generated: DPM++ step counts, comma-separated")
    p.add_argument("--num-per-prompt", type=int, default=2, help="with --generated: images per prompt and level "
                                                                 "(8 also gives best-of-8)")
    p.add_argument("--per-prompt", dest="num_per_prompt", type=int, default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)  # the old name of --num-per-prompt, kept for existing scripts
    p.add_argument("--prompts", help="with --generated: a prompts file (default: the demo's 40 prompts)")
    _add_views(p)
    p.add_argument("--guidance", type=float,
                   help="with --generated: guidance scale (default: GEN_MODEL's sample.guidance)")
    add_device_flag(p)

    p = sub.add_parser("geneval", parents=common,
                       help="the judge per GenEval task: R@1 among hard negatives on clean renders and, on generated "
                            "images, AUROC and calibration against the strict oracle and best-of-N against random")
    p.add_argument("model_dir", help="a captioner model folder (the model/ of a `caption train` run)")
    p.add_argument("--out", required=True, help="the folder to write judge.json, judge.md and report.html")
    p.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --out")
    p.add_argument("--renders", type=int, default=50, help="clean renders per task for R@1 (default 50; 0: none)")
    p.add_argument("--generated", metavar="GEN_MODEL", help="a `gen train` model folder: sample and judge its images")
    p.add_argument("--samples", nargs="+", default=[], metavar="DIR",
                   help="folders of generated images (`gen sample` or `gen geneval` output) to judge as they are")
    p.add_argument("--checkpoints", nargs="+", default=[], metavar="CKPT",
                   help="with --generated: checkpoint folders of its run, sampled before the final model")
    p.add_argument("--steps", help="with --generated: DPM++ step counts, comma-separated (default: GEN_MODEL's "
                                   "sample.steps)")
    p.add_argument("--num-per-prompt", type=int, default=4,
                   help="with --generated: images per prompt and level (default 4, for best-of-4)")
    p.add_argument("--best-of", type=int, default=4, help="the N of the table's best-of-N column (default 4)")
    p.add_argument("--prompts", help="with --generated: a prompts file (default: --prompts-per-task of each task)")
    p.add_argument("--prompts-per-task", type=int, default=8,
                   help="with --generated and no --prompts: prompts of each task, spread over the benchmark "
                        "(default 8)")
    p.add_argument("--seed", type=int, default=1234, help="seed of the renders and of the generated images")
    p.add_argument("--guidance", type=float,
                   help="with --generated: guidance scale (default: GEN_MODEL's sample.guidance)")
    p.add_argument("--domain",  # checked by gen.domains.get, which lists the choices
                   help="the domain whose tasks are judged (default: GEN_MODEL's, else the captioner's)")
    _add_views(p)
    add_device_flag(p)
    return parser


def _add_alpha(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alpha", type=float,
                   help="debiasing weight α of the judge's score (default: the captioner's saved judge.alpha, docs/judge.md)")


def _run(args: argparse.Namespace) -> int:
    if args.command == "train":
        from caption.train import train

        print(train(args.config, args.out, args.overrides, args.resume, args.overwrite))
    elif args.command == "describe":
        from caption.describe import describe

        results = describe(args.model_dir, args.images, args.beams, args.top_p, args.seed, resolve_device(args.device))
        for r in results:
            text = r["caption"] if "caption" in r else f"[skipped: {r['skipped']}]"
            print(json.dumps(r) if args.json else f"{r['file']}: {text}")
    elif args.command == "score":
        from caption.evaluation.score import score_folder

        summary = score_folder(args.model_dir, args.samples_dir, args.out, args.alpha, args.distractors, args.overwrite,
                               args.domain, args.split, args.labels_from, args.views, resolve_device(args.device))
        print(json.dumps(summary["table"], indent=2))
    elif args.command == "search":
        from caption.search import search

        hits = search(args.model_dir, args.images_dir, args.query, args.top, args.out, args.alpha, args.overwrite,
                      resolve_device(args.device))
        for rank, (name, value) in enumerate(hits, 1):
            print(f"{rank:3d}  {value:9.3f}  {name}")
    elif args.command == "demo":
        from caption.demo import run

        run(args.out, args.runs, args.data, overrides=args.overrides)
    elif args.command == "meta-eval":
        _meta_eval(args)
    elif args.command == "geneval":
        _geneval(args)
    return 0


def _meta_eval(args: argparse.Namespace) -> None:
    from gen.core.outputs import refuse_existing

    if args.out and not args.overwrite:  # before the minutes of judging, not after
        refuse_existing([Path(args.out)], "caption meta-eval")
    if args.generated or args.samples:
        _meta_eval_generated(args)
        return
    from caption.evaluation.meta_eval import meta_eval

    print(json.dumps(meta_eval(args.model_dir, args.count, args.size, args.seed, args.out,
                               device=resolve_device(args.device)), indent=2))


def _sampling_arguments(args: argparse.Namespace) -> list[int | None]:
    """The step counts of --steps ([None]: the model's own, when not given), after checking every sampling flag."""
    try:
        steps: list[int | None] = [int(s) for s in args.steps.split(",")] if args.steps else [None]
    except ValueError:
        raise UserError(f"--steps must be comma-separated whole numbers, not {args.steps!r}") from None
    if any(s is not None and s < 1 for s in steps) or args.num_per_prompt < 1:
        raise UserError("--steps and --num-per-prompt must be at least 1")
    if args.seed < 0:  # each level's `gen sample` would refuse it, but only after the judge has loaded
        raise UserError(f"--seed must be a whole number ≥ 0, not {args.seed}")
    if args.guidance is not None and not (math.isfinite(args.guidance) and args.guidance >= 0):
        raise UserError(f"--guidance must be a finite number ≥ 0 (1: no guidance), not {args.guidance}")
    if args.checkpoints and not args.generated:
        raise UserError("--checkpoints needs --generated GEN_MODEL, the model folder of their run")
    return steps


def _meta_eval_generated(args: argparse.Namespace) -> None:
    from caption.demo import demo_prompts
    from caption.evaluation.meta_eval_generated import images_domain, markdown, meta_eval_generated
    from caption.evaluation.tasks import task_prompts
    from caption.judge.negatives import has_tasks
    from gen.data import read_prompts

    steps = _sampling_arguments(args)
    device = resolve_device(args.device)
    if args.prompts:
        prompts = read_prompts(args.prompts)
    else:  # a domain that poses tasks has its own prompts; the demo's are shapes prompts
        world = images_domain(args.model_dir, args.generated)
        prompts = task_prompts(world, 8) if has_tasks(world) else demo_prompts()
    report = meta_eval_generated(args.model_dir, args.generated, prompts, args.checkpoints, steps, args.num_per_prompt,
                                 args.guidance, args.seed, out=args.out, device=device, sample_dirs=args.samples,
                                 views=args.views)
    print(markdown(report))


def _geneval(args: argparse.Namespace) -> None:
    from caption.evaluation.geneval import judge_geneval
    from caption.evaluation.tasks import markdown_table
    from gen.data import read_prompts

    steps = _sampling_arguments(args)
    prompts = read_prompts(args.prompts) if args.prompts else None
    report = judge_geneval(args.model_dir, args.out, args.generated, args.samples, prompts, args.prompts_per_task,
                           args.renders, args.checkpoints, steps, args.num_per_prompt, args.best_of, args.guidance,
                           args.seed, views=args.views, domain=args.domain, device=resolve_device(args.device),
                           overwrite=args.overwrite)
    print(markdown_table(report["table"]))


def main(argv: list[str] | None = None) -> int:
    """Exit status 0; 2 with one `error:` line for a mistake the user can fix (--debug: the traceback)."""
    return run_cli(_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
