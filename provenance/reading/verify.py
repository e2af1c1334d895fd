"""Verifying a record: each path it names re-hashed (through the digest cache where there is
one) and checked against what it recorded, within the bounds the record and the caller set; the
run's state, attempts beside it and the paths it left out, each as a check."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.measure.hashing import HashPolicy, Progress, TreeEntry, describe_path, hash_file
from provenance.record import listing
from provenance.record.listing import BadListing, Changes
from provenance.record.redact import REDACTED
from provenance.record.sidecar import is_sidecar_name, listing_path
from provenance.records import (
    LIVE,
    LOST,
    Attempt,
    Boundary,
    Record,
    attempts,
    declared_entries,
    holds_block,
    job_state,
    rank_states,
    running_beside,
    sidecar_target,
)
from provenance.stores.digest_cache import DigestCache
from provenance.text import human_size, plural, short

UNCHANGED, CHANGED, MISSING, APPEARED, SKIPPED = (
    "unchanged",
    "changed",
    "missing",
    "appeared",
    "skipped",
)
PENDING, ATTEMPT = "pending", "attempt"
STATUSES = (UNCHANGED, CHANGED, MISSING, APPEARED, SKIPPED)
QUIET = frozenset({UNCHANGED, LIVE, PENDING, ATTEMPT})  # what is no finding
DEFAULT_MAX_BYTES = 1024**4  # 1 TiB: a file bigger than that recorded in a sidecar is suspect
DEFAULT_MAX_ENTRIES = 1_000_000  # entries of one folder walked before it is skipped
NAMED = 5  # files of a folder named in the text; --json names them all


@dataclass(frozen=True)
class Check:
    group: str  # "record", "code", "input" or "output"
    name: str
    path: str
    status: str
    detail: str = ""
    files: Changes | None = None  # a listed folder's files that changed, were added or removed

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "group": self.group,
            "name": self.name,
            "path": self.path,
            "status": self.status,
            "detail": self.detail,
        }
        if self.files is not None:
            found["files"] = self.files.as_dict()
        return found


class _Stopped(Exception):
    """A folder's walk went past a bound: what to report instead of its digest."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass
class _FolderBounds:
    """Stops a folder's walk at the first entry past a limit or past what the record says."""

    max_entries: int
    max_bytes: int
    recorded_files: Any
    recorded_bytes: Any
    entries: int = 0
    files: int = 0
    size: int = 0

    def __call__(self, entry: TreeEntry) -> None:
        self.entries += 1
        if self.entries > self.max_entries:
            raise _Stopped(SKIPPED, f"more than {self.max_entries} entries (--max-entries)")
        if entry.kind != "f" or entry.stat is None:
            return
        self.files += 1
        self.size += entry.stat.st_size
        if self.size > self.max_bytes:
            raise _Stopped(SKIPPED, f"larger than --max-bytes (over {human_size(self.max_bytes)})")
        if isinstance(self.recorded_files, int) and self.files > self.recorded_files:
            raise _Stopped(CHANGED, f"more files than the {self.recorded_files} recorded")
        if isinstance(self.recorded_bytes, int) and self.size > self.recorded_bytes:
            raise _Stopped(CHANGED, f"more bytes than the {self.recorded_bytes} recorded")


class Verifier:
    def __init__(
        self, max_bytes: int, max_entries: int, cache: DigestCache | None, outside_root: bool
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.cache = cache
        self.outside_root = outside_root
        # SHA-256 only where the record has one to compare with: it is the slow digest.
        self.with_sha256 = HashPolicy(sha256_max_bytes=2**62)
        self.blake3_only = HashPolicy(sha256_max_bytes=0)
        self.progress = Progress("provenance: verifying")

    def record(self, record: Record, *, code: bool) -> list[Check]:
        block = record.block
        boundary = record.boundary(outside_root=self.outside_root)
        checks = []
        if record.running:
            checks.append(self.running(record.source, job_state(record), "this record"))
        for rank, state in rank_states(record):
            checks.append(self.rank(record.source, rank, state))
        for path, state in running_beside(record):
            checks.append(self.running(path, state, "beside it"))
        checks += [attempt_check(a) for a in attempts(record) if a.newer is not False]
        if code:
            for key in ("entrypoint", "shared_trainer"):
                entry = block.get(key)
                if isinstance(entry, dict):
                    checks.append(
                        self.code(record, boundary, key, entry.get("path"), entry.get("sha256"))
                    )
            for path, sha256 in sorted(block["code"].items()):
                checks.append(self.code(record, boundary, "code", path, sha256))
        for group, table in (("input", block["inputs"]), ("output", block["outputs"])):
            for name, entry in declared_entries(table):
                checks.append(self.entry(record, boundary, group, name, entry))
        return checks + left_out_checks(block.get("left_out"))

    def running(self, path: Path, state: str, name: str) -> Check:
        detail = (
            "a run under way: its process holds the record"
            if state == LIVE
            else "its process is gone and wrote no final record"
        )
        return Check("record", name, path.name, state, detail)

    def rank(self, path: Path, rank: int, state: str) -> Check:
        detail = (
            "the record says it runs, and its process holds its presence"
            if state == LIVE
            else "the record says it runs, but no process holds its presence: it ended "
            "without reporting"
        )
        return Check("record", f"rank {rank}", path.name, state, detail)

    def code(self, record: Record, boundary: Boundary, name: str, shown: Any, sha256: Any) -> Check:
        if not isinstance(shown, str) or not isinstance(sha256, str):
            return Check("code", name, str(shown), SKIPPED, "malformed entry")
        place = record.place(shown, boundary)
        if place.path is None:
            return Check("code", name, shown, SKIPPED, place.refused or "")
        st, problem = _stat(place.path)
        if problem == "missing":
            return Check("code", name, shown, MISSING)
        if problem or st is None:
            return Check("code", name, shown, SKIPPED, problem or "")
        if not stat.S_ISREG(st.st_mode):
            return Check("code", name, shown, SKIPPED, "not a file")
        if st.st_size > self.max_bytes:
            return Check("code", name, shown, SKIPPED, f"larger than --max-bytes ({st.st_size} B)")
        self.progress.expect(st.st_size)
        self.progress.begin(shown)
        now = hash_file(place.path, self.with_sha256, self.cache, progress=self.progress)
        if now.error:
            return Check("code", name, shown, SKIPPED, f"unreadable: {now.error}")
        if now.sha256 == sha256:
            return Check("code", name, shown, UNCHANGED)
        return Check(
            "code", name, shown, CHANGED, f"sha256 {short(sha256)} now {short(now.sha256)}"
        )

    def entry(self, record: Record, boundary: Boundary, group: str, name: str, entry: Any) -> Check:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            return Check(group, name, "?", SKIPPED, "malformed entry")
        shown = entry["path"]
        if entry.get("pending"):
            if record.running and job_state(record) == LOST:
                return Check(
                    group, name, shown, SKIPPED, "never measured: the run was lost before it ended"
                )
            return Check(group, name, shown, PENDING, "not measured until the run ends")
        if entry.get("embedded_here"):
            what = (
                "this copy of the block is embedded in it"
                if holds_block(record, shown)
                else "a copy of the block is embedded in it"
            )
            return Check(group, name, shown, SKIPPED, f"{what}: verify the run's sidecar")
        place = record.place(shown, boundary)
        if place.path is None:
            return Check(group, name, shown, SKIPPED, place.refused or "")
        path = place.path
        if REDACTED in shown:
            return Check(group, name, shown, SKIPPED, "its path holds a redacted secret")
        st, problem = _stat(path)
        if not entry.get("exists"):
            if problem == "missing":
                return Check(group, name, shown, UNCHANGED, "still missing")
            return Check(group, name, shown, APPEARED, "recorded as missing, now present")
        if problem == "missing":
            return Check(group, name, shown, MISSING)
        recorded_kind = entry.get("kind")
        if recorded_kind == "other" or problem == "not a file or directory":
            return Check(group, name, shown, SKIPPED, "not a file or directory: never read")
        if problem or st is None:
            return Check(group, name, shown, SKIPPED, problem or "")
        if entry.get("error") or entry.get("errors") or not entry.get("blake3"):
            why = (
                "a signal stopped the run before it was hashed"
                if entry.get("not_hashed")
                else "unreadable then"
            )
            return Check(group, name, shown, SKIPPED, f"recorded without a digest ({why})")
        bounds = None
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
        elif not stat.S_ISDIR(st.st_mode):
            return Check(group, name, shown, CHANGED, f"was a {recorded_kind}, now a file")
        else:
            files, size = entry.get("file_count"), entry.get("size_bytes")
            if isinstance(files, int) and files > self.max_entries:
                detail = f"more than {self.max_entries} entries (--max-entries): not walked"
                return Check(group, name, shown, SKIPPED, detail)
            if isinstance(size, int) and size > self.max_bytes:
                detail = f"larger than --max-bytes ({size} B recorded): not walked"
                return Check(group, name, shown, SKIPPED, detail)
            if entry.get("listed"):  # a folder that grew is walked on, to name what it gained
                files = size = None
            bounds = _FolderBounds(self.max_entries, self.max_bytes, files, size)
        policy = self.with_sha256 if entry.get("sha256") else self.blake3_only
        listings: dict[str, bytes] | None = {} if entry.get("listed") else None
        try:
            now = describe_path(
                str(path), shown, policy, self.cache, self.progress, bounds, listings
            )
        except _Stopped as stopped:
            return Check(group, name, shown, stopped.status, stopped.detail)
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
            if listings is not None:
                files, why = _folder_changes(record, entry, str(now.get("blake3")), listings)
                if files is not None:
                    return Check(group, name, shown, CHANGED, files_text(files), files)
                detail += f"; {why}"
        return Check(group, name, shown, CHANGED, detail)


def _folder_changes(
    record: Record, entry: dict[str, Any], digest_now: str, listings: dict[str, bytes]
) -> tuple[Changes | None, str]:
    """A listed folder's files that changed, were added or removed, from the listing its record
    names and the one the walk just took (``listings``, by digest); or None and why they
    cannot be named."""
    if not is_sidecar_name(record.source.name):
        return None, "its listing is kept beside a sidecar, not read from an embedded record"
    if digest_now not in listings:
        return None, "too many files now to list them"
    digest = str(entry["blake3"])
    try:
        before = listing.read(listing_path(sidecar_target(record.source), digest), digest)
        after = listing.parse(listings[digest_now], digest_now)
    except BadListing as err:
        return None, str(err)
    return listing.compare(before, after), ""


def files_text(files: Changes) -> str:
    """``2 files changed (a.bin, b.bin), 1 added (c.bin)``: the first ``NAMED`` names."""
    parts: list[str] = []
    left = NAMED
    for word, names in (
        ("changed", files.changed),
        ("added", files.added),
        ("removed", files.removed),
    ):
        if not names:
            continue
        shown = ", ".join(names[:left]) + (", …" if len(names) > left else "")
        left = max(0, left - len(names))
        noun = plural(len(names), "file") if not parts else f"{len(names):,}"
        parts.append(f"{noun} {word}" + (f" ({shown})" if shown and shown != ", …" else ""))
    return ", ".join(parts) or "the same files, another digest"


def planned(record: Record) -> int:
    """The bytes verifying ``record``'s inputs and outputs hashes at most, as it recorded them:
    the progress bar's total."""
    total = 0
    for table in (record.block["inputs"], record.block["outputs"]):
        for _, entry in declared_entries(table):
            size = entry.get("size_bytes") if isinstance(entry, dict) else None
            if isinstance(size, int) and size > 0 and entry.get("exists"):
                total += size
    return total


def attempt_check(attempt: Attempt) -> Check:
    """A newer run's record beside this one (or one that cannot be read): what ``show`` of the
    artifact does not show, said where the reader looks."""
    name = attempt.source.name
    if attempt.unreadable:
        return Check("record", "attempt", name, ATTEMPT, f"unreadable: {attempt.evidence}")
    code = "" if attempt.exit_code is None else f", exit {attempt.exit_code}"
    when = "a newer run" if attempt.newer else "a run nothing dates"
    detail = f"{when}, {attempt.status}{code}, wrote none of the outputs; {attempt.evidence}"
    return Check("record", "attempt", name, ATTEMPT, detail)


def left_out_checks(left_out: Any) -> list[Check]:
    """The paths a record left out to stay readable (docs/sidecar.md): not verified, since the
    record holds only the digest of their whole list."""
    paths = left_out.get("paths") if isinstance(left_out, dict) else None
    checks = []
    for item in paths if isinstance(paths, list) else []:
        if not isinstance(item, dict):
            continue
        group = "input" if item.get("table") == "inputs" else "output"
        rank = f" of rank {item['rank']}" if "rank" in item else ""
        checks.append(
            Check(
                group,
                str(item.get("name")),
                plural(item["left_out"], "path")
                if isinstance(item.get("left_out"), int)
                else f"{item.get('left_out')} paths",
                SKIPPED,
                f"left out of the record{rank}, past the {item.get('kept')} it kept: not verified",
            )
        )
    return checks


def _stat(path: Path) -> tuple[os.stat_result | None, str | None]:
    """The stat of ``path``, or why it must not be read ("missing" when it is not there)."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None, "missing"
    except OSError as err:  # a symlink loop among them
        return None, f"cannot be stat-ed: {err.strerror or err}"
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return st, "not a file or directory"
    return st, None


def counts_of(checks: list[Check]) -> dict[str, int]:
    """How many checks had each status: the five always, the others where there are any."""
    counts = {s: sum(c.status == s for c in checks) for s in STATUSES}
    for other in (LOST, LIVE, PENDING, ATTEMPT):  # named only where a record has them
        if any(c.status == other for c in checks):
            counts[other] = sum(c.status == other for c in checks)
    return counts
