"""``provenance export --format slsa|openlineage|prov FILE``: a record in other tools' formats.

- ``slsa``: an in-toto Statement v1 whose predicate is SLSA Provenance v1. Its subjects are the
  run's outputs (sha256 where recorded, blake3 beside it); the entrypoint, shared trainer, code
  and inputs are resolved dependencies; argv and args are external parameters.
- ``openlineage``: OpenLineage run events, START then COMPLETE, FAIL or ABORT, one per line
  (START alone for the record of a run still under way).
- ``prov``: W3C PROV-JSON, made with the ``prov`` library (the sign extra): the run an activity
  associated with its entrypoint, which used the inputs and generated the outputs.

All three are derived from the record alone, so the same record exports to the same bytes,
except the OpenLineage event time: a record holds no time, so it is the record file's
modification time unless ``--event-time`` gives one. No path the record names is touched.
Strings taken from the record (argv, args, the error) pass through secret redaction first, and
``--out`` replaces only a regular file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import stat
import sys
from typing import Any

from provenance.commands import EXIT_FINDING, EXIT_OK, EXIT_USAGE, add_command, warn
from provenance.emit import openlineage, prov
from provenance.emit.slsa import redacted_block, run_id, slsa_statement
from provenance.record.sidecar import atomic_write, canonical_bytes
from provenance.records import Record, load
from provenance.text import json_for_terminal


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "export",
        "a record as SLSA provenance, OpenLineage or W3C PROV",
        __doc__,
        run,
        examples=[
            "provenance export model.onnx --format slsa --out model.intoto.json",
            "provenance export model.onnx --format openlineage",
            "provenance export model.onnx --format prov --out model.prov.json",
        ],
    )
    parser.add_argument("file", help="an artifact or its sidecar")
    parser.add_argument(
        "--format",
        required=True,
        choices=("slsa", "openlineage", "prov"),
        help="slsa: an in-toto Statement with the SLSA v1 provenance predicate; openlineage: "
        "START then COMPLETE, FAIL or ABORT RunEvents, one per line; prov: W3C PROV-JSON (the sign "
        "extra)",
    )
    parser.add_argument("--out", help="write here (atomically) instead of to stdout")
    parser.add_argument(
        "--namespace",
        default=openlineage.namespace(),
        help="OpenLineage job namespace (default: $OPENLINEAGE_NAMESPACE, else provenance)",
    )
    parser.add_argument("--event-time", type=_moment, help="OpenLineage event time (ISO 8601)")


def _moment(given: str) -> datetime.datetime:
    try:
        moment = datetime.datetime.fromisoformat(given.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {given!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)


def _event_time(record: Record, given: datetime.datetime | None) -> str:
    moment = given or datetime.datetime.fromtimestamp(
        record.source.stat().st_mtime, datetime.timezone.utc
    )
    return openlineage.event_time(moment)


def openlineage_events(record: Record, namespace: str, event_time: str) -> list[dict[str, Any]]:
    """START and the end event of the record, as a run emits them, with the record's run id."""
    return openlineage.record_events(
        redacted_block(record), record.base, run_id(record), namespace, (event_time, event_time)
    )


def run(args: argparse.Namespace) -> int:
    record = load(args.file, args.root)
    if args.format == "slsa":
        statement = slsa_statement(record)
        if not statement["subject"]:
            print(
                f"provenance: {record.source}: no output with a digest to attest", file=sys.stderr
            )
            return EXIT_FINDING
        data = canonical_bytes(statement)
    elif args.format == "prov":
        try:
            data = canonical_bytes(prov.document(redacted_block(record), run_id(record)))
        except prov.MissingProv as err:
            warn(str(err))
            return EXIT_USAGE
    else:
        events = openlineage_events(record, args.namespace, _event_time(record, args.event_time))
        data = "".join(json.dumps(e, sort_keys=True) + "\n" for e in events).encode("utf-8")
    if args.out:
        problem = _unwritable(args.out)
        if problem:
            warn(f"not writing {args.out}: {problem}")
            return EXIT_USAGE
        atomic_write(args.out, data)
    else:  # the same JSON, with nothing in it that steers a terminal
        sys.stdout.buffer.write(json_for_terminal(data.decode("utf-8")).encode("utf-8"))
        sys.stdout.flush()
    return EXIT_OK


def _unwritable(out: str) -> str | None:
    """Why ``--out`` must not be replaced: only a regular file (or nothing) may be."""
    try:
        st = os.lstat(out)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return "it is a symlink, not a regular file"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    return None
