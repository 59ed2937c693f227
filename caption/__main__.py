"""python -m caption {train, describe, score, search, meta-eval, demo}: parse arguments, call one function."""
from __future__ import annotations

import argparse
import json
import sys

from gen.core.cli import add_debug_flag, debug_parent, run_cli


def _add_views(p: argparse.ArgumentParser) -> None:
    p.add_argument("--views", type=int, metavar="N",
                   help="warped copies of each image the attribute probabilities average over (docs/judge.md); "
                        "0: the image alone; default: the captioner's own (judge.views), none without warps")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m caption", description="Train a captioner and judge images with it.")
    add_debug_flag(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    common = [debug_parent()]

    p = sub.add_parser("train", parents=common, help="train a captioner from a YAML config")
    p.add_argument("config")
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--resume", help="'latest' or a checkpoint folder")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in a used run directory (deletes its model, checkpoints, logs)")

    p = sub.add_parser("describe", parents=common, help="caption images")
    p.add_argument("model_dir")
    p.add_argument("images", nargs="+")
    dec = p.add_mutually_exclusive_group()
    dec.add_argument("--beams", type=int, default=1)
    dec.add_argument("--top-p", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("score", parents=common, help="score a folder of generated images against their prompts")
    p.add_argument("model_dir")
    p.add_argument("samples_dir")
    p.add_argument("--out", help="where scores.jsonl, summary.json and report.html go (default: SAMPLES_DIR)")
    p.add_argument("--alpha", type=float, help="debiasing weight (default: the model's stored choice)")
    p.add_argument("--distractors", type=int, default=20)
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

    p = sub.add_parser("search", parents=common, help="rank the images of a folder by a text query")
    p.add_argument("model_dir")
    p.add_argument("images_dir")
    p.add_argument("query")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--html", help="write an HTML strip of the top images here")
    p.add_argument("--alpha", type=float)
    p.add_argument("--overwrite", action="store_true", help="replace an existing --html file")

    p = sub.add_parser("demo", parents=common, help="the whole round trip on shapes data (what `make demo` runs)")
    p.add_argument("--out", default="samples/demo")
    p.add_argument("--runs", default="runs/demo")
    p.add_argument("--data", default="data/shapes32")

    p = sub.add_parser("meta-eval", parents=common,
                       help="how far to trust the judge: error ladders on held-out shapes renders, or (--generated) "
                            "the strict oracle on images from generators of several qualities")
    p.add_argument("model_dir")
    p.add_argument("--count", type=int, default=300, help="renders (without --generated)")
    p.add_argument("--size", type=int, help="render size (without --generated; default: the captioner's)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--out", help="write the report JSON here")
    p.add_argument("--generated", metavar="GEN_MODEL", help="a `gen train` model folder: judge its images instead")
    p.add_argument("--samples", nargs="+", default=[], metavar="DIR",
                   help="folders of generated images (`gen sample` output) to judge as further quality levels")
    p.add_argument("--checkpoints", nargs="+", default=[], metavar="CKPT",
                   help="with --generated: checkpoint folders of its run, sampled before the final model")
    p.add_argument("--steps", default="1,2,3,5,20", help="with --generated: DPM++ step counts, comma-separated")
    p.add_argument("--per-prompt", type=int, default=2, help="with --generated: images per prompt and level "
                                                             "(8 also gives best-of-8)")
    p.add_argument("--prompts", help="with --generated: a prompts file (default: the demo's 40 prompts)")
    _add_views(p)
    p.add_argument("--guidance", type=float, default=3.0)
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "train":
        from caption.train import train

        print(train(args.config, args.out, args.overrides, args.resume, args.overwrite))
    elif args.command == "describe":
        from caption.describe import describe

        results = describe(args.model_dir, args.images, args.beams, args.top_p, args.seed)
        for r in results:
            text = r["caption"] if "caption" in r else f"[skipped: {r['skipped']}]"
            print(json.dumps(r) if args.json else f"{r['file']}: {text}")
    elif args.command == "score":
        from caption.evaluation.score import score_folder

        summary = score_folder(args.model_dir, args.samples_dir, args.out, args.alpha, args.distractors, args.overwrite,
                               args.domain, args.split, args.labels_from, args.views)
        print(json.dumps(summary["table"], indent=2))
    elif args.command == "search":
        from caption.search import search

        hits = search(args.model_dir, args.images_dir, args.query, args.top, args.html, args.alpha, args.overwrite)
        for rank, (name, value) in enumerate(hits, 1):
            print(f"{rank:3d}  {value:9.3f}  {name}")
    elif args.command == "demo":
        from caption.demo import run

        run(args.out, args.runs, args.data)
    elif args.command == "meta-eval" and (args.generated or args.samples):
        _meta_eval_generated(args)
    elif args.command == "meta-eval":
        from caption.evaluation.meta_eval import meta_eval

        print(json.dumps(meta_eval(args.model_dir, args.count, args.size, args.seed, args.out), indent=2))
    return 0


def _meta_eval_generated(args: argparse.Namespace) -> None:
    from caption.demo import demo_prompts
    from caption.evaluation.meta_eval_generated import markdown, meta_eval_generated
    from gen.core.errors import UserError
    from gen.generator.sample import read_prompts

    try:
        steps = [int(s) for s in args.steps.split(",")]
    except ValueError:
        raise UserError(f"--steps must be comma-separated whole numbers, not {args.steps!r}") from None
    if min(steps) < 1 or args.per_prompt < 1:
        raise UserError("--steps and --per-prompt must be at least 1")
    if args.checkpoints and not args.generated:
        raise UserError("--checkpoints needs --generated GEN_MODEL, the model folder of their run")
    prompts = read_prompts(args.prompts) if args.prompts else demo_prompts()
    report = meta_eval_generated(args.model_dir, args.generated, prompts, args.checkpoints, steps, args.per_prompt,
                                 args.guidance, args.seed, out=args.out, sample_dirs=args.samples, views=args.views)
    print(markdown(report))


def main(argv: list[str] | None = None) -> int:
    """Exit status 0; 2 with one `error:` line for a mistake the user can fix (--debug: the traceback)."""
    return run_cli(_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
