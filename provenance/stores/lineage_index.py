"""A persistent index of which records wrote which digests, so ``lineage`` need not parse them all.

Each record that passed the strict reader is kept as one row of its real path, its folder, its
stat key (device, inode, size, mtime_ns, ctime_ns, as the digest cache keys files) and its
entrypoint, with one row per output it wrote (name, path as shown, blake3, whether it is a
folder) and one row of its run's summary (what ``provenance runs`` shows and filters on).
Each folder's stored records are summed up in one more row: their names and stat keys, as
``provenance.stores.scan`` reads a folder, so a folder none of whose records changed, came or
went is one comparison. A row is used only while the record's stat key is unchanged; a record that
changed, is new, or cannot be read is parsed again, and a record never read is never in it. A
record whose mtime or ctime lies within the racy window of the walk is parsed but not stored,
as the digest cache does.

It lives beside the digest cache (``lineage-v1.sqlite3`` in the same folder), so
``PROVENANCE_DIGEST_CACHE`` moves it, and ``off`` turns both off. SQLite in WAL mode, shared by
concurrent commands; anything wrong with it turns it off for the command with one warning on
stderr, and the records are then all parsed, as without it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from provenance.stores.digest_cache import ENVIRONMENT, STAT_KEY, default_location, stat_key
from provenance.stores.scan import join_entries, parse_entries
from provenance.stores.sqlite_store import BUSY_TIMEOUT_S, RACY_WINDOW_NS, SqliteStore, immediate

FILE_NAME = "lineage-v1.sqlite3"
# 2: folder rows; 3: run summaries; 4: records' digests; 5: argv in the summaries of unparsed runs
SCHEMA_VERSION = 5
# Text a record holds is kept as JSON (ASCII, escaped): a lone surrogate a hostile record can
# hold is no UTF-8 SQLite could store.
_SCHEMA = (
    """CREATE TABLE records (
        path BLOB NOT NULL PRIMARY KEY,
        folder BLOB NOT NULL,
        stat BLOB NOT NULL,
        entrypoint TEXT NOT NULL,
        digest BLOB NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX records_by_folder ON records (folder)",
    """CREATE TABLE folders (
        path BLOB NOT NULL PRIMARY KEY,
        entries BLOB NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE outputs (
        path BLOB NOT NULL,
        position INTEGER NOT NULL,
        name TEXT NOT NULL,
        shown TEXT NOT NULL,
        blake3 TEXT,
        directory INTEGER NOT NULL,
        PRIMARY KEY (path, position)
    ) WITHOUT ROWID""",
    "CREATE INDEX outputs_by_digest ON outputs (blake3) WHERE blake3 IS NOT NULL",
    "CREATE INDEX outputs_folders ON outputs (directory) WHERE directory = 1",
    """CREATE TABLE runs (
        path BLOB NOT NULL PRIMARY KEY,
        folder BLOB NOT NULL,
        summary TEXT NOT NULL
    ) WITHOUT ROWID""",
    "CREATE INDEX runs_by_folder ON runs (folder)",
)


@dataclass(frozen=True)
class Output:
    """One output a record says its run wrote, as ``lineage`` follows it."""

    position: int  # its place among the record's declared outputs
    name: str
    shown: str
    blake3: str | None
    directory: bool


@dataclass(frozen=True)
class Changes:
    """A walked folder's records against the index's rows of them."""

    now: dict[bytes, bytes]  # the walk's records, name: stat key, in the walk's order
    changed: list[bytes]  # the names among them whose rows are not current: new, or changed
    before: dict[bytes, bytes]  # the records the index held rows of, name: stat key


@dataclass(frozen=True)
class StoredOutput:
    """An output row of a stored record."""

    path: bytes  # the record's real path
    output: Output
    entrypoint: str


class _Put(NamedTuple):
    path: bytes
    key: bytes
    entrypoint: str
    outputs: tuple[Output, ...]
    summary: str
    digest: bytes


def content_digest(data: bytes) -> bytes:
    """What the index knows a record's bytes by: a record rewritten with the same bytes (copied,
    checked out again, restored) need not be parsed again."""
    return hashlib.blake2b(data, digest_size=16).digest()


def _text(value: Any) -> str:
    return json.dumps(value)


def _folder_of(path: bytes) -> bytes:
    """A record's folder as the index keys it: its real path's parent, no trailing slash."""
    return path.rpartition(b"/")[0]


class LineageIndex(SqliteStore):
    """One command's view of the store: stat keys read per walked folder, writes in one batch."""

    SCHEMA_VERSION = SCHEMA_VERSION
    TABLES = ("folders", "outputs", "records", "runs")
    SCHEMA = _SCHEMA
    NAME = "the lineage index"
    WITHOUT_IT = "reading every record instead"
    TURN_OFF = ENVIRONMENT

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        racy_window_ns: int = RACY_WINDOW_NS,
        busy_timeout: float = BUSY_TIMEOUT_S,
    ) -> None:
        super().__init__(location, racy_window_ns=racy_window_ns, busy_timeout=busy_timeout)
        self._put: list[_Put] = []
        self._forget: list[bytes] = []
        self._restat: list[tuple[bytes, bytes]] = []  # (path, stat key): the same bytes, anew
        # Each walked folder's row as read, by folder: (the row, its names, the walk's entries
        # and names), from which ``flush`` makes the folder's new row without reading its
        # records' rows back.
        self._views: dict[bytes, tuple[bytes, dict[bytes, bytes], bytes, dict[bytes, bytes]]] = {}
        # SQLite's data_version before the first folder row was read: while no other
        # connection has written since, the rows read are still the rows.
        self._version: int | None = None

    @classmethod
    def from_environment(cls) -> LineageIndex | None:
        location = default_location()
        return cls(location.with_name(FILE_NAME)) if location is not None else None

    # -- reading -------------------------------------------------------------------------------

    def folders_under(self, folder: bytes) -> dict[bytes, bytes] | None:
        """``{real folder: entries}`` of the stored folders at or below ``folder`` (a folder key:
        no trailing slash); None if broken."""
        prefix = folder + b"/"
        self._note_version()
        rows = self._query(
            "SELECT path, entries FROM folders WHERE path = ? OR (path >= ? AND path < ?)",
            (folder, prefix, folder + b"0"),  # "0" sorts right after "/"
        )
        return None if rows is None else dict(rows)

    def entries_of(self, folder: bytes) -> bytes | None:
        """The stored entries of one folder (b"" if none); None if broken."""
        self._note_version()
        rows = self._query("SELECT entries FROM folders WHERE path = ?", (folder,))
        return None if rows is None else bytes(rows[0][0]) if rows else b""

    def _note_version(self) -> None:
        if self._version is None:
            rows = self._query("PRAGMA data_version", ())
            self._version = rows[0][0] if rows else None

    def vouches(self, source: Path, st: os.stat_result) -> bool:
        """Whether the record read from ``source`` (``st`` taken after reading it) is stored,
        unchanged: it passed the strict reader, schema and all, when it was stored."""
        folder, _, name = os.fsencode(os.path.realpath(source)).rpartition(b"/")
        entries = self.entries_of(folder)
        held = self.names(entries) if entries else None
        return held is not None and held.get(name) == stat_key(st)

    def names(self, entries: bytes) -> dict[bytes, bytes] | None:
        """``{name: stat key}`` of a folder's stored ``entries``; None (the store given up) if
        they are not of their shape."""
        try:
            return parse_entries(entries)
        except ValueError as err:  # a store something else wrote into
            self._give_up(err)
            return None

    def walked(self, folder: bytes, entries: bytes, held: bytes) -> Changes | None:
        """A walked folder's records (``entries``, as the walk made them) against the row the
        index held of it (``held``, b"" if none): the rows of records gone from it are
        forgotten. None if the row is not of its shape (the store given up)."""
        now = parse_entries(entries, checked=False)  # the walk's own: of its shape
        if held == entries:
            before, changed = now, []  # none of its records changed, came or went
        else:
            names = self.names(held) if held else {}
            if names is None:
                return None
            before = names
            changed = [name for name, key in now.items() if before.get(name) != key]
            self.forget(folder + b"/" + name for name in before if name not in now)
        self._views[folder] = (held, before, entries, now)
        return Changes(now, changed, before)

    def summaries_under(self, folder: bytes) -> dict[bytes, str] | None:
        """``{real path: summary}`` of the stored records at or below ``folder``, each summary
        as stored (JSON text); None if broken."""
        rows = self._query(  # by path, in its own order: a record below is named folder + "/"...
            "SELECT path, summary FROM runs WHERE path >= ? AND path < ?",
            (folder + b"/", folder + b"0"),  # "0" sorts right after "/"
        )
        return None if rows is None else dict(rows)

    def by_digest(self, blake3: str) -> list[StoredOutput] | None:
        """The stored outputs with this digest, whichever record; None if broken."""
        return self._outputs("o.blake3 = ?", (blake3,))

    def folders(self) -> list[StoredOutput] | None:
        """The stored outputs that are folders; None if broken."""
        return self._outputs("o.directory = 1", ())

    def _outputs(self, where: str, params: tuple[object, ...]) -> list[StoredOutput] | None:
        rows = self._query(
            "SELECT o.path, o.position, o.name, o.shown, o.blake3, o.directory, r.entrypoint "
            f"FROM outputs o JOIN records r ON r.path = o.path WHERE {where}",
            params,
        )
        if rows is None:
            return None
        try:
            return [
                StoredOutput(
                    bytes(path),
                    Output(position, json.loads(name), json.loads(shown), blake3, bool(directory)),
                    json.loads(entrypoint),
                )
                for path, position, name, shown, blake3, directory, entrypoint in rows
            ]
        except (ValueError, TypeError) as err:  # a store something else wrote into
            self._give_up(err)
            return None

    # -- writing -------------------------------------------------------------------------------

    def put(
        self,
        path: bytes,
        key: bytes,
        entrypoint: str,
        outputs: Iterable[Output],
        summary: str,
        *,
        digest: bytes,
        walk_began_ns: int,
    ) -> bool:
        """Remember what a record just read says (``key``: its stat key, taken before it was
        read; ``summary``: its run's, as ``provenance.record.summary.stored_text`` gives it;
        ``digest``: ``content_digest`` of the bytes read); a racy record is not remembered."""
        if self.broken:
            return False
        if self._racy(key, walk_began_ns):
            self._forget.append(path)
            return False
        self._put.append(_Put(path, key, entrypoint, tuple(outputs), summary, digest))
        return True

    def same_bytes(
        self, path: bytes, key: bytes, digest: bytes, *, walk_began_ns: int
    ) -> bytes | None:
        """For a record whose stat changed to ``key``: if the index's rows of it were read from
        bytes with this ``digest`` (rewritten, not changed), they stand for it whatever its
        stat, and are kept under ``key``; the key they are current under is returned (b"" for
        a racy record, which keeps its old key, to be looked at again). None if its bytes are
        not those."""
        rows = self._query("SELECT 1 FROM records WHERE path = ? AND digest = ?", (path, digest))
        if not rows:
            return None
        if self.broken or self._racy(key, walk_began_ns):
            return b""
        self._restat.append((path, key))
        return key

    def _racy(self, key: bytes, walk_began_ns: int) -> bool:
        _, _, _, mtime_ns, ctime_ns = STAT_KEY.unpack(key)
        return bool(walk_began_ns - max(mtime_ns, ctime_ns) < self.racy_window_ns)

    def forget(self, paths: Iterable[bytes]) -> None:
        """Drop the rows of records that are gone or no longer readable."""
        self._forget.extend(paths)

    def flush(self) -> None:
        """Write what waits, in one transaction."""
        import sqlite3

        put, self._put = self._put, []
        gone, self._forget = self._forget, []
        restat, self._restat = self._restat, []
        if not (put or gone or restat) or self.broken:
            return
        db = self._connect()
        if db is None:
            return
        paths = [(p,) for p in gone] + [(p.path,) for p in put]
        outputs = [
            (p.path, o.position, _text(o.name), _text(o.shown), o.blake3, int(o.directory))
            for p in put
            for o in p.outputs
        ]
        touched: dict[bytes, tuple[set[bytes], dict[bytes, bytes]]] = {}  # (gone, put) by folder
        for path in gone:
            folder, _, name = path.rpartition(b"/")
            touched.setdefault(folder, (set(), {}))[0].add(name)
        for path, key in [*((p.path, p.key) for p in put), *restat]:
            folder, _, name = path.rpartition(b"/")
            touched.setdefault(folder, (set(), {}))[1][name] = key
        try:
            with immediate(db):
                db.executemany("DELETE FROM outputs WHERE path = ?", paths)
                db.executemany("DELETE FROM records WHERE path = ?", paths)
                db.executemany("DELETE FROM runs WHERE path = ?", paths)
                db.executemany(
                    "INSERT INTO records VALUES (?, ?, ?, ?, ?)",
                    [
                        (p.path, _folder_of(p.path), p.key, _text(p.entrypoint), p.digest)
                        for p in put
                    ],
                )
                db.executemany(
                    "INSERT INTO runs VALUES (?, ?, ?)",
                    [(p.path, _folder_of(p.path), p.summary) for p in put],
                )
                db.executemany("INSERT INTO outputs VALUES (?, ?, ?, ?, ?, ?)", outputs)
                db.executemany(
                    "UPDATE records SET stat = ? WHERE path = ?", [(k, p) for p, k in restat]
                )
                version = db.execute("PRAGMA data_version").fetchone()[0]
                views = self._views if version == self._version else {}  # else, out of date
                rows = [
                    (folder, self._folder_row(db, folder, *touched[folder], views.get(folder)))
                    for folder in sorted(touched)
                ]
                db.executemany(
                    "INSERT OR REPLACE INTO folders VALUES (?, ?)", [r for r in rows if r[1]]
                )
                db.executemany(
                    "DELETE FROM folders WHERE path = ?", [r[:1] for r in rows if not r[1]]
                )
        except sqlite3.Error as err:
            self._give_up(err)
            return
        finally:  # what was read is older than what this command just wrote
            self._views.clear()
            self._version = None
        self.stored += len(put)

    @staticmethod
    def _folder_row(
        db: Any,
        folder: bytes,
        gone: set[bytes],
        put: dict[bytes, bytes],
        view: tuple[bytes, dict[bytes, bytes], bytes, dict[bytes, bytes]] | None,
    ) -> bytes:
        """A folder's row, once its records' rows are written: from the row this command read
        (``view``: it is still the row) less the records gone, with those put; else made again
        from its records' rows."""
        if view is not None:
            _, before, entries, now = view
            names = dict(before)
            for name in gone:
                names.pop(name, None)
            names.update(put)
            if names == now:
                return entries  # the common case: the walk's, as it made them
            kept = [(name, key) for name, key in now.items() if names.get(name) == key]
            if len(kept) == len(names):  # some of the walk's: in its order
                return b"".join(name + b"\0" + key for name, key in kept)
            return join_entries(list(names.items()))
        rows = db.execute("SELECT path, stat FROM records WHERE folder = ?", (folder,)).fetchall()
        cut = len(folder) + 1
        return join_entries([(bytes(p)[cut:], bytes(k)) for p, k in rows])

    def distrust(self, why: str) -> None:
        """Give the store up: a record read says other than its rows."""
        self._give_up(ValueError(why))

    def close(self) -> None:
        self._close_store()

    def _drop_pending(self) -> None:
        self._put.clear()
        self._forget.clear()
        self._restat.clear()
        self._views.clear()
        self._version = None
