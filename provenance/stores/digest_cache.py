"""A persistent cache of file digests, so that an unchanged file is not read again.

Entries are keyed as git and DVC key theirs: the file's absolute path with its device, inode,
size, mtime_ns and ctime_ns. Rewriting a file changes its ctime even when the writer restores
size and mtime, so a rewritten file misses. A file whose mtime or ctime lies within
``racy_window_ns`` of the moment its hashing began is *racy*: a write in the same timestamp tick
could leave its stat unchanged, so its digest is used for this run but never stored (git treats
racily clean index entries the same way).

The store is SQLite in WAL mode, shared safely by concurrent runs. Anything wrong with it (a
corrupt file, a lock held too long, a read-only folder) turns the cache off for the rest of the
run with one warning on stderr: the digests are then computed, never guessed, and the run goes on.

``PROVENANCE_DIGEST_CACHE`` names the database file, or a folder to keep it in under its
default name (one that exists, or any value ending with a separator); ``off`` (or an empty
value) disables it. By default it lives in ``$XDG_CACHE_HOME/provenance/``
(``~/.cache/provenance/``). The lineage index is kept beside it.
"""

from __future__ import annotations

import os
import struct
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from provenance.stores.sqlite_store import BUSY_TIMEOUT_S, RACY_WINDOW_NS, SqliteStore, immediate

ENVIRONMENT = "PROVENANCE_DIGEST_CACHE"
FILE_NAME = "digests-v1.sqlite3"
_SEPARATORS = tuple(s for s in (os.sep, os.altsep) if s)  # a value ending so is a folder
SCHEMA_VERSION = 3
# Rows are keyed by (folder, name), so one folder's rows are one range of the primary key.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    dir BLOB NOT NULL,
    name BLOB NOT NULL,
    stat BLOB NOT NULL,
    blake3 TEXT NOT NULL,
    sha256 TEXT,
    PRIMARY KEY (dir, name)
) WITHOUT ROWID
"""
# (device, inode, size, mtime_ns, ctime_ns), packed: one compact, quickly compared column.
STAT_KEY = struct.Struct("<QQqqq")
# Folders whose rows are held while a walk is in them (the walk returns to a parent after
# each subfolder), and how many measured rows wait before they are written.
_FOLDERS_HELD = 16
_WRITE_EVERY = 4096


@dataclass(frozen=True)
class Cached:
    blake3: str
    sha256: str | None


def stat_key(st: os.stat_result) -> bytes:
    return STAT_KEY.pack(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def default_location() -> Path | None:
    """Where the cache lives, from the environment; None when it is turned off. A value naming
    a folder holds the cache in it, so the lineage index beside it is in that folder too, not
    in the folder's parent."""
    given = os.environ.get(ENVIRONMENT)
    if given is not None:
        if given.strip().lower() in ("", "off", "0", "no", "false"):
            return None
        if given.endswith(_SEPARATORS) or os.path.isdir(given):
            return Path(given) / FILE_NAME
        return Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "provenance" / FILE_NAME


class DigestCache(SqliteStore):
    """One run's view of the store: reads folder by folder, writes in batches.

    Memory stays bounded however large the tree: the rows of the last few folders a walk was
    in, and at most a few thousand measured rows waiting to be written.
    """

    SCHEMA_VERSION = SCHEMA_VERSION
    TABLES = ("digests",)
    SCHEMA = (_SCHEMA,)
    NAME = "the digest cache"
    WITHOUT_IT = "hashing without it"
    TURN_OFF = ENVIRONMENT

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        racy_window_ns: int = RACY_WINDOW_NS,
        busy_timeout: float = BUSY_TIMEOUT_S,
    ) -> None:
        super().__init__(location, racy_window_ns=racy_window_ns, busy_timeout=busy_timeout)
        self.hits = 0
        self.misses = 0
        self._pending: list[tuple[bytes, bytes, bytes, str, str | None]] = []
        # folder -> {name: (stat key, blake3, sha256)}, most recently used last
        self._folders: OrderedDict[bytes, dict[bytes, tuple[bytes, str, str | None]]] = (
            OrderedDict()
        )

    @classmethod
    def from_environment(cls) -> DigestCache | None:
        location = default_location()
        return cls(location) if location is not None else None

    # -- reading -------------------------------------------------------------------------------

    def get(self, path: bytes, st: os.stat_result, *, sha256: bool = True) -> Cached | None:
        """The stored digests of ``path`` if its stat key still matches, else None.

        With ``sha256``, an entry stored without SHA-256 is a miss: the file must be read.
        """
        found = self._matching(path, st, whole_folder=False)
        if found is not None and (found[2] is not None or not sha256):
            self.hits += 1
            return Cached(found[1], found[2])
        self.misses += 1
        return None

    def blake3_of(self, path: bytes, st: os.stat_result) -> str | None:
        """``get(path, st, sha256=False).blake3`` for a walk: its whole folder is read at once."""
        found = self._matching(path, st, whole_folder=True)
        if found is not None:
            self.hits += 1
            return found[1]
        self.misses += 1
        return None

    def _matching(
        self, path: bytes, st: os.stat_result, *, whole_folder: bool
    ) -> tuple[bytes, str, str | None] | None:
        """The stored row of ``path`` if its stat key is ``st``'s. ``whole_folder`` loads the
        folder's rows (a walk will ask for its neighbours); else one row is asked for."""
        folder, _, name = path.rpartition(b"/")
        rows = self._folders.get(folder)
        if rows is None and whole_folder:
            rows = self._load(folder)
        found = rows.get(name) if rows is not None else self._select_one(folder, name)
        return found if found is not None and found[0] == stat_key(st) else None

    def _load(self, folder: bytes) -> dict[bytes, tuple[bytes, str, str | None]]:
        found = self._query(
            "SELECT name, stat, blake3, sha256 FROM digests WHERE dir = ?", (folder,)
        )
        rows = {row[0]: row[1:] for row in found or ()}
        self._folders[folder] = rows
        if len(self._folders) > _FOLDERS_HELD:
            self._folders.popitem(last=False)
        return rows

    def _select_one(self, folder: bytes, name: bytes) -> tuple[bytes, str, str | None] | None:
        rows = self._query(
            "SELECT stat, blake3, sha256 FROM digests WHERE dir = ? AND name = ?", (folder, name)
        )
        return tuple(rows[0]) if rows else None

    # -- writing -------------------------------------------------------------------------------

    def put(
        self,
        path: bytes,
        st: os.stat_result,
        blake3: str,
        sha256: str | None,
        *,
        hashing_began_ns: int,
    ) -> bool:
        """Remember digests measured of ``path`` as it was at ``st``; racy files are skipped."""
        if self.broken:
            return False
        newest = max(st.st_mtime_ns, st.st_ctime_ns)
        if hashing_began_ns - newest < self.racy_window_ns:
            return False
        folder, _, name = path.rpartition(b"/")
        self._pending.append((folder, name, stat_key(st), blake3, sha256))
        if len(self._pending) >= _WRITE_EVERY:
            self._write()
        return True

    def close(self) -> None:
        """Write what is still waiting, and let go of the store."""
        try:
            self._write()
        finally:
            self._folders.clear()
            self._close_store()

    def _write(self) -> None:
        rows, self._pending = self._pending, []
        if not rows or self.broken:
            return
        import sqlite3  # only now: a run of small files never needs it

        db = self._connect()
        if db is None:
            return
        try:
            with immediate(db):
                db.executemany("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?)", rows)
        except sqlite3.Error as err:
            self._give_up(err)
            return
        self.stored += len(rows)

    def _drop_pending(self) -> None:
        self._folders.clear()
        self._pending.clear()
