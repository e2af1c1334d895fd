"""``provenance verify FILE...``: is every path a record names still as it was recorded?

Each path is re-hashed (through the digest cache where there is one) and reported as unchanged,
changed, missing or appeared; a path that cannot be checked is reported as skipped, with why.
A record is untrusted input: FIFOs, sockets and devices are never opened, a file whose size
already differs is not read, one over --max-bytes is skipped, and a malformed entry is skipped.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from dataclasses import dataclass
from typing import Any

from provenance.commands import (
    EXIT_FINDING,
    EXIT_OK,
    EXIT_USAGE,
    add_command,
    declared_entries,
    print_json,
    short,
)
from provenance.digest_cache import DigestCache
from provenance.hashing import HashPolicy, Progress, describe_path, hash_file
from provenance.records import Record, UnreadableRecord, load

UNCHANGED, CHANGED, MISSING, APPEARED, SKIPPED = (
    "unchanged",
    "changed",
    "missing",
    "appeared",
    "skipped",
)
DEFAULT_MAX_BYTES = 1024**4  # 1 TiB: a file bigger than that recorded in a sidecar is suspect


def register(commands: Any) -> None:
    parser = add_command(
        commands, "verify", "re-hash what records name; report drift", __doc__, run
    )
    parser.add_argument("files", nargs="+", help="artifacts or their sidecars")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="skip files larger than this"
    )
    parser.add_argument("--no-cache", action="store_true", help="read every file afresh")
    parser.add_argument("--no-code", action="store_true", help="leave the code digests out")


@dataclass(frozen=True)
class Check:
    group: str  # "code", "input" or "output"
    name: str
    path: str
    status: str
    detail: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "group": self.group,
            "name": self.name,
            "path": self.path,
            "status": self.status,
            "detail": self.detail,
        }


class Verifier:
    def __init__(self, max_bytes: int, cache: DigestCache | None) -> None:
        self.max_bytes = max_bytes
        self.cache = cache
        # SHA-256 only where the record has one to compare with: it is the slow digest.
        self.with_sha256 = HashPolicy(sha256_max_bytes=2**62)
        self.blake3_only = HashPolicy(sha256_max_bytes=0)
        self.progress = Progress("provenance: verifying")

    def record(self, record: Record, *, code: bool) -> list[Check]:
        block = record.block
        checks = []
        if code:
            for key in ("entrypoint", "shared_trainer"):
                entry = block.get(key)
                if isinstance(entry, dict):
                    checks.append(self.code(record, key, entry.get("path"), entry.get("sha256")))
            for path, sha256 in sorted(block["code"].items()):
                checks.append(self.code(record, "code", path, sha256))
        for group, table in (("input", block["inputs"]), ("output", block["outputs"])):
            for name, entry in declared_entries(table):
                checks.append(self.entry(record, group, name, entry))
        return checks

    def code(self, record: Record, name: str, shown: Any, sha256: Any) -> Check:
        if not isinstance(shown, str) or not isinstance(sha256, str):
            return Check("code", name, str(shown), SKIPPED, "malformed entry")
        path = record.resolve(shown)
        problem = _unsafe(path)
        if problem == "missing":
            return Check("code", name, shown, MISSING)
        if problem:
            return Check("code", name, shown, SKIPPED, problem)
        now = hash_file(path, self.with_sha256, self.cache, progress=self.progress)
        if now.error:
            return Check("code", name, shown, SKIPPED, f"unreadable: {now.error}")
        if now.sha256 == sha256:
            return Check("code", name, shown, UNCHANGED)
        return Check(
            "code", name, shown, CHANGED, f"sha256 {short(sha256)} now {short(now.sha256)}"
        )

    def entry(self, record: Record, group: str, name: str, entry: Any) -> Check:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            return Check(group, name, "?", SKIPPED, "malformed entry")
        shown = entry["path"]
        if entry.get("embedded_here"):
            return Check(
                group,
                name,
                shown,
                SKIPPED,
                "this copy of the block is embedded in it: verify its sidecar",
            )
        path = record.resolve(shown)
        problem = _unsafe(path)
        if not entry.get("exists"):
            if problem == "missing":
                return Check(group, name, shown, UNCHANGED, "still missing")
            return Check(group, name, shown, APPEARED, "recorded as missing, now present")
        if problem == "missing":
            return Check(group, name, shown, MISSING)
        recorded_kind = entry.get("kind")
        if recorded_kind == "other" or problem == "not a file or directory":
            return Check(group, name, shown, SKIPPED, "not a file or directory: never read")
        if problem:
            return Check(group, name, shown, SKIPPED, problem)
        if entry.get("error") or entry.get("errors") or not entry.get("blake3"):
            return Check(group, name, shown, SKIPPED, "recorded without a digest (unreadable then)")
        st = os.stat(path)
        if recorded_kind == "file":
            if not stat.S_ISREG(st.st_mode):
                return Check(group, name, shown, CHANGED, "was a file, now a directory")
            if st.st_size != entry.get("size_bytes"):
                return Check(
                    group, name, shown, CHANGED, f"size {entry.get('size_bytes')} now {st.st_size}"
                )
            if st.st_size > self.max_bytes:
                return Check(
                    group, name, shown, SKIPPED, f"larger than --max-bytes ({st.st_size} B)"
                )
        policy = self.with_sha256 if entry.get("sha256") else self.blake3_only
        now = describe_path(str(path), shown, policy, self.cache, self.progress)
        if now.get("kind") != recorded_kind:
            return Check(
                group, name, shown, CHANGED, f"was a {recorded_kind}, now {now.get('kind')}"
            )
        if now.get("error") or now.get("errors"):
            reason = now.get("error") or "; ".join(now.get("errors", [])[:3])
            return Check(group, name, shown, SKIPPED, f"unreadable now: {reason}")
        if now.get("blake3") == entry.get("blake3") and (
            entry.get("sha256") is None or now.get("sha256") == entry.get("sha256")
        ):
            return Check(group, name, shown, UNCHANGED)
        detail = f"blake3 {short(entry.get('blake3'))} now {short(now.get('blake3'))}"
        if recorded_kind == "directory":
            detail += f"; {entry.get('file_count')} files, now {now.get('file_count')}"
        return Check(group, name, shown, CHANGED, detail)


def _unsafe(path: os.PathLike[str] | str) -> str | None:
    """Why ``path`` must not be read ("missing" when it is not there), or None."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "missing"
    except ValueError as err:  # an embedded NUL byte
        return f"unusable path: {err}"
    except OSError as err:
        return f"cannot be stat-ed: {err.strerror or err}"
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return "not a file or directory"
    return None


def render(source: str, checks: list[Check]) -> str:
    lines = [source]
    code = [c for c in checks if c.group == "code"]
    quiet_code = [c for c in code if c.status == UNCHANGED]
    for check in checks:
        if check in quiet_code:
            continue
        detail = f"  ({check.detail})" if check.detail else ""
        lines.append(f"  {check.status:<9} {check.group:<6} {check.name:<14} {check.path}{detail}")
    if quiet_code:
        lines.append(f"  {UNCHANGED:<9} code   {len(quiet_code)} file(s)")
    counts = {
        s: sum(c.status == s for c in checks)
        for s in (UNCHANGED, CHANGED, MISSING, APPEARED, SKIPPED)
    }
    lines.append("  " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    cache = None if args.no_cache else DigestCache.from_environment()
    verifier = Verifier(args.max_bytes, cache)
    status = EXIT_OK
    reports: list[dict[str, Any]] = []
    try:
        for given in args.files:
            try:
                record = load(given, args.root)
            except UnreadableRecord as err:
                print(f"provenance: {err}", file=sys.stderr)
                reports.append({"record": str(given), "error": str(err)})
                status = EXIT_USAGE
                continue
            checks = verifier.record(record, code=not args.no_code)
            if any(c.status != UNCHANGED for c in checks):
                status = max(status, EXIT_FINDING)
            reports.append({"record": str(record.source), "checks": [c.as_dict() for c in checks]})
            if not args.json:
                print(render(str(record.source), checks))
    finally:
        verifier.progress.close()
        if cache is not None:
            cache.close()
    if args.json:
        print_json(reports)
    return status
