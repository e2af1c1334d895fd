"""``provenance runs [PATH...]``: every recorded run under the paths, one line each.

Each line gives the artifact, the script (or the command path it recorded), the outcome (a run
still under way shows as running; one whose process is gone without a final record, as lost),
its gates, and the arguments and config values that differ between the runs listed. Paths are
folders, walked (default: the working folder), or artifacts and records. Lines are sorted by
record path: the same records give the same output, byte for byte.

--where KEY=VALUE keeps runs whose argument or config KEY (dotted: trainer.epochs; args.KEY or
config.KEY to say which) has VALUE, read as JSON where it parses (0.01, true, "0.01"), else as
a string. Unchanged records are read from the lineage index (see lineage); a record that cannot
be read is skipped, with a line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from provenance.commands import (
    EXIT_OK,
    add_command,
    lines_text,
    print_json,
    printable,
    warn,
)
from provenance.read import RunSummary, collect_runs, differing

MAX_SHOWN = 60  # characters of one value a line shows: a record's value can be megabytes long
STATUSES = ("succeeded", "failed", "interrupted", "running", "lost")


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "runs",
        "list the recorded runs under folders, filtered",
        __doc__,
        run,
        examples=[
            "provenance runs runs/",
            "provenance runs runs/ --where lr=0.01 --gate plcc=pass",
            "provenance runs . --status failed --script train.py --json",
        ],
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="folders, artifacts or records")
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        type=_where,
        metavar="KEY=VALUE",
        help="keep runs whose argument or config KEY has VALUE (repeatable)",
    )
    parser.add_argument(
        "--gate",
        action="append",
        default=[],
        type=_gate,
        metavar="NAME=pass|fail",
        help="keep runs whose gate NAME passed, or failed (repeatable)",
    )
    parser.add_argument("--status", choices=STATUSES, help="keep runs with this outcome")
    parser.add_argument("--script", help="keep runs of this script (path or file name) or command")
    parser.add_argument("--json", action="store_true", help="print the runs as JSON")


def _where(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"not KEY=VALUE: {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _gate(text: str) -> tuple[str, bool]:
    name, sep, verdict = text.partition("=")
    if not sep or not name or verdict not in ("pass", "fail"):
        raise argparse.ArgumentTypeError(f"not NAME=pass or NAME=fail: {text!r}")
    return name, verdict == "pass"


def _value(value: Any) -> str:
    """A value from a record as one cell: escaped, and cut to ``MAX_SHOWN`` characters."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = printable(text)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def _short_key(key: str) -> str:
    return key.removeprefix("args.")


def render(runs: list[RunSummary]) -> str:
    """One line a run, columns aligned: artifact, script, outcome, gates, differing values."""
    keys = differing(runs)
    rows = []
    for r in runs:
        outcome = r.status if r.exit_code in (None, 0) else f"{r.status} ({r.exit_code})"
        gates = " ".join(
            f"{_value(name)}:{'pass' if passed else 'FAIL'}" for name, passed in r.gates.items()
        )
        params = " ".join(
            f"{_value(_short_key(k))}={_value(r.params[k])}" for k in keys if k in r.params
        )
        script = r.command if r.command is not None else r.script
        rows.append([_value(r.artifact), _value(script), outcome, gates or "-", params])
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, [*widths, 0], strict=True)).rstrip()
        for row in rows
    ]
    return lines_text(lines)


def run(args: argparse.Namespace) -> int:
    found = collect_runs(
        args.paths,
        where=dict(args.where),
        gate=dict(args.gate),
        status=args.status,
        script=args.script,
    )
    runs = found.runs
    if args.json:
        keys = differing(runs)
        print_json({"differing": keys, "runs": [r.as_dict() for r in runs]})
    elif runs:
        sys.stdout.write(render(runs) + "\n")
    for problem in found.unreadable:
        warn(f"skipped {problem}")
    return EXIT_OK
