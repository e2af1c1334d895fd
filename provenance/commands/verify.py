"""``provenance verify FILE...``: is every path a record names still as it was recorded?

Each path is re-hashed (through the digest cache where there is one) and reported as unchanged,
changed, missing or appeared; a path that cannot be checked is reported as skipped, with why.
Runs of the artifact still under way are reported as running, and runs whose process is gone
without a final record as lost (a finding). Records of newer runs kept beside it (a failed or
interrupted rerun that wrote none of its outputs) are named as attempts (no finding), and so is
one beside it that cannot be read.

Where no .git or pyproject.toml marks a project root, the root is the folder the record was
written against: the nearest of its own folder and their parents where its entrypoint is, with
the digest it recorded.

A record is untrusted input: nothing outside the project root is read unless --outside-root
asks (a symlink out of it counts as outside), FIFOs, sockets and devices are never opened, a
file whose size already differs is not read, a file over --max-bytes is skipped, a folder is
walked only as far as --max-entries, --max-bytes and what the record says it held, and a
malformed entry is skipped.

With --attestation (an ``X.intoto.jsonl`` that ``attest`` wrote) and --public-key, the DSSE
envelope's signature, the statement's subjects against the artifact's bytes now, and its
predicate against the artifact's record are checked first: the first that does not hold is
named, and is a finding. The attestation is read as hostile input too.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from provenance.commands import (
    EXIT_FINDING,
    EXIT_OK,
    EXIT_USAGE,
    add_command,
    add_outside_root,
    print_json,
    size_arg,
    size_default,
    style,
    warn,
)
from provenance.reading.verify import (
    CHANGED,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ENTRIES,
    QUIET,
    UNCHANGED,
    Check,
    Verifier,
    counts_of,
    planned,
)
from provenance.records import Record, UnreadableRecord, load
from provenance.stores.digest_cache import DigestCache
from provenance.text import plural, printable


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "verify",
        "re-hash what records name; report drift",
        __doc__,
        run,
        examples=[
            "provenance verify models/konvid_mos_head.onnx",
            "provenance verify runs/demo/models/*.onnx --quiet",
            "provenance verify model.onnx --max-bytes 10G --json",
        ],
    )
    parser.add_argument("files", nargs="+", help="artifacts or their sidecars")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        help="print only what is a finding (changed, missing, appeared, skipped, lost) and "
        "each record's counts",
    )
    parser.add_argument(
        "--max-bytes",
        type=size_arg,
        default=DEFAULT_MAX_BYTES,
        metavar="SIZE",
        help="skip files, and folders holding, larger than this: 1G, 512M, 64K or bytes "
        f"(default {size_default(DEFAULT_MAX_BYTES)})",
    )
    parser.add_argument(
        "--max-entries",
        type=int,
        default=DEFAULT_MAX_ENTRIES,
        help="skip folders with more entries than this",
    )
    parser.add_argument("--no-cache", action="store_true", help="read every file afresh")
    parser.add_argument("--no-code", action="store_true", help="leave the code digests out")
    parser.add_argument(
        "--attestation",
        metavar="FILE",
        help="also check this signed statement (from attest) for the one artifact given",
    )
    parser.add_argument(
        "--public-key", metavar="PEM", help="the public key the attestation must be signed by"
    )
    add_outside_root(parser)


def check_attestation(args: argparse.Namespace) -> int | None:
    """The exit code when ``--attestation`` fails (or is misused), else None."""
    if args.attestation is None and args.public_key is None:
        return None
    if args.attestation is None or args.public_key is None or len(args.files) != 1:
        warn("--attestation and --public-key go together, with one artifact")
        return EXIT_USAGE
    from provenance.emit import attestation

    out = sys.stderr if args.json else sys.stdout  # --json keeps stdout one JSON document
    try:
        record = load(args.files[0], args.root)
        count = attestation.verify(
            record, Path(args.files[0]), Path(args.attestation), args.public_key
        )
    except UnreadableRecord as err:
        warn(str(err))
        return EXIT_USAGE
    except (attestation.MissingExtra, attestation.KeyError_, attestation.BadAttestation) as err:
        warn(f"attestation: {err}")
        return EXIT_USAGE
    except attestation.Mismatch as err:
        print(f"{style.paint(CHANGED)} attestation: {printable(str(err))}", file=out)
        return EXIT_FINDING
    print(
        f"{style.paint(UNCHANGED)} attestation: "
        + printable(f"{args.attestation}: signed by the key given, {plural(count, 'subject')}"),
        file=out,
    )
    return None


def counts_line(counts: dict[str, int]) -> str:
    return ", ".join(
        f"{n:,} {style.paint(word) if n and word not in QUIET else word}"
        for word, n in counts.items()
    )


def render(source: str, checks: list[Check], *, quiet: bool = False) -> str:
    """A record's checks, one line each (with ``quiet``, only those that are a finding), and
    its counts. Only the verdict words are painted; the rest is escaped as a record's text."""
    lines = [printable(source)]
    quiet_code = [c for c in checks if c.group == "code" and c.status == UNCHANGED]
    for check in checks:
        if check in quiet_code or (quiet and check.status in QUIET):
            continue
        detail = f"  ({check.detail})" if check.detail else ""
        rest = printable(f"{check.group:<6} {check.name:<14} {check.path}{detail}")
        lines.append(f"  {style.paint(check.status, 9)} {rest}")
    if quiet_code and not quiet:
        lines.append(f"  {style.paint(UNCHANGED, 9)} code   {plural(len(quiet_code), 'file')}")
    lines.append("  " + counts_line(counts_of(checks)))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    failed = check_attestation(args)
    if failed is not None:
        return failed
    cache = None if args.no_cache else DigestCache.from_environment()
    verifier = Verifier(args.max_bytes, args.max_entries, cache, args.outside_root)
    status = EXIT_OK
    reports: list[dict[str, Any]] = []
    verified: list[list[Check]] = []
    loaded: list[tuple[str, Record | UnreadableRecord]] = []
    for given in args.files:
        try:
            loaded.append((given, load(given, args.root)))
        except UnreadableRecord as err:
            loaded.append((given, err))
    for _, record in loaded:  # the bar's total: every record's, known before any is hashed
        if isinstance(record, Record):
            verifier.progress.expect(planned(record))
    try:
        for given, record in loaded:
            if isinstance(record, UnreadableRecord):
                warn(str(record))
                reports.append({"record": str(given), "error": str(record)})
                status = EXIT_USAGE
                continue
            checks = verifier.record(record, code=not args.no_code)
            if any(c.status not in QUIET for c in checks):
                status = max(status, EXIT_FINDING)
            reports.append({"record": str(record.source), "checks": [c.as_dict() for c in checks]})
            verified.append(checks)
            if not args.json:
                print(render(str(record.source), checks, quiet=args.quiet))
    finally:
        verifier.progress.close()
        if cache is not None:
            cache.close()
    if args.json:
        print_json(reports)
    elif len(args.files) > 1:
        unread = len(args.files) - len(verified)
        total = counts_of([c for checks in verified for c in checks])
        clean = sum(not any(c.status not in QUIET for c in checks) for checks in verified)
        print(
            f"{plural(len(verified), 'record')} verified ({clean:,} without a finding)"
            + (f", {plural(unread, 'record')} unreadable" if unread else "")
            + f": {counts_line(total)}"
        )
    return status
