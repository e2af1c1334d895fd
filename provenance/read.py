"""Reading records from Python: open the record of an artifact, verify it, walk its lineage,
find runs.

The ``provenance`` commands and ai/'s model card are built on these. Every record is read as
hostile input, through the same strict reader the commands use: a record that cannot be read
raises ``UnreadableRecord`` (or, where many are read, is named in ``unreadable``), never
anything looser.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance import records
from provenance.reading.lineage import MAX_DEPTH, Walk, index_for, trace

# The runs machinery, also this module's: the commands take it from here.
from provenance.reading.runs import FoundRuns as FoundRuns
from provenance.reading.runs import collect_runs as collect_runs
from provenance.reading.runs import differing as differing
from provenance.reading.runs import matches as matches
from provenance.reading.runs import one_path_each
from provenance.reading.verify import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_ENTRIES,
    QUIET,
    Check,
    Verifier,
    counts_of,
)
from provenance.record.outcome import RUNNING
from provenance.record.sidecar import sidecar_path_for
from provenance.record.summary import RunSummary, summarize
from provenance.records import Boundary, UnreadableRecord, declared_entries, read_json
from provenance.stores.digest_cache import DigestCache

__all__ = [
    "MAX_LINEAGE_DEPTH",
    "Boundary",
    "Check",
    "Checker",
    "Entry",
    "Lineage",
    "Record",
    "RunSummary",
    "UnreadableRecord",
    "Verdict",
    "find_runs",
    "lineage",
    "one_path_each",
    "read_json",
    "record_of",
    "sidecar_path_for",
    "verify",
]


_AnyRecord = records.Record  # the reader's own, or the public one below

MAX_LINEAGE_DEPTH = MAX_DEPTH  # the most runs deep ``lineage`` may follow (``max_depth``)


@dataclass(frozen=True)
class Entry:
    """One path a record's inputs or outputs name (``name[i]`` for one of a list)."""

    name: str
    path: str | None
    exists: bool
    kind: str | None  # file, directory, other; None where it does not exist
    blake3: str | None
    sha256: str | None
    size_bytes: int | None
    raw: Mapping[str, Any]  # the entry as recorded, for what the fields above leave out


def _entry(name: str, value: Any) -> Entry:
    raw = value if isinstance(value, dict) else {}

    def text(key: str) -> str | None:
        item = raw.get(key)
        return item if isinstance(item, str) else None

    size = raw.get("size_bytes")
    return Entry(
        name,
        text("path"),
        raw.get("exists") is True,
        text("kind"),
        text("blake3"),
        text("sha256"),
        size if type(size) is int else None,
        raw,
    )


@dataclass(frozen=True)
class Record(records.Record):
    """One run's record, checked against the schema, with typed accessors. ``document`` and
    ``block`` hold it all, as recorded."""

    @property
    def entrypoint(self) -> str:
        return str(self.block["entrypoint"]["path"])

    @property
    def argv(self) -> list[str]:
        return [str(word) for word in self.block.get("argv") or []]

    @property
    def args(self) -> dict[str, Any]:
        args = self.block.get("args")
        return dict(args) if isinstance(args, dict) else {}

    @property
    def command(self) -> str | None:
        command = self.block.get("command")
        return command if isinstance(command, str) else None

    @property
    def config(self) -> dict[str, Any]:
        """The resolved config (``config.resolved``); empty where none was recorded."""
        config = self.block.get("config")
        resolved = config.get("resolved") if isinstance(config, dict) else None
        return dict(resolved) if isinstance(resolved, dict) else {}

    @property
    def params(self) -> dict[str, Any]:
        """The arguments and the resolved config flattened to dotted keys (``args.lr``,
        ``config.trainer.epochs``; ``argv``, the command line's words, where no argument was
        parsed), as ``find_runs`` filters on them."""
        return dict(summarize(self.block)["params"])

    @property
    def inputs(self) -> list[Entry]:
        return [_entry(n, e) for n, e in declared_entries(self.block.get("inputs"))]

    @property
    def outputs(self) -> list[Entry]:
        return [_entry(n, e) for n, e in declared_entries(self.block.get("outputs"))]

    @property
    def outcome(self) -> dict[str, Any]:
        outcome = self.block.get("outcome")
        return dict(outcome) if isinstance(outcome, dict) else {}

    @property
    def status(self) -> str:
        """succeeded, failed, interrupted; running for a run under way, lost for one whose
        process is gone without a final record."""
        status = str(self.outcome.get("status"))
        return records.job_state(self) if status == RUNNING else status

    @property
    def exit_code(self) -> int | None:
        code = self.outcome.get("exit_code")
        return code if type(code) is int else None

    @property
    def gates(self) -> dict[str, dict[str, Any]]:
        """Each gate by name: ``{"passed": bool, ...its values}``."""
        gates = self.outcome.get("gates")
        return {str(k): dict(v) for k, v in gates.items()} if isinstance(gates, dict) else {}

    def written(self, shown: object) -> Path | None:
        """Where a path the record names is, from its text alone (nothing is touched)."""
        return self.place(shown, Boundary((), anywhere=True)).written


def _public(record: records.Record) -> Record:
    if isinstance(record, Record):
        return record
    return Record(record.source, record.document, record.root, record.embedded)


def record_of(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Record:
    """The record of an artifact (its sidecar, a run of it under way, or a block it embeds), or
    of a sidecar given itself; relative paths in it resolve from ``root``, else from the project
    root found from the record. ``UnreadableRecord`` if there is none, or it is not one."""
    return _public(records.load(path, root))


@dataclass(frozen=True)
class Verdict:
    """What ``verify`` found: one check per path (and per run state) the record names."""

    record: Record
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """Whether nothing is a finding (changed, missing, appeared, skipped, lost)."""
        return all(c.status in QUIET for c in self.checks)

    @property
    def counts(self) -> dict[str, int]:
        return counts_of(list(self.checks))

    @property
    def statuses(self) -> dict[str, str]:
        """``{path as recorded: status}`` of the inputs and outputs."""
        return {c.path: c.status for c in self.checks if c.group in ("input", "output")}


class Checker:
    """Re-hashes what records name, as ``provenance verify`` does, through the digest cache
    (unless ``cache=False``); close it when done (or use it in a ``with``)."""

    def __init__(
        self,
        *,
        outside_root: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        cache: bool = True,
    ) -> None:
        store = DigestCache.from_environment() if cache else None
        self._verifier = Verifier(max_bytes, max_entries, store, outside_root)
        self._cache = store

    def verify(self, record: records.Record, *, code: bool = True) -> Verdict:
        return Verdict(_public(record), tuple(self._verifier.record(record, code=code)))

    def check(
        self,
        record: records.Record,
        entry: Entry | Mapping[str, Any],
        *,
        group: str = "output",
        boundary: Boundary | None = None,
    ) -> Check:
        """One path a record names, checked on disk now; nothing outside ``boundary`` (by
        default the record's project root) is read."""
        raw = entry.raw if isinstance(entry, Entry) else entry
        name = entry.name if isinstance(entry, Entry) else ""
        where = boundary if boundary is not None else record.boundary()
        return self._verifier.entry(record, where, group, name, dict(raw))

    def close(self) -> None:
        self._verifier.progress.close()
        if self._cache is not None:
            self._cache.close()

    def __enter__(self) -> Checker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def verify(record: records.Record, *, code: bool = True, outside_root: bool = False) -> Verdict:
    """Every path ``record`` names, re-hashed and compared with what it recorded."""
    with Checker(outside_root=outside_root) as checker:
        return checker.verify(record, code=code)


@dataclass
class Lineage:
    """An artifact's lineage: ``tree`` (as ``provenance lineage --json`` prints it), and every
    run on it by the tree's ``record`` values."""

    tree: dict[str, Any]
    walk: Walk
    unreadable: list[str] = field(default_factory=list)

    @property
    def records(self) -> dict[str, Record]:
        return {shown: _public(r) for shown, r in self.walk.records.items()}

    @property
    def cut_short(self) -> bool:
        """Whether the walk stopped at ``max_depth`` runs with more to follow."""
        return self.walk.cut_short

    @property
    def boundary(self) -> Boundary:
        """What the walk read records and paths inside of."""
        return self.walk.index.boundary

    @property
    def max_depth(self) -> int:
        """How many runs deep the walk follows."""
        return self.walk.max_depth

    def trace(self, record: _AnyRecord) -> dict[str, Any]:
        """The tree of another record traced through the same records (runs already on a
        tree show as repeated)."""
        self.walk.index.add(record)
        return trace(record, self.walk)


def lineage(
    given: str | os.PathLike[str] | records.Record,
    *,
    search: Sequence[str | os.PathLike[str]] = (),
    max_depth: int = 100,
    outside_root: bool = False,
) -> Lineage:
    """From an artifact (or its record) back through the runs that made its inputs, reading
    the records under ``search`` (default: the record's project root)."""
    if not 0 <= max_depth <= MAX_DEPTH:
        raise ValueError(f"max_depth: between 0 and {MAX_DEPTH}, not {max_depth}")
    record = given if isinstance(given, records.Record) else record_of(given)
    index = index_for(record, [str(s) for s in search], None, outside_root=outside_root)
    walk = Walk(index, max_depth)
    tree = trace(record, walk)
    return Lineage(tree, walk, index.unreadable)


def find_runs(
    paths: Iterable[str | os.PathLike[str]] = (".",),
    *,
    where: Mapping[str, Any] | None = None,
    gate: Mapping[str, bool] | None = None,
    status: str | None = None,
    script: str | None = None,
    index: bool = True,
) -> list[RunSummary]:
    """The runs recorded under ``paths`` that pass every filter, sorted by record path.

    ``where``: dotted keys of the arguments or the resolved config (``lr``, ``args.lr``,
    ``config.trainer.epochs``) and the value each must have, compared as JSON (``1`` is not
    ``1.0`` nor ``true``); ``gate``: gate names and whether each must have passed (a run
    without that gate does not match); ``status``: succeeded, failed, interrupted, running or
    lost; ``script``: a file name (the entrypoint's, or its recorded path), a path (the runs
    whose recorded entrypoint, from its project root, is that file), or the command path.
    Records that cannot be read are left out (``collect_runs`` names them)."""
    found = collect_runs(paths, index=index, where=where, gate=gate, status=status, script=script)
    return found.runs
