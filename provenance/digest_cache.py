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

``PROVENANCE_DIGEST_CACHE`` names the database file; ``off`` (or an empty value) disables it.
By default it lives in ``$XDG_CACHE_HOME/provenance/`` (``~/.cache/provenance/``).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENVIRONMENT = "PROVENANCE_DIGEST_CACHE"
FILE_NAME = "digests-v1.sqlite3"
RACY_WINDOW_NS = 2_000_000_000  # FAT's 2 s mtime granularity; covers modest NFS clock skew too
BUSY_TIMEOUT_S = 2.0
_SCHEMA = """
CREATE TABLE IF NOT EXISTS digests (
    path BLOB PRIMARY KEY,
    dev INTEGER NOT NULL,
    ino INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    blake3 TEXT NOT NULL,
    sha256 TEXT
) WITHOUT ROWID
"""


@dataclass(frozen=True)
class Cached:
    blake3: str
    sha256: str | None


StatKey = tuple[int, int, int, int, int]


def stat_key(st: os.stat_result) -> StatKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _entry(row: Any) -> tuple[StatKey, Cached]:
    """``(dev, ino, size, mtime_ns, ctime_ns, blake3, sha256)`` as a stat key and digests."""
    dev, ino, size, mtime_ns, ctime_ns, b3, sha = row
    return (dev, ino, size, mtime_ns, ctime_ns), Cached(b3, sha)


def default_location() -> Path | None:
    """Where the cache lives, from the environment; None when it is turned off."""
    given = os.environ.get(ENVIRONMENT)
    if given is not None:
        return None if given.strip().lower() in ("", "off", "0", "no", "false") else Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "provenance" / FILE_NAME


class DigestCache:
    """One run's view of the store: reads as it goes, writes once at ``close()``."""

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        racy_window_ns: int = RACY_WINDOW_NS,
        busy_timeout: float = BUSY_TIMEOUT_S,
    ) -> None:
        self.location = Path(location)
        self.racy_window_ns = racy_window_ns
        self.busy_timeout = busy_timeout
        self.hits = 0
        self.misses = 0
        self.stored = 0
        self._db: sqlite3.Connection | None = None
        self._broken = False
        self._pending: dict[bytes, tuple[StatKey, str, str | None]] = {}
        self._prefetched: dict[bytes, tuple[StatKey, Cached]] = {}
        self._prefixes: list[bytes] = []

    @classmethod
    def from_environment(cls) -> DigestCache | None:
        location = default_location()
        return cls(location) if location is not None else None

    # -- reading -------------------------------------------------------------------------------

    def get(self, path: bytes, st: os.stat_result, *, sha256: bool = True) -> Cached | None:
        """The stored digests of ``path`` if its stat key still matches, else None.

        With ``sha256``, an entry stored without SHA-256 is a miss: the file must be read.
        """
        found = self._prefetched.get(path)
        if found is None and not any(path.startswith(p) for p in self._prefixes):
            found = self._select_one(path)
        if (
            found is not None
            and found[0] == stat_key(st)
            and (found[1].sha256 is not None or not sha256)
        ):
            self.hits += 1
            return found[1]
        self.misses += 1
        return None

    def prefetch(self, directory: bytes) -> None:
        """Load every entry below ``directory`` in one query, for a walk of it."""
        prefix = directory.rstrip(b"/") + b"/"
        rows = self._query(
            "SELECT path, dev, ino, size, mtime_ns, ctime_ns, blake3, sha256 FROM digests "
            "WHERE path >= ? AND path < ?",
            (prefix, prefix[:-1] + b"0"),  # b"0" is the byte after b"/"
        )
        if rows is None:
            return
        for row in rows:
            self._prefetched[row[0]] = _entry(row[1:])
        self._prefixes.append(prefix)

    def _select_one(self, path: bytes) -> tuple[StatKey, Cached] | None:
        rows = self._query(
            "SELECT dev, ino, size, mtime_ns, ctime_ns, blake3, sha256 FROM digests WHERE path = ?",
            (path,),
        )
        return _entry(rows[0]) if rows else None

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
        if self._broken:
            return False
        newest = max(st.st_mtime_ns, st.st_ctime_ns)
        if hashing_began_ns - newest < self.racy_window_ns:
            return False
        self._pending[path] = (stat_key(st), blake3, sha256)
        return True

    def close(self) -> None:
        """Write what this run measured, in one transaction, and let go of the store."""
        try:
            if self._pending and not self._broken:
                db = self._connect()
                if db is not None:
                    rows = [(p, *key, b3, sha) for p, (key, b3, sha) in self._pending.items()]
                    try:
                        with db:
                            db.executemany(
                                "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                rows,
                            )
                        self.stored += len(rows)
                    except sqlite3.Error as err:
                        self._give_up(err)
        finally:
            self._pending.clear()
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- the store -----------------------------------------------------------------------------

    def _query(self, sql: str, params: tuple[object, ...]) -> list[Any] | None:
        db = self._connect()
        if db is None:
            return None
        try:
            return db.execute(sql, params).fetchall()
        except sqlite3.Error as err:
            self._give_up(err)
            return None

    def _connect(self) -> sqlite3.Connection | None:
        if self._broken:
            return None
        if self._db is None:
            try:
                self.location.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.location, timeout=self.busy_timeout)
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=NORMAL")
                    db.execute(_SCHEMA)
                except BaseException:
                    db.close()
                    raise
            except (sqlite3.Error, OSError) as err:
                self._give_up(err)
                return None
            self._db = db
        return self._db

    def _give_up(self, err: Exception) -> None:
        if not self._broken:
            print(
                f"provenance: the digest cache {self.location} cannot be used "
                f"({type(err).__name__}: {err}); hashing without it. Delete the file, or set "
                f"{ENVIRONMENT}=off, to stop this warning.",
                file=sys.stderr,
                flush=True,
            )
        self._broken = True
        self._prefetched.clear()
        self._prefixes.clear()
        self._pending.clear()
