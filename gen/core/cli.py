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
    """One line: OS errors as `<file>: <reason>`, anything else as its own message."""
    if isinstance(err, UnicodeDecodeError):
        return f"a file is not UTF-8 text ({err}); save it as UTF-8"
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        text = f"{err.filename}: {err.strerror}"
    else:
        text = str(err) or type(err).__name__
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


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
