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
import itertools
import json
import math
import re
import sys
import unicodedata
from collections.abc import Iterable
from typing import Any

from provenance.commands import EXIT_OK, add_command, print_json, warn
from provenance.read import RunSummary, collect_runs, differing
from provenance.text import ESCAPED, Escaped, lines_text, printable

# Characters of one value a line shows before its middle is cut (a record's value can be
# megabytes long); a value is cut no further than it takes to tell it from the others.
MAX_SHOWN = 60
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
    parser.add_argument(
        "--script", help="keep runs of this script (a file name, or a path to it) or command"
    )
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
    """A value from a record as one cell, whole: as JSON, but a string bare where that reads
    as no other value (``train.py``, not ``0.01``, ``a b`` or ``x\\x1b``, which are quoted, as
    ``--where`` takes them): two different values never read the same."""
    kind = type(value)
    if kind is not str:
        if kind is int or (kind is float and math.isfinite(value)):
            return repr(value)  # as json.dumps writes it, faster: most values are numbers
        text: str = _ENCODE(value)  # ASCII: \u escapes for the rest
        return text
    if value and _UNQUOTED.search(value) is None and not _is_json(value):
        return str(value)
    return _QUOTED_ESCAPES.sub(_json_escape, json.dumps(value, ensure_ascii=False))


# What a bare value may not hold: what separates cells (space, =), what quotes or escapes
# (", \\), the cut mark, and what ``printable`` would write as an escape.
_UNQUOTED = re.compile(r'[\s="\\…]|' + ESCAPED.pattern)
# What a quoted value writes as a JSON escape rather than raw: what ``printable`` escapes, and
# the cut mark, so no whole value holds a bare one.
_QUOTED_ESCAPES = re.compile("…|" + ESCAPED.pattern)


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


_ENCODE = json.JSONEncoder(sort_keys=True).encode
_JSON_STARTS = frozenset('-0123456789[{"tfnNI')  # what JSON text may begin with, spaces aside


def _is_json(text: str) -> bool:
    if text[0] not in _JSON_STARTS:
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def cut(texts: Iterable[str]) -> dict[str, str]:
    """Each of ``texts`` (whole cells, none holding a bare ``…``) as a line shows it: one
    longer than ``MAX_SHOWN`` with its middle cut to ``…``, keeping its start or its end (the
    shorter way) at least up to where it parts from every other one, so no two different texts
    show the same."""
    distinct = set(texts)
    shown = {text: text for text in distinct if len(text) <= MAX_SHOWN}
    if len(shown) == len(distinct):
        return shown
    head, tail = MAX_SHOWN // 2, MAX_SHOWN - MAX_SHOWN // 2 - 1
    starts = _shared(sorted(distinct))
    ends = _shared(sorted(distinct, key=lambda text: text[::-1]), reverse=True)
    for text in distinct - shown.keys():
        # Where the cut mark stands, and how much follows it, tell apart two shown alike
        # from the start or from the end: one part long enough to pass where they part will do.
        by_start = (max(head, starts[text] + 1), tail)
        by_end = (head, max(tail, ends[text] + 1))
        first, last = min(by_start, by_end, key=sum)
        shown[text] = text if first + 1 + last >= len(text) else f"{text[:first]}…{text[-last:]}"
    return shown


def _shared(ordered: list[str], *, reverse: bool = False) -> dict[str, int]:
    """How many characters each of ``ordered`` (sorted from the start, or from the end when
    ``reverse``) shares at most with another from that side: with one beside it."""

    def common(a: str, b: str) -> int:
        if reverse:
            a, b = a[::-1], b[::-1]
        pairs = enumerate(zip(a, b, strict=False))
        return next((i for i, (x, y) in pairs if x != y), min(len(a), len(b)))

    pairs = [common(a, b) for a, b in itertools.pairwise(ordered)]
    return {
        text: max(pairs[i - 1] if i > 0 else 0, pairs[i] if i < len(pairs) else 0)
        for i, text in enumerate(ordered)
    }


def _width(cell: str) -> int:
    """The columns a cell takes on a terminal: wide East Asian characters two, combining
    marks none."""
    if cell.isascii():
        return len(cell)
    return sum(
        2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1
        for c in cell
    )


def _attempt(record: str) -> str | None:
    """The outcome a record kept beside a sidecar (``X.manifest.failed.json``) is named for."""
    kind = record.removesuffix(".json").rpartition(".manifest.")[2]
    return kind if kind in ("succeeded", "failed", "interrupted") else None


def _short_key(key: str) -> str:
    return key.removeprefix("args.")


def render(runs: list[RunSummary]) -> str:
    """One line a run, columns aligned: artifact, script, outcome, gates, differing values.

    The artifact is shown whole; any other value cut (``cut``) so that different ones still
    read differently. A rerun's record kept beside the sidecar says so after its outcome."""
    keys = differing(runs)
    named = [printable(r.command if r.command is not None else r.script) for r in runs]
    scripts = cut(named)
    gate_names = cut(printable(name) for r in runs for name in r.gates)
    names = cut(_value(_short_key(k)) for k in keys)
    key_names = {k: names[_value(_short_key(k))] for k in keys}
    whole = {k: [_value(r.params[k]) if k in r.params else "" for r in runs] for k in keys}
    values = {k: cut(texts) for k, texts in whole.items()}
    rows = []
    for i, r in enumerate(runs):
        outcome = r.status if r.exit_code in (None, 0) else f"{r.status} ({r.exit_code})"
        if _attempt(r.record) is not None:
            outcome += ", attempt"
        gates = " ".join(
            f"{gate_names[printable(name)]}:{'pass' if passed else 'FAIL'}"
            for name, passed in r.gates.items()
        )
        params = " ".join(f"{key_names[k]}={values[k][whole[k][i]]}" for k in keys if k in r.params)
        script = scripts[named[i]]
        rows.append([printable(r.artifact), script, outcome, gates or "-", params])
    measured = [[_width(cell) for cell in row] for row in rows]
    widths = [max((m[i] for m in measured), default=0) for i in range(4)]
    lines = [
        Escaped(
            "  ".join(
                cell + " " * (width - m)
                for cell, m, width in zip(row, sizes, [*widths, 0], strict=True)
            ).rstrip()
        )
        for row, sizes in zip(rows, measured, strict=True)
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
