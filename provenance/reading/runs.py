"""Finding runs: every record under some folders (walked, through the lineage index where
there is one) summarized, filtered, and listed once each."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any, TypeVar

from provenance import records
from provenance.measure.paths import find_root
from provenance.reading import no_cycle_collection
from provenance.reading.lineage import outputs_of
from provenance.record.outcome import FAILED, INTERRUPTED, RUNNING, SUCCEEDED
from provenance.record.sidecar import is_sidecar_name
from provenance.record.summary import RunSummary, same, stored_text, summarize
from provenance.records import Boundary, UnreadableRecord
from provenance.stores.lineage_index import LineageIndex, content_digest
from provenance.stores.scan import folder_key, parse_entries, scan

_Real = TypeVar("_Real", bytes, str)  # a real path, as os.fsencode gives it or as text

_ATTEMPTS = (SUCCEEDED, FAILED, INTERRUPTED)


@dataclass
class FoundRuns:
    """Every run found under some paths, and the records that could not be read."""

    runs: list[RunSummary]
    unreadable: list[str]


class _StoreFailed(Exception):
    """The lineage index broke while in use: the runs are found again without it."""


@dataclass(frozen=True)
class _Filters:
    """What ``find_runs`` keeps: applied to what a record's summary says, before a
    ``RunSummary`` is made of it."""

    where: Mapping[str, Any]
    gate: Mapping[str, bool]
    status: str | None
    script: str | None
    tops: tuple[str, ...] = ()  # the paths searched: where the project roots are looked for

    def keep(self, stored: dict[str, Any]) -> bool:
        if self.status is not None and stored["status"] != self.status:
            return False
        script = self.script
        if script is not None and script != stored["command"]:
            recorded = stored["script"]
            named = self._script_names
            if named is None:  # a file name: the entrypoint's, or its recorded path
                if script not in (recorded, Path(recorded).name):
                    return False
            elif recorded not in named and os.path.normpath(recorded) not in named:
                return False
        if self.where:
            params = stored["params"]
            for names, value in self._where:
                for name in names:
                    if name in params and same(params[name], value):
                        break
                else:
                    return False
        if self.gate:
            gates = stored["gates"]
            return all(gates.get(name) is passed for name, passed in self.gate.items())
        return True

    @cached_property
    def _script_names(self) -> frozenset[str] | None:
        """What a recorded entrypoint that names the file ``script`` (a path) says: its path
        from each project root it is below (that of the working folder, of a path searched,
        or its own), or its absolute path; as written (less a leading ./) where it is below
        none. None for a file name."""
        given = self.script
        if given is None or "/" not in given:
            return None
        places = {os.path.abspath(given), os.path.realpath(given)}
        roots: set[str] = set()
        for start in (os.path.dirname(os.path.abspath(given)), os.getcwd(), *self.tops):
            root = find_root(start)
            if root is not None:
                roots.update((os.path.abspath(root), os.path.realpath(root)))
        below = {
            os.path.relpath(place, root)
            for place in places
            for root in roots
            if place.startswith(root.rstrip("/") + "/")
        }
        return frozenset(places | (below or {os.path.normpath(given)}))

    @cached_property
    def _where(self) -> list[tuple[tuple[str, str, str], Any]]:
        """Each ``where`` key with the names it may have among the params, and its value."""
        return [((k, f"args.{k}", f"config.{k}"), v) for k, v in self.where.items()]


def _summary(shown: str, stored: dict[str, Any]) -> RunSummary:
    return RunSummary(
        shown,
        _artifact_of(shown),
        stored["script"],
        stored["command"],
        stored["status"],
        stored["exit_code"],
        stored["gates"],
        stored["params"],
    )


def _artifact_of(shown: str) -> str:
    """The artifact a record at ``shown`` is of: ``X`` of ``X.manifest[.<kind>].json``."""
    head, _, _ = shown.rpartition(".manifest")
    return head


def collect_runs(
    paths: Iterable[str | os.PathLike[str]],
    *,
    index: bool = True,
    where: Mapping[str, Any] | None = None,
    gate: Mapping[str, bool] | None = None,
    status: str | None = None,
    script: str | None = None,
) -> FoundRuns:
    """Every run recorded under ``paths`` (folders, walked; or artifacts and records) that
    passes the filters (as ``find_runs`` takes them), sorted by record path; unchanged records
    come from the lineage index where there is one."""
    tops = [str(p) for p in paths] or ["."]
    for top in tops:
        if not os.path.lexists(top):
            raise UnreadableRecord(f"{top}: no such file or folder")
    # Of two tops that lead to one folder, the first is walked: one reached through a link
    # goes last, so that a record is listed under the path that is not a link.
    tops.sort(key=lambda top: os.path.realpath(top) != os.path.abspath(top))
    filters = _Filters(where or {}, gate or {}, status, script, tuple(tops))
    store = LineageIndex.from_environment() if index else None
    try:
        with no_cycle_collection():
            try:
                return _collect(tops, store, filters)
            except _StoreFailed:
                return _collect(tops, None, filters)
    finally:
        if store is not None:
            store.close()


def _collect(tops: list[str], store: LineageIndex | None, filters: _Filters) -> FoundRuns:
    found = FoundRuns([], [])
    keep = filters.keep
    boundary = Boundary.of(t for t in tops if os.path.isdir(t))
    seen: set[bytes] = set()
    began = time.time_ns()  # before any stat: a record changed after it is racy
    # The records the index answers for, by folder: its prefix, their root, their names and
    # their stored summaries.
    pending: list[tuple[str, str, list[bytes], list[Any]]] = []
    # The records read by another way than a folder's regular ones (given, links, side records):
    # each path, its real path and whether it is a link; and the regular ones, by folder.
    beside: list[tuple[str, bytes, bool]] = []
    regular: dict[bytes, tuple[str, dict[bytes, bytes]]] = {}

    def read(
        shown: str,
        root: str,
        real: bytes | None = None,
        key: bytes | None = None,
        held: bool = False,
    ) -> bool:
        """Read a record and list its run, storing its summary where ``real`` and ``key`` (its
        stat key) are given; ``held``: the store has a summary of it. True, and nothing read,
        if its bytes are those the stored summary was made from."""
        got, digest = None, b""
        if store is not None and real is not None and key is not None:
            try:
                got = records.read_bytes(shown)
            except UnreadableRecord as err:
                found.unreadable.append(str(err))
                store.forget([real])
                return False
            digest = content_digest(got[0])
            if held and store.same_bytes(real, key, digest, walk_began_ns=began) is not None:
                return True  # rewritten, not changed
        try:
            record = records.load(shown, root, read=got)
        except UnreadableRecord as err:
            found.unreadable.append(str(err))
            if store is not None and real is not None:
                store.forget([real])
            return False
        stored = summarize(record.block)
        if stored["status"] == RUNNING:
            stored["status"] = records.job_state(record)
        elif store is not None and real is not None and key is not None:
            text = stored_text(stored)
            entrypoint = record.block["entrypoint"]["path"]
            store.put(
                real,
                key,
                entrypoint,
                outputs_of(record),
                text,
                digest=digest,
                walk_began_ns=began,
            )
        if keep(stored):
            found.runs.append(_summary(shown, stored))
        return False

    named = {  # the records given as paths: listed, whatever leads to them from the walk
        os.fsencode(os.path.realpath(records.locate(top))) for top in tops if not os.path.isdir(top)
    }
    for top in tops:
        if not os.path.isdir(top):
            shown = top if is_sidecar_name(Path(top).name) else str(records.locate(top))
            beside.append((shown, os.fsencode(os.path.realpath(shown)), os.path.islink(shown)))
            read(shown, os.path.dirname(os.path.abspath(top)) or ".")
            continue
        top_key = folder_key(os.path.realpath(top))
        held: dict[bytes, bytes] = {}
        summaries: dict[bytes, Any] = {}  # decoded, by real path
        got: list[tuple[dict[bytes, bytes], dict[bytes, Any]]] = []
        # The store is read while a forked process walks: most of a warm call is either.
        walked = scan(top, partial(_from_store, store, top_key, got) if store is not None else None)
        if got:
            held, summaries = got[0]
        for folder in walked:
            key = folder.key
            if key in seen:
                continue  # below two of the tops: its records once
            seen.add(key)
            if store is not None:
                changes = store.walked(key, folder.entries, held.pop(key, b""))
                if changes is None:
                    raise _StoreFailed
                now, changed = changes.now, set(changes.changed)
            else:
                now, changed = parse_entries(folder.entries), set()
            prefix = folder.prefix
            base = key + b"/"
            regular[key] = (prefix, now)
            stored = [summaries.get(base + name) for name in now]
            if not changed and None not in stored:  # the common case: all of them current
                pending.append((prefix, top, list(now), stored))
            else:
                current, values = [], []
                for (name, stat_key), summary in zip(now.items(), stored, strict=True):
                    if (summary is not None and name not in changed) or read(
                        prefix + os.fsdecode(name), top, base + name, stat_key, summary is not None
                    ):
                        current.append(name)
                        values.append(summary)
                pending.append((prefix, top, current, values))
            sides = [
                side
                for side in folder.sides
                if (kind := side.removesuffix(".json").rpartition(".manifest.")[2]) in _ATTEMPTS
                or kind.startswith(f"{RUNNING}.")
            ]
            for other in (*folder.others, *sides):  # links, unstat-able records, side records
                shown = prefix + other
                link = os.path.islink(shown)
                problem = _linked(shown, boundary) if link else None
                if problem is not None:
                    if os.fsencode(os.path.realpath(shown)) not in named:  # else listed as named
                        found.unreadable.append(problem)
                    continue
                real = os.fsencode(os.path.realpath(shown)) if link else base + os.fsencode(other)
                beside.append((shown, real, link))
                read(shown, top)
        if store is not None:
            for key, entries in held.items():  # folders gone from the walk: their records too
                names = store.names(entries)
                if names is None:
                    raise _StoreFailed
                store.forget(key + b"/" + name for name in names)
    if store is not None:
        store.flush()
        if store.broken:
            raise _StoreFailed
    try:
        for prefix, root, current, values in pending:
            for name, summary in zip(current, values, strict=True):
                if summary["status"] == RUNNING:  # a job's: its ranks' processes say
                    read(prefix + os.fsdecode(name), root)
                elif keep(summary):
                    found.runs.append(_summary(prefix + os.fsdecode(name), summary))
    except (TypeError, KeyError, AttributeError) as err:
        assert store is not None  # a store something else wrote into
        store.distrust(f"a stored run summary is not one: {err}")
        raise _StoreFailed from None
    found.runs.sort(key=lambda run: run.record)
    if beside:
        found.runs = _once(found.runs, beside, regular)
    return found


def one_path_each(found: Iterable[tuple[str, _Real, bool]]) -> dict[_Real, str]:
    """The path to list each record under, by its real path, of ``found``: each path a record
    was found by, with its real path (bytes or text, one kind) and whether it is a link. Where
    two lead to one record, the one that is not a link, else the first in sorted order: one
    record, one listing."""
    chosen: dict[_Real, tuple[bool, str]] = {}
    for shown, real, link in found:
        if real not in chosen or (link, shown) < chosen[real]:
            chosen[real] = (link, shown)
    return {real: shown for real, (_, shown) in chosen.items()}


def _once(
    runs: list[RunSummary],
    beside: list[tuple[str, bytes, bool]],
    regular: dict[bytes, tuple[str, dict[bytes, bytes]]],
) -> list[RunSummary]:
    """``runs`` (sorted) with each record listed once (``one_path_each``): those read one by
    one may be a folder's regular records again, or each other."""
    found = list(beside)
    for _, real, _ in beside:
        folder, _, name = real.rpartition(b"/")
        if folder in regular and name in regular[folder][1]:
            found.append((regular[folder][0] + os.fsdecode(name), real, False))
    listed = set(one_path_each(found).values())
    dropped = {shown for shown, _, _ in found} - listed
    once: list[RunSummary] = []
    for run in runs:
        if run.record not in dropped and not (once and once[-1].record == run.record):
            once.append(run)
    return once


def _linked(shown: str, boundary: Boundary) -> str | None:
    """Why a record that is a link is not read, if it is not."""
    if not os.path.exists(shown):
        return f"{shown}: a link to nothing"
    if not boundary.admits(os.path.realpath(shown)):
        return f"{shown}: a link to outside the searched folders"
    return None


def _from_store(
    store: LineageIndex, top: bytes, into: list[tuple[dict[bytes, bytes], dict[bytes, Any]]]
) -> None:
    """Add to ``into`` what ``store`` holds below the folder ``top``: its folders' entries, and
    its records' summaries, decoded (by path)."""
    held = store.folders_under(top)
    stored = store.summaries_under(top)
    if held is None or stored is None:
        raise _StoreFailed
    into.append((held, _decoded(store, stored)))


def _decoded(store: LineageIndex, stored: dict[bytes, str]) -> dict[bytes, Any]:
    """The summaries a store holds (JSON text, by path), decoded in one call."""
    try:
        values = json.loads("[" + ",".join(stored.values()) + "]")
        if len(values) != len(stored):
            raise ValueError("one is two, or two are one")
    except (ValueError, TypeError) as err:  # a store something else wrote into
        store.distrust(f"a stored run summary is not one: {err}")
        raise _StoreFailed from None
    return dict(zip(stored, values, strict=True))


def matches(
    run: RunSummary,
    *,
    where: Mapping[str, Any] | None = None,
    gate: Mapping[str, bool] | None = None,
    status: str | None = None,
    script: str | None = None,
) -> bool:
    """Whether a run passes every filter ``find_runs`` takes."""
    stored = {
        "status": run.status,
        "script": run.script,
        "command": run.command,
        "params": run.params,
        "gates": run.gates,
    }
    return _Filters(where or {}, gate or {}, status, script).keep(stored)


def differing(runs: Sequence[RunSummary]) -> list[str]:
    """The parameters whose values are not the same in every run (absent counts as a value),
    sorted."""
    keys = sorted({key for run in runs for key in run.params})
    absent = object()
    found = []
    for key in keys:
        values = {
            v if v is absent else _as_json(v) for v in (run.params.get(key, absent) for run in runs)
        }
        if len(values) > 1:
            found.append(key)
    return found


_PLAIN = {str: "s", int: "i", bool: "b", type(None): "n"}


def _as_json(value: Any) -> tuple[str, Any]:
    """What tells values apart as JSON: two are equal exactly when their JSON text is. A plain
    value (most of them) is its type and itself, not written out."""
    kind = _PLAIN.get(type(value))
    if kind is not None:
        return kind, value
    text = json.dumps(value, sort_keys=True)
    if text[:1] not in "[{":  # a float, or a subclass of a plain type, read back
        back = json.loads(text)
        kind = _PLAIN.get(type(back))
        if kind is not None:
            return kind, back
    return "j", text
