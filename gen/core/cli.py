"""What `python -m gen` and `python -m caption` share: user errors as one line, `--debug` for the traceback.

Library code raises `UserError` (or a known kind below) for anything the user can fix, with a message
that names the problem and the fix; `run_cli` prints it as `error: <message>` and exits 2. Any other
exception is a bug in roundtrip and keeps its traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

from gen.core.errors import UserError
from gen.core.terminal import printable

# UserError covers ConfigError and DataError; FileNotFoundError covers a missing pretrained folder.
USER_ERRORS: tuple[type[BaseException], ...] = (
    UserError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError,
    PermissionError, UnicodeDecodeError,
)
EXIT_USER_ERROR = 2  # what argparse uses for bad arguments too


def debug_parent() -> argparse.ArgumentParser:
    """A parent parser that gives a subcommand `--debug`.

    Its default is SUPPRESS so that `python -m gen --debug sample ...` (flag before the subcommand)
    is not reset to False by the subcommand's own default.
    """
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="on an error, show the full traceback")
    return parent


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="on an error, show the full traceback")


def error_message(err: BaseException) -> str:
    """One printable line: OS errors as `<file>: <reason>`, anything else as its own message. A message may quote
    a user's file name or caption, so control characters are escaped (gen/core/terminal.py)."""
    if isinstance(err, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({err}); save it as UTF-8"
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    else:
        text = str(err) or type(err).__name__
    return printable(" ".join(line.strip() for line in text.splitlines() if line.strip()))


def run_cli(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int | None],
            argv: list[str] | None = None) -> int:
    """Parse `argv`, run the command; a user error prints one line and returns 2 (with --debug: re-raised)."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run(args) or 0
    except USER_ERRORS as err:
        if getattr(args, "debug", False):
            raise
        print(f"error: {error_message(err)}", file=sys.stderr)
        return EXIT_USER_ERROR


def add_train_parser(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser],
                     model: str) -> argparse.ArgumentParser:
    """The `train` subcommand, the same for both models (they share gen/training): `model` names what it trains."""
    p = sub.add_parser("train", parents=parents, help=f"train a {model} from a YAML config")
    p.add_argument("config", help="the YAML config (configs/gen/*.yaml or configs/caption/*.yaml)")
    p.add_argument("--out", help="the run folder to write (default runs/<config name>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. train.max_steps=200 (repeatable)")
    p.add_argument("--resume", help="'latest' or a checkpoint folder of the run in --out")
    p.add_argument("--overwrite", action="store_true",
                   help="start over in a used run folder (deletes its model, checkpoints, logs)")
    return p


def add_device_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default: cuda when available, else cpu)")


DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(device: str | None) -> str:
    """--device checked before any model loads: None → cuda when available, else cpu; a name this machine
    cannot run (a typo, cuda without a GPU, a GPU index past the last) is a UserError, not a torch traceback."""
    import torch  # here, not at the top: parsing arguments must not pay for importing torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except RuntimeError:
        parsed = None
    if parsed is None or parsed.type not in DEVICE_TYPES:
        raise UserError(f"--device {device!r} is not a device; pass cpu, cuda, cuda:N or mps")
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device}: this machine has no usable CUDA GPU; pass --device cpu")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise UserError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                        f"numbered from 0")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {device}: MPS is not available on this machine; pass --device cpu")
    return device
