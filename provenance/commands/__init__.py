"""The subcommands of ``provenance``: each module registers itself and returns an exit code.

Exit codes are the same everywhere: 0 fine, 1 a finding (drift, a difference, a failed outcome
where asked), 2 a usage error or a record that cannot be read.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

from provenance.text import indented_json, json_for_terminal, one_line

EXIT_OK, EXIT_FINDING, EXIT_USAGE = 0, 1, 2


def plain(docstring: str | None) -> str:
    """A module's docstring as a command's --help text: without reST's double backquotes."""
    return (docstring or "").replace("``", "`")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples kept as written; each option's default shown after its help,
    unless the help already says it or there is none to show."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, [], argparse.SUPPRESS)
            or action.option_strings == []
        ):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse, with "did you mean" for a mistyped command or choice."""

    def error(self, message: str) -> NoReturn:
        match = re.match(r"argument \S+: invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if match:
            choices = re.findall(r"'([^']*)'", match.group(2))
            close = difflib.get_close_matches(match.group(1), choices, n=1)
            if close:
                message += f"; did you mean '{close[0]}'?"
        super().error(message)


def add_command(
    commands: Any,
    name: str,
    summary: str,
    doc: str | None,
    run: Callable[[Any], int],
    *,
    examples: Iterable[str] = (),
) -> argparse.ArgumentParser:
    """A subcommand described by its module's docstring and ``examples`` (shell lines), with the
    options every command has (``--root``) and ``run`` as what it does."""
    lines = list(examples)
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=plain(doc),
        epilog=("examples:\n" + "\n".join(f"  {line}" for line in lines)) if lines else None,
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--root",
        help="the project root relative paths resolve from (default: found from the record)",
    )
    add_color(parser)
    parser.set_defaults(func=run, command_parser=parser)
    return parser


def add_color(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--color",
        choices=("auto", "always", "never"),
        default="auto",
        help="colour verdicts: auto is on a terminal unless NO_COLOR is set (default: auto)",
    )


def add_outside_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--outside-root",
        action="store_true",
        help="also read paths outside the project root that a record names",
    )


_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4, "P": 1024**5}


def size_arg(text: str) -> int:
    """A size as a person types it: ``1G``, ``512M``, ``64K``, ``1.5T`` (powers of 1024), or
    bytes; the type of every option that takes a size."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (say 1G, 512M, 64K or bytes)")
    value = float(match.group(1)) * _UNITS[match.group(2).upper()]
    if value >= 2**63:
        raise argparse.ArgumentTypeError(f"too large: {text!r}")
    return int(value)


def size_default(n: int) -> str:
    """A default size as the option takes it (``1T``), for help text."""
    for unit in ("P", "T", "G", "M", "K"):
        if n % _UNITS[unit] == 0:
            return f"{n // _UNITS[unit]}{unit}"
    return str(n)


def warn(message: str) -> None:
    """One line on stderr, ``provenance:`` first, however long or odd the message."""
    print(f"provenance: {one_line(message)}", file=sys.stderr)


def print_json(value: Any) -> None:
    """``value`` as JSON on stdout; escaped to ASCII where stdout cannot take the text (a C
    locale, or names that are not UTF-8, which Python holds as lone surrogates)."""
    text = indented_json(value, ensure_ascii=False)
    try:
        text.encode(sys.stdout.encoding or "utf-8")
    except UnicodeEncodeError:
        text = indented_json(value, ensure_ascii=True)
    sys.stdout.write(json_for_terminal(text) + "\n")
