"""The lineage walk: every readable record under the search folders indexed by the outputs its
run wrote (by digest, and as folders), through the lineage index where there is one, and the
tree of an artifact's inputs traced back through the runs that made them."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.reading import no_cycle_collection
from provenance.record.sidecar import SIDECAR_SUFFIX, sidecar_path_for
from provenance.record.summary import stored_text, summarize
from provenance.records import (
    Boundary,
    Place,
    RealPaths,
    Record,
    Roots,
    UnreadableRecord,
    declared_entries,
    load,
    place_of,
    read_bytes,
)
from provenance.stores.digest_cache import stat_key
from provenance.stores.lineage_index import LineageIndex, Output, StoredOutput, content_digest
from provenance.stores.scan import SKIPPED_FOLDERS, Folder, folder_key, parse_entries, scan

_MAX_FOLDER_DEPTH = 64  # how far up from an input to look for a folder a run wrote
# Runs followed from the artifact: pipelines are a few deep; JSON of a much deeper tree would
# nest past what Python's encoder (and most readers) take.
DEFAULT_MAX_DEPTH, MAX_DEPTH = 100, 250


@dataclass
class Producer:
    record: Record
    source: str  # the record's real path
    output: str  # the output's name in its record
    shown: str  # its path as the record shows it
    path: Path | None  # where it is (symlinks resolved inside the boundary), if usable
    order: tuple[Order, int] = ((0, ""), 0)  # (the record's place in the walk, the output's)


# A record's place among the others: (its folder's place in the walk, its name) for a walked
# one, (after every walked folder, "") for one read later, as records beside inputs are.
Order = tuple[int, str]
_FS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()  # os.fsencode, inlined


@dataclass
class _Taken:
    """A walked folder's records whose rows in the lineage index are current: all of them
    (``whole``, the walk's entries of the folder, which the index holds as they are), or those
    in ``keys``, each with its stat key."""

    place: int  # the folder's place in the walk
    prefix: str  # what a record's name is joined to, to be the path the walk shows
    whole: bytes | None = None
    keys: dict[bytes, bytes] = field(default_factory=dict)

    def holds(self, name: bytes, *, stored: bool) -> bool:
        """Whether the record ``name`` is one of them; ``stored``: a name the store holds."""
        if self.whole is not None and not self.keys:
            if stored:
                return True  # every record the store holds of this folder is current
            self.keys = parse_entries(self.whole)  # as the walk made them
        return name in self.keys

    def key(self, name: bytes) -> bytes | None:
        """The stat key of one of them, as the walk and the store both have it."""
        return self.keys.get(name) if self.holds(name, stored=False) else None


class StoreFailed(Exception):
    """The lineage index broke while in use: the caller starts again without it."""


def outputs_of(record: Record) -> list[Output]:
    """The outputs ``record``'s run wrote, as lineage follows them: by digest, and as folders."""
    found = []
    for position, (name, entry) in enumerate(declared_entries(record.block["outputs"])):
        if not isinstance(entry, dict) or not entry.get("exists"):
            continue
        if entry.get("written_by_run") is False:
            continue  # the run left it as it found it: it did not produce it
        blake3 = entry.get("blake3") or None
        found.append(
            Output(position, name, entry["path"], blake3, entry.get("kind") == "directory")
        )
    return found


@dataclass
class Index:
    """Every readable record under the search folders, by output digest and by output folder.

    With a lineage index (``store``), a walked record whose rows are current is not parsed:
    its rows stand in for it until it is the producer asked for, and only then is it read.
    """

    boundary: Boundary
    root: str | None = None
    store: LineageIndex | None = None
    by_digest: dict[str, list[Producer]] = field(default_factory=dict)
    folders: list[Producer] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    _indexed: set[str] = field(default_factory=set)
    _looked_at: set[Path] = field(default_factory=set)
    parsed: int = 0  # records read through the strict reader
    _next: int = 0  # the place of the next record read after the walk
    # The records the lineage index answers for, by their folder's key, and those reached
    # through a link in the walk (by real path: where the walk met them, as what path).
    _taken: dict[bytes, _Taken] = field(default_factory=dict)
    _linked: dict[bytes, tuple[Order, str, bytes]] = field(default_factory=dict)
    _through_links: set[str] = field(default_factory=set)  # real paths read where a link met them
    _stored_folders: list[tuple[tuple[Order, int], StoredOutput, Path]] | None = None
    _read: dict[bytes, Record | None] = field(default_factory=dict)
    _roots: dict[tuple[str, str], Path | None] = field(default_factory=dict)
    _finder: Roots = field(default_factory=Roots)
    _real: RealPaths = field(default_factory=RealPaths)

    def add(self, record: Record, order: Order | None = None) -> bool:
        given = os.fspath(record.source)
        # Without "..", the real path of the absolute path is the path's (the working folder
        # is real): resolved by folder.
        source = (
            self._real(os.path.abspath(given)) if ".." not in given else os.path.realpath(given)
        )
        if source in self._indexed or self._at(source.encode(*_FS)) is not None:
            return False
        self._indexed.add(source)
        if order is None:
            order, self._next = (self._next, ""), self._next + 1
        for output in outputs_of(record):
            place = record.place(output.shown, self.boundary, self._real)
            key = (order, output.position)
            producer = Producer(record, source, output.name, output.shown, _where(place), key)
            if output.blake3:
                self.by_digest.setdefault(output.blake3, []).append(producer)
            if output.directory and producer.path is not None:
                self.folders.append(producer)
        return True

    def producer_of(
        self, entry: dict[str, Any], place: Place, exclude: str
    ) -> tuple[str, Producer] | None:
        """The run that wrote this input: first the record beside it (if its output has the
        same digest), then any indexed record with that digest, then a run that wrote a folder
        holding it (beside that folder, or indexed)."""
        if place.path is not None:
            self._add_beside(place.path)
        digest = entry.get("blake3") or ""
        for producer in self._by_digest(digest, exclude):
            return "digest", producer
        path = _where(place)
        if path is None:
            return None
        if place.path is not None:
            for folder in list(path.parents)[:_MAX_FOLDER_DEPTH]:
                if folder.name:  # the filesystem's root has no sidecar beside it
                    self._add_beside(folder)
        for producer in self._folders_holding(path, exclude):
            return "part of", producer
        return None

    def _at(self, real: bytes, *, stored: bool = False) -> tuple[Order, str] | None:
        """Where the walk met a record whose stored rows are current (its place, and the path
        it was walked by); None if the store does not answer for it. ``stored``: ``real`` is
        the path of rows the store holds."""
        linked = self._linked.get(real)
        if linked is not None:
            return linked[:2]
        folder, _, name = real.rpartition(b"/")
        taken = self._taken.get(folder)
        if taken is None or not taken.holds(name, stored=stored):
            return None
        shown = name.decode(*_FS)
        return (taken.place, shown), taken.prefix + shown

    def _vouched(self, source: Path, st: os.stat_result) -> bool:
        """Whether the record read from ``source`` (its stat ``st`` taken after the read) is
        one the store answers for, unchanged: it passed the schema check when it was stored."""
        real = os.path.realpath(source).encode(*_FS)
        linked = self._linked.get(real)
        if linked is not None:
            return linked[2] == stat_key(st)
        folder, _, name = real.rpartition(b"/")
        taken = self._taken.get(folder)
        return taken is not None and taken.key(name) == stat_key(st)

    def _by_digest(self, digest: str, exclude: str) -> Iterator[Producer]:
        """The producers of ``digest`` but ``exclude``, in the order the records were found."""
        found: list[tuple[tuple[Order, int], Producer | StoredOutput]] = [
            (p.order, p) for p in self.by_digest.get(digest, []) if p.source != exclude
        ]
        if self.store is not None and (self._taken or self._linked) and digest:
            rows = self.store.by_digest(digest)
            if rows is None:
                raise StoreFailed
            for row in rows:
                at = self._at(row.path, stored=True)
                if at is not None and os.fsdecode(row.path) != exclude:
                    found.append(((at[0], row.output.position), row))
        for _, item in sorted(found, key=lambda pair: pair[0]):
            producer = item if isinstance(item, Producer) else self._producer(item, None)
            if producer is not None:
                yield producer

    def _folders_holding(self, path: Path, exclude: str) -> Iterator[Producer]:
        """The producers of folders holding ``path`` but ``exclude``, in the order found."""
        found: list[tuple[tuple[Order, int], Producer | tuple[StoredOutput, Path]]] = []
        for folder in self.folders:
            assert folder.path is not None  # only producers with a usable path are folders
            if folder.source != exclude and path.is_relative_to(folder.path):
                found.append((folder.order, folder))
        for key, row, where in self._placed_folders():
            if os.fsdecode(row.path) != exclude and path.is_relative_to(where):
                found.append((key, (row, where)))
        for _, item in sorted(found, key=lambda pair: pair[0]):
            producer = item if isinstance(item, Producer) else self._producer(*item)
            if producer is not None:
                yield producer

    def _placed_folders(self) -> list[tuple[tuple[Order, int], StoredOutput, Path]]:
        """The stored folder outputs of current records, each where it is (as a record read
        now would place it), worked out from the rows alone, once."""
        if self._stored_folders is None:
            placed = []
            wanted = self.store is not None and (self._taken or self._linked)
            rows = self.store.folders() if self.store is not None and wanted else []
            if rows is None:
                raise StoreFailed
            for row in rows:
                at = self._at(row.path, stored=True)
                if at is None:
                    continue
                order, walked = at
                base = self._base(walked, row.entrypoint)
                where = _where(place_of(base, row.output.shown, self.boundary))
                if where is not None:
                    placed.append(((order, row.output.position), row, where))
            self._stored_folders = placed
        return self._stored_folders

    def _base(self, walked: str, entrypoint: str) -> Path:
        """Where a record's relative paths resolve from, as ``Record.base`` says."""
        if self.root is not None:
            return Path(os.path.abspath(self.root))
        key = (os.path.dirname(walked), entrypoint)
        if key not in self._roots:
            self._roots[key] = self._finder.root_for(Path(walked), entrypoint)
        found = self._roots[key]
        return found if found is not None else Path(os.path.abspath(os.path.dirname(walked)))

    def _producer(self, row: StoredOutput, where: Path | None) -> Producer | None:
        """A stored output as a producer, its record read now (through the strict reader)."""
        at = self._at(row.path, stored=True)
        assert at is not None  # only the rows of records the store answers for come here
        order, walked = at
        if row.path not in self._read:
            self.parsed += 1
            try:
                self._read[row.path] = load(
                    walked, self.root, vouched=self._vouched, roots=self._finder
                )
            except UnreadableRecord as err:  # changed since the walk: skipped, as a walk would
                self.unreadable.append(str(err))
                self._read[row.path] = None
        record = self._read[row.path]
        if record is None:
            return None
        output = row.output
        if output not in outputs_of(record):
            assert self.store is not None
            if self._changed_since_walk(row.path, walked):
                raise StoreFailed  # rewritten meanwhile: the records answer, the store is fine
            self.store.distrust(f"{walked}: its rows name an output it does not hold")
            raise StoreFailed  # the rows were written by something else
        source = os.fsdecode(row.path)
        return Producer(record, source, output.name, output.shown, where, (order, output.position))

    def _changed_since_walk(self, real: bytes, walked: str) -> bool:
        """Whether the record the walk met at ``walked`` (real path ``real``) has another stat
        now than the one its rows were taken under."""
        linked = self._linked.get(real)
        if linked is not None:
            key: bytes | None = linked[2]
        else:
            folder, _, name = real.rpartition(b"/")
            taken = self._taken.get(folder)
            key = taken.key(name) if taken is not None else None
        try:
            return key is None or stat_key(os.stat(walked)) != key
        except OSError:
            return True

    def _add_beside(self, path: Path) -> None:
        """Index the record kept beside ``path``, if there is a readable one inside the
        boundary."""
        sidecar = sidecar_path_for(path)
        if sidecar in self._looked_at:
            return
        self._looked_at.add(sidecar)
        real = os.path.realpath(sidecar)
        # One already taken in is readable, and would be skipped: it need not be read again.
        if (
            self.boundary.admits(real)
            and real not in self._indexed
            and self._at(real.encode(*_FS)) is None
            and sidecar.is_file()
        ):
            self.load(sidecar)

    def load(
        self,
        path: Path,
        order: Order | None = None,
        *,
        read: tuple[bytes, os.stat_result] | None = None,
    ) -> Record | None:
        self.parsed += 1
        try:
            record = load(path, self.root, roots=self._finder, read=read)
        except UnreadableRecord as err:
            self.unreadable.append(str(err))
            return None
        return record if self.add(record, order) else None

    def take(self, walked: list[Folder], stored: dict[bytes, bytes], began: int) -> None:
        """Take in the records of the walked folders, in the walk's order: from the store where
        their rows are current (``stored``: the store's entries of the folders below the
        tops), else read, and stored."""
        store = self.store
        assert store is not None
        for place, folder in enumerate(walked):
            key = folder.key
            if key in self._taken:
                continue  # a folder below two of the tops: taken in at the first
            held = stored.pop(key, None)
            if (
                held is not None
                and held == folder.entries
                and not folder.others
                and self.boundary.admits(folder.real)
            ):
                self._taken[key] = _Taken(place, folder.prefix, folder.entries)  # the common case
                continue
            self._take_each(place, folder, held, began)
        self._next = len(walked)
        for key, held in stored.items():  # folders gone from the walk: their records too,
            # but for those a link in the walk reached (a skipped folder's): they are current.
            gone = (key + b"/" + name for name in _held(store, held))
            store.forget(real for real in gone if real not in self._linked)
        store.flush()
        if store.broken:
            raise StoreFailed

    def _take_each(self, place: int, folder: Folder, held: bytes | None, began: int) -> None:
        """Take in a folder's records one by one: some changed, came or went."""
        store = self.store
        assert store is not None
        key = folder.key
        current = self._taken[key] = _Taken(place, folder.prefix)
        if folder.others or not self.boundary.admits(folder.real):
            self._take_in_order(current, folder, held, began)
            return
        changes = store.walked(key, folder.entries, held or b"")
        if changes is None:
            raise StoreFailed
        now = changes.now
        changed = set(changes.changed)
        current.keys = dict(now)
        for name in changed:
            del current.keys[name]
        base = key + b"/"
        for name in sorted(changed, key=lambda name: name.decode(*_FS)):
            real = base + name
            if real in self._linked:
                current.keys[name] = now[name]  # current, taken in where a link to it was met
            elif os.fsdecode(real) not in self._indexed:  # else read where a link met it
                shown = name.decode(*_FS)
                path = folder.prefix + shown
                same = self._read_and_store(
                    path, (place, shown), real, now[name], began, held=name in changes.before
                )
                if same is not None:  # its bytes are those its rows were read from
                    current.keys[name] = same
        if self._through_links:  # read already, where a link to it was met: not taken here
            for name in [n for n in current.keys if os.fsdecode(base + n) in self._through_links]:
                del current.keys[name]

    def _take_in_order(
        self, current: _Taken, folder: Folder, held: bytes | None, began: int
    ) -> None:
        """``_take_each`` of a folder that holds links, or is out of the boundary: its records
        one by one in the walk's order, so that a link and the record it leads to are met in
        the order the full scan meets them."""
        store = self.store
        assert store is not None
        key = folder.key
        before = _held(store, held) if held is not None else {}
        now = parse_entries(folder.entries)  # as this walk made them
        names = {name.decode(*_FS): name for name in now}
        admitted = self.boundary.admits(folder.real)
        for shown in sorted([*names, *folder.others]):
            path = folder.prefix + shown
            name = names.get(shown)
            if name is None or not admitted:
                self._take_one(path, (current.place, shown), began)
                continue
            real = key + b"/" + name
            if real in self._linked:
                current.keys[name] = now[name]  # current, taken in where a link to it was met
                continue
            if os.fsdecode(real) in self._indexed:
                continue  # read already, where a link to it was met
            if before.get(name) == now[name]:
                current.keys[name] = now[name]
                continue
            same = self._read_and_store(
                path, (current.place, shown), real, now[name], began, held=name in before
            )
            if same is not None:  # its bytes are those its rows were read from
                current.keys[name] = same
        store.forget(key + b"/" + name for name in before if name not in current.keys)

    def _take_one(self, path: str, order: Order, began: int) -> None:
        """Take in a record the walk could not vouch for by its folder: a link (to a record
        anywhere), or one that could not be stat-ed."""
        store = self.store
        assert store is not None
        real = os.path.realpath(path)
        if not self.boundary.admits(real):
            return
        real_bytes = real.encode(*_FS)
        if real in self._indexed or self._at(real_bytes) is not None:
            return  # another path to a record already taken in
        try:
            st: os.stat_result | None = os.stat(path)
        except OSError:
            st = None
        folder, _, name = real_bytes.rpartition(b"/")
        held = store.entries_of(folder)
        if held is None:
            raise StoreFailed
        names = _held(store, held)
        if st is not None and names.get(name) == stat_key(st):
            self._linked[real_bytes] = (order, path, stat_key(st))
            return
        key = stat_key(st) if st is not None else None
        same = self._read_and_store(path, order, real_bytes, key, began, held=name in names)
        if same is not None:  # its bytes are those its rows were read from
            self._linked[real_bytes] = (order, path, same)
        else:
            self._through_links.add(real)

    def _read_and_store(
        self, path: str, order: Order, real: bytes, key: bytes | None, began: int, *, held: bool
    ) -> bytes | None:
        """Read a record the store cannot answer for by its stat, and store what it says
        (``key``: its stat key before the read; none, nothing is stored), or drop its rows if
        unreadable. If its bytes are those the store's rows were read from (rewritten, not
        changed), it is not parsed: the key its rows are current under is returned (b"" if
        it is racy: current, but vouched for by no stat)."""
        store = self.store
        assert store is not None
        try:
            read = read_bytes(path)
        except UnreadableRecord as err:
            self.parsed += 1
            self.unreadable.append(str(err))
            store.forget([real])
            return None
        digest = content_digest(read[0])
        if held and key is not None:
            kept = store.same_bytes(real, key, digest, walk_began_ns=began)
            if kept is not None:
                return kept
        record = self.load(Path(path), order, read=read)
        if record is None:
            store.forget([real])
        elif key is not None:
            entrypoint = record.block["entrypoint"]["path"]
            summary = stored_text(summarize(record.block))
            store.put(
                real,
                key,
                entrypoint,
                outputs_of(record),
                summary,
                digest=digest,
                walk_began_ns=began,
            )
        return None


def _held(store: LineageIndex, entries: bytes) -> dict[bytes, bytes]:
    """What the store holds of a folder, by name; ``StoreFailed`` if it is not of its shape."""
    names = store.names(entries)
    if names is None:
        raise StoreFailed
    return names


def _where(place: Place) -> Path | None:
    return place.path if place.path is not None else place.written


def records_under(folders: list[Path], boundary: Boundary) -> list[Path]:
    found = []
    walked: set[str] = set()
    for top in folders:
        for folder, dirs, files in os.walk(top):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_FOLDERS)
            real = os.path.realpath(folder)
            if real in walked:
                continue  # a folder below two of the search folders: its records once
            walked.add(real)
            for name in sorted(files):
                path = Path(folder) / name
                if name.endswith(SIDECAR_SUFFIX) and boundary.admits(os.path.realpath(path)):
                    found.append(path)
    return found


def build_index(
    folders: list[Path], root: str | None, boundary: Boundary, store: LineageIndex | None = None
) -> Index:
    index = Index(boundary, root, store)
    with no_cycle_collection():
        if store is None:
            for path in records_under(folders, boundary):
                index.load(path)
            return index
        began = time.time_ns()  # before any stat: a record changed after it is racy
        tops = list(dict.fromkeys(folders))
        stored: dict[bytes, bytes] = {}
        failed: list[bool] = []

        def read_store() -> None:  # done while a forked walker stats (it touches no store)
            for top in tops:
                held = store.folders_under(folder_key(os.path.realpath(top)))
                if held is None:
                    failed.append(True)
                    return
                stored.update(held)

        walked: list[Folder] = []
        for i, top in enumerate(tops):
            walked.extend(scan(top, read_store if i == 0 else None))
        if failed:
            raise StoreFailed
        index.take(walked, stored, began)
    return index


@dataclass
class Walk:
    """One tracing of the tree: the runs already shown, and how deep it may go."""

    index: Index
    max_depth: int
    seen: set[str] = field(default_factory=set)
    cut_short: bool = False
    # Each run shown, by its node's "record", in the order first met: for callers that need
    # more of a record than the tree keeps (a model card's gates and digests).
    records: dict[str, Record] = field(default_factory=dict)


def trace(record: Record, walk: Walk, depth: int = 0) -> dict[str, Any]:
    """The tree of ``record``'s inputs, each followed to the run that produced it."""
    source = os.path.realpath(record.source)
    node: dict[str, Any] = {
        "record": _shown(record.source),
        "entrypoint": record.block["entrypoint"]["path"],
        "status": (record.block.get("outcome") or {}).get("status"),
        "inputs": [],
    }
    if source in walk.seen:
        node["repeated"] = any(True for _ in declared_entries(record.block["inputs"]))
        return node
    walk.seen.add(source)
    walk.records.setdefault(node["record"], record)
    for name, entry in declared_entries(record.block["inputs"]):
        if not isinstance(entry, dict) or "path" not in entry:
            continue
        place = record.place(entry["path"], walk.index.boundary)
        item: dict[str, Any] = {"name": name, "path": entry["path"], "blake3": entry.get("blake3")}
        found = walk.index.producer_of(entry, place, source) if entry.get("exists") else None
        if found is None:
            item["raw"] = True
        elif depth >= walk.max_depth:
            item["truncated"] = True
            walk.cut_short = True
        else:
            how, producer = found
            item["link"] = how
            item["via"] = producer.shown
            item["produced_by"] = trace(producer.record, walk, depth + 1)
        node["inputs"].append(item)
    return node


def _shown(path: Path) -> str:
    """A record's path as a user would type it: relative to the working folder when under it."""
    absolute = Path(os.path.realpath(path))
    try:
        return str(absolute.relative_to(os.path.realpath(Path.cwd())))
    except ValueError:
        return str(absolute)


def index_for(
    record: Record,
    search: list[str],
    root: str | None,
    *,
    outside_root: bool = False,
    store: LineageIndex | None = None,
) -> Index:
    """The records ``record``'s lineage is traced through: those under ``search`` (by default,
    the project the record is in; records beside each input are found anyway), and itself.
    With ``store``, unchanged records come from the lineage index, and tracing may raise
    ``StoreFailed`` if it breaks (the caller then starts again without it)."""
    source = os.path.realpath(record.source)
    within_root = record.root is not None and record.boundary().admits(source)
    default = record.root if within_root and record.root is not None else record.source.parent
    folders = [Path(d) for d in search] or [default]
    boundary = record.boundary(outside_root=outside_root).widened(folders)
    index = build_index(folders, root, boundary, store)
    index.add(record)
    return index
