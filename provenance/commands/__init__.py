"""The subcommands of ``provenance``: each module registers itself and returns an exit code.

Exit codes are the same everywhere: 0 fine, 1 a finding (drift, a difference, a failed outcome
where asked), 2 a usage error or a record that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

EXIT_OK, EXIT_FINDING, EXIT_USAGE = 0, 1, 2


def plain(docstring: str | None) -> str:
    """A module's docstring as a command's --help text: without reST's double backquotes."""
    return (docstring or "").replace("``", "`")


def add_command(
    commands: Any, name: str, summary: str, doc: str | None, run: Callable[[Any], int]
) -> argparse.ArgumentParser:
    """A subcommand described by its module's docstring, with the options every command has
    (``--root``) and ``run`` as what it does."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=plain(doc),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--root",
        help="the project root relative paths resolve from (default: found from the record)",
    )
    parser.set_defaults(func=run)
    return parser


def short(digest: object, width: int = 12) -> str:
    return f"{digest[:width]}…" if isinstance(digest, str) and len(digest) > width else str(digest)


def print_json(value: Any) -> None:
    json.dump(value, sys.stdout, indent=2, sort_keys=True, ensure_ascii=False)
    sys.stdout.write("\n")


def declared_entries(table: object) -> Iterator[tuple[str, Any]]:
    """``(name, entry)`` for each path a record's inputs or outputs table names; a list gives
    ``name[i]``; a name given no path (null) gives nothing."""
    if not isinstance(table, dict):
        return
    for name, value in table.items():
        if isinstance(value, list):
            for index, entry in enumerate(value):
                yield f"{name}[{index}]", entry
        elif value is not None:
            yield name, value
