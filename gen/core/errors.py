"""The errors a user can fix, apart from the command line that prints them.

Library code raises these; `gen.core.cli.run_cli` prints any of them as one `error: <message>` line and
exits 2. Any other exception is a bug in roundtrip and keeps its traceback.
"""
from __future__ import annotations


class UserError(ValueError):
    """A problem the user can fix (a bad argument, a busy or used folder, an output in the way).

    A ValueError, so library callers that already catch bad values keep working.
    """


class ConfigError(UserError):
    """A config key or value that cannot be used; the message names it."""


class DataError(UserError):
    """A data-set file that cannot be used at all (not a single row): the message names the file and the fix."""
