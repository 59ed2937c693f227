"""python -m gen {train, sample, make-shapes, oracle, bench}: parse arguments, call one function."""
from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gen", description="Train and sample text-to-image diffusion models.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a generator from a YAML config")
    p.add_argument("config")
    p.add_argument("--out", help="run directory (default runs/<config name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--resume", help="'latest' or a checkpoint folder")

    p = sub.add_parser("sample", help="generate images from prompts into a data-set folder")
    p.add_argument("model_dir")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", action="append", help="a prompt (repeatable)")
    src.add_argument("--prompts", help="a file with one prompt per line")
    p.add_argument("--num-per-prompt", type=int, default=1)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda when available)")
    p.add_argument("--out", default="samples/out")

    p = sub.add_parser("make-shapes", help="write the synthetic shapes data set")
    p.add_argument("out")
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("oracle", help="pixel-oracle accuracy of a folder of shapes images (e.g. `gen sample` output)")
    p.add_argument("folder")

    p = sub.add_parser("check-data", help="list every problem of a metadata.jsonl data set, with its row")
    p.add_argument("folder")

    p = sub.add_parser("bench", help="measure training and sampling speed of a config")
    p.add_argument("config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--precisions", default="no,bf16")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "train":
        from .train import train

        print(train(args.config, args.out, args.overrides, args.resume))
    elif args.command == "sample":
        import torch

        from .pipeline import TextToImagePipeline
        from .sample import read_prompts, sample_to_folder

        prompts = args.prompt or read_prompts(args.prompts)
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        pipe = TextToImagePipeline.from_pretrained(args.model_dir).to(device)
        print(sample_to_folder(pipe, prompts, args.out, args.num_per_prompt, args.steps, args.guidance,
                               args.seed, args.batch_size))
    elif args.command == "make-shapes":
        from .shapes import make_dataset

        print(make_dataset(args.out, count=args.count, size=args.size, seed=args.seed))
    elif args.command == "oracle":
        import json

        from .evaluate import oracle_accuracy

        print(json.dumps(oracle_accuracy(args.folder), indent=2))
    elif args.command == "check-data":
        from .check_data import run

        return run(args.folder)
    elif args.command == "bench":
        from .bench import bench

        bench(args.config, args.overrides, args.steps, args.precisions.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
