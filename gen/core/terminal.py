"""Text from data sets and prompts made safe to print: control characters escaped, long text shortened.

A file name or caption is the data set author's text, not ours. Printed raw, `\\x1b]0;...\\x07` retitles the
terminal and `\\x1b[2J` clears it, a newline forges a line of output, and a lone surrogate (JSON allows
"\\ud800") makes `print` itself raise. Every message that quotes such text passes it through `printable`.
"""
from __future__ import annotations

import re

# C0 controls (newline and tab included: one item is one line), DEL, C1 controls, and lone surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character and lone surrogate written as its escape (ESC → `\\x1b`)."""
    return _UNSAFE.sub(_escape, text)


def excerpt(text: str, limit: int = 80) -> str:
    """`printable(text)`, or its first `limit` characters and the length when it is longer: a warning quotes a
    prompt, it does not repeat a megabyte of it."""
    if len(text) <= limit:
        return printable(text)
    return f"{printable(text[:limit])}… ({len(text):,} characters)"
