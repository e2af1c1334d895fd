"""``provenance replay FILE``: the command line that reproduces a run; ``--run`` runs it."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from typing import Any

from provenance.commands import EXIT_FINDING, EXIT_OK, EXIT_USAGE, add_command, print_json
from provenance.commands.diff import compare, render_differences
from provenance.records import SIDE_RECORDS, Record, UnreadableRecord, load
from provenance.redact import REDACTED
from provenance.sidecar import SIDECAR_SUFFIX


def register(commands: Any) -> None:
    parser = add_command(
        commands, "replay", "print (or run) the command that made a file", __doc__, run
    )
    parser.add_argument("file", help="an artifact or its sidecar")
    parser.add_argument("--run", action="store_true", help="run it, then diff the new record")
    parser.add_argument(
        "--python",
        default=None,
        help="interpreter (default: python in the printed command, this one for --run)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def invocation(record: Record, python: str = "python") -> list[str]:
    """The argument vector: ``python -m pkg.mod`` for a module of a package under the root
    (as it must be run to import its package), else ``python path/to/script.py``; then argv."""
    entrypoint = record.block["entrypoint"]["path"]
    module = _module_name(record, entrypoint)
    head = ["-m", module] if module else [entrypoint]
    return [python, *head, *record.block["argv"]]


def _module_name(record: Record, shown: str) -> str | None:
    path = record.resolve(shown)
    if record.root is None or path.suffix != ".py" or not (path.parent / "__init__.py").exists():
        return None
    parts = [path.stem]
    folder = path.parent
    while (folder / "__init__.py").exists() and folder != record.root:
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts) if folder == record.root else None


def command_line(record: Record, python: str = "python") -> str:
    words = shlex.join(invocation(record, python))
    return f"cd {shlex.quote(str(record.root))} && {words}" if record.root else words


def redacted(record: Record) -> bool:
    return any(REDACTED in str(word) for word in record.block["argv"])


def _new_record(record: Record, before: bytes) -> Record | None:
    """The record the replay wrote: the sidecar itself, or a side record beside it."""
    source = record.source
    if source.exists() and source.read_bytes() != before:
        return load(source, record.root)
    base = source.name.removesuffix(SIDECAR_SUFFIX)
    for kind in SIDE_RECORDS[:2]:  # a failed or interrupted replay that rewrote nothing
        side = source.with_name(f"{base}.manifest.{kind}.json")
        if side.exists():
            return load(side, record.root)
    return load(source, record.root) if source.exists() else None


def run(args: argparse.Namespace) -> int:
    record = load(args.file, args.root)
    printed = command_line(record, args.python or "python")
    if not args.run:
        if args.json:
            print_json(
                {
                    "command": printed,
                    "argv": invocation(record, args.python or "python"),
                    "redacted": redacted(record),
                }
            )
        else:
            print(printed)
        if redacted(record):
            print(
                "provenance: the command holds redacted values; supply them to reproduce the run",
                file=sys.stderr,
            )
        return EXIT_OK
    if redacted(record):
        print(
            f"provenance: cannot replay {record.source}: its command holds redacted values",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if record.embedded or record.root is None:
        print(
            f"provenance: cannot replay {record.source}: replay needs the run's sidecar and "
            "project root",
            file=sys.stderr,
        )
        return EXIT_USAGE
    before = record.source.read_bytes()
    print(f"$ {printed}", file=sys.stderr)
    done = subprocess.run(
        invocation(record, args.python or sys.executable), cwd=record.root, check=False
    )
    try:
        new = _new_record(record, before)
    except UnreadableRecord as err:
        print(f"provenance: the replay left no readable record: {err}", file=sys.stderr)
        return EXIT_FINDING
    if new is None:
        print("provenance: the replay left no record", file=sys.stderr)
        return EXIT_FINDING
    differences = compare(record, new)
    if args.json:
        print_json(
            {
                "command": printed,
                "exit_code": done.returncode,
                "record": str(new.source),
                "reproduced": not differences,
                "differences": differences,
            }
        )
    else:
        print(f"replayed: exit {done.returncode}; new record {new.source}")
        print(render_differences(differences) if differences else "reproduced: no differences")
    return EXIT_FINDING if differences else EXIT_OK
