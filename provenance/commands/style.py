"""Colour for verdicts on a terminal: green for what holds, red for a finding, yellow between.

On only when stdout is a terminal, ``NO_COLOR`` is unset or empty (https://no-color.org) and
``TERM`` is not ``dumb``; ``--color always`` or ``never`` decides instead. Only the verdict
words a command chooses and the ``-`` and ``+`` markers of a diff are painted, never text from a
record.
"""

from __future__ import annotations

import os
from typing import TextIO

MODES = ("auto", "always", "never")
_CODES = {"good": "32", "bad": "1;31", "warn": "33"}
# What each verdict word a command prints means for the reader.
TONE = {
    "unchanged": "good", "pass": "good", "succeeded": "good", "valid": "good",
    "reproduced": "good",
    "changed": "bad", "missing": "bad", "appeared": "bad", "lost": "bad", "FAIL": "bad",
    "failed": "bad", "interrupted": "bad", "invalid": "bad", "killed": "bad",
    "not reproduced": "bad",
    "skipped": "warn", "pending": "warn", "running": "warn", "attempt": "warn",
}  # fmt: skip

_enabled = False


def configure(mode: str, stream: TextIO) -> None:
    """Decide once, for the command, whether verdicts are painted on ``stream``."""
    global _enabled
    if mode == "always":
        _enabled = True
    elif mode == "never":
        _enabled = False
    else:
        _enabled = (
            not os.environ.get("NO_COLOR")
            and os.environ.get("TERM") != "dumb"
            and hasattr(stream, "isatty")
            and stream.isatty()
        )


def enabled() -> bool:
    return _enabled


_MARKS = {"-": "bad", "+": "good"}


def mark(sign: str) -> str:
    """A diff's side marker, ``-`` or ``+``, painted where colour is on."""
    return f"\x1b[{_CODES[_MARKS[sign]]}m{sign}\x1b[0m" if _enabled else sign


def paint(word: str, width: int = 0) -> str:
    """``word`` padded to ``width`` and, where colour is on and the word is a verdict, painted
    (the padding outside the colour, so columns line up either way)."""
    pad = " " * max(0, width - len(word))
    tone = TONE.get(word)
    if not _enabled or tone is None:
        return word + pad
    return f"\x1b[{_CODES[tone]}m{word}\x1b[0m{pad}"
