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

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.stores.digest_cache import ENVIRONMENT, STAT_KEY, default_location, stat_key
from provenance.stores.scan import join_entries, parse_entries
from provenance.stores.sqlite_store import BUSY_TIMEOUT_S, RACY_WINDOW_NS, SqliteStore, immediate

FILE_NAME = "lineage-v1.sqlite3"
SCHEMA_VERSION = 3  # 2: folder rows; 3: run summaries
# Text a record holds is kept as JSON (ASCII, escaped): a lone surrogate a hostile record can
# hold is no UTF-8 SQLite could store.
_SCHEMA = (
    """CREATE TABLE records (
        path BLOB NOT NULL PRIMARY KEY,
        folder BLOB NOT NULL,
        stat BLOB NOT NULL,
        entrypoint TEXT NOT NULL
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
class StoredOutput:
    """An output row of a stored record."""

    path: bytes  # the record's real path
    output: Output
    entrypoint: str


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
        self._put: list[tuple[bytes, bytes, str, tuple[Output, ...], str]] = []
        self._forget: list[bytes] = []

    @classmethod
    def from_environment(cls) -> LineageIndex | None:
        location = default_location()
        return cls(location.with_name(FILE_NAME)) if location is not None else None

    # -- reading -------------------------------------------------------------------------------

    def folders_under(self, folder: bytes) -> dict[bytes, bytes] | None:
        """``{real folder: entries}`` of the stored folders at or below ``folder`` (a folder key:
        no trailing slash); None if broken."""
        prefix = folder + b"/"
        rows = self._query(
            "SELECT path, entries FROM folders WHERE path = ? OR (path >= ? AND path < ?)",
            (folder, prefix, folder + b"0"),  # "0" sorts right after "/"
        )
        return None if rows is None else dict(rows)

    def entries_of(self, folder: bytes) -> bytes | None:
        """The stored entries of one folder (b"" if none); None if broken."""
        rows = self._query("SELECT entries FROM folders WHERE path = ?", (folder,))
        return None if rows is None else bytes(rows[0][0]) if rows else b""

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

    def summaries_under(self, folder: bytes) -> dict[bytes, str] | None:
        """``{real path: summary}`` of the stored records at or below ``folder``, each summary
        as stored (JSON text); None if broken."""
        rows = self._query(
            "SELECT path, summary FROM runs WHERE folder = ? OR (folder >= ? AND folder < ?)",
            (folder, folder + b"/", folder + b"0"),
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
        walk_began_ns: int,
    ) -> bool:
        """Remember what a record just read says (``key``: its stat key, taken before it was
        read; ``summary``: its run's, as ``provenance.record.summary.stored_text`` gives it); a
        racy record is not remembered."""
        if self.broken:
            return False
        _, _, _, mtime_ns, ctime_ns = STAT_KEY.unpack(key)
        if walk_began_ns - max(mtime_ns, ctime_ns) < self.racy_window_ns:
            self._forget.append(path)
            return False
        self._put.append((path, key, entrypoint, tuple(outputs), summary))
        return True

    def forget(self, paths: Iterable[bytes]) -> None:
        """Drop the rows of records that are gone or no longer readable."""
        self._forget.extend(paths)

    def flush(self) -> None:
        """Write what waits, in one transaction."""
        import sqlite3

        put, self._put = self._put, []
        gone, self._forget = self._forget, []
        if not (put or gone) or self.broken:
            return
        db = self._connect()
        if db is None:
            return
        paths = [(p,) for p in gone] + [(p,) for p, *_ in put]
        outputs = [
            (p, o.position, _text(o.name), _text(o.shown), o.blake3, int(o.directory))
            for p, _, _, written, _ in put
            for o in written
        ]
        touched = sorted({_folder_of(p) for (p,) in paths})
        try:
            with immediate(db):
                db.executemany("DELETE FROM outputs WHERE path = ?", paths)
                db.executemany("DELETE FROM records WHERE path = ?", paths)
                db.executemany("DELETE FROM runs WHERE path = ?", paths)
                db.executemany(
                    "INSERT INTO records VALUES (?, ?, ?, ?)",
                    [(p, _folder_of(p), key, _text(ep)) for p, key, ep, _, _ in put],
                )
                db.executemany(
                    "INSERT INTO runs VALUES (?, ?, ?)",
                    [(p, _folder_of(p), summary) for p, _, _, _, summary in put],
                )
                db.executemany("INSERT INTO outputs VALUES (?, ?, ?, ?, ?, ?)", outputs)
                for folder in touched:  # each folder's row, made again from its records' rows
                    rows = db.execute(
                        "SELECT path, stat FROM records WHERE folder = ?", (folder,)
                    ).fetchall()
                    cut = len(folder) + 1
                    entries = join_entries([(bytes(p)[cut:], bytes(k)) for p, k in rows])
                    if entries:
                        db.execute(
                            "INSERT OR REPLACE INTO folders VALUES (?, ?)", (folder, entries)
                        )
                    else:
                        db.execute("DELETE FROM folders WHERE path = ?", (folder,))
        except sqlite3.Error as err:
            self._give_up(err)
            return
        self.stored += len(put)

    def distrust(self, why: str) -> None:
        """Give the store up: a record read says other than its rows."""
        self._give_up(ValueError(why))

    def close(self) -> None:
        self._close_store()

    def _drop_pending(self) -> None:
        self._put.clear()
        self._forget.clear()
