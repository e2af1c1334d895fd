"""The SQLite file the digest cache and the lineage index each keep: WAL, shared, never trusted.

Both are a store a run may use and may lose: SQLite in WAL mode, shared by concurrent runs,
made again from nothing when its layout is not the current one, and turned off for the rest of
the run with one warning on stderr when anything is wrong with it (a corrupt file, a lock held
too long, a read-only folder). What they keep differs; how they keep it is here, once.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import sqlite3

RACY_WINDOW_NS = 2_000_000_000  # FAT's 2 s mtime granularity; covers modest NFS clock skew too
BUSY_TIMEOUT_S = 2.0


@contextlib.contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """A write transaction taken up front (BEGIN IMMEDIATE), committed or rolled back."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


class SqliteStore:
    """One run's connection to a store, opened on first use; subclasses say what it holds."""

    SCHEMA_VERSION: ClassVar[int]
    TABLES: ClassVar[tuple[str, ...]]  # dropped, in this order, when the layout is old
    SCHEMA: ClassVar[tuple[str, ...]]
    NAME: ClassVar[str]  # as the warning names it: "the digest cache"
    WITHOUT_IT: ClassVar[str]  # what the run does instead: "hashing without it"
    TURN_OFF: ClassVar[str]  # the environment variable that turns it off

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        racy_window_ns: int = RACY_WINDOW_NS,
        busy_timeout: float = BUSY_TIMEOUT_S,
    ) -> None:
        self.location = Path(location)
        # A file whose mtime or ctime lies this close to the moment it was looked at is racy:
        # a write in the same timestamp tick could leave its stat unchanged, so it is never
        # stored (git treats racily clean index entries the same way).
        self.racy_window_ns = racy_window_ns
        self.busy_timeout = busy_timeout
        self.stored = 0  # rows written by this run
        self.broken = False
        self._db: sqlite3.Connection | None = None

    def _drop_pending(self) -> None:
        """Forget what waits to be written or was read: the store is given up."""

    def _close_store(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _query(self, sql: str, params: tuple[object, ...]) -> list[Any] | None:
        import sqlite3

        db = self._connect()
        if db is None:
            return None
        try:
            return db.execute(sql, params).fetchall()
        except sqlite3.Error as err:
            self._give_up(err)
            return None

    def _connect(self) -> sqlite3.Connection | None:
        import sqlite3  # deferred: most runs never need it, and every run pays for imports

        if self.broken:
            return None
        if self._db is None:
            try:
                self.location.parent.mkdir(parents=True, exist_ok=True)
                # Autocommit: transactions are begun explicitly, IMMEDIATE when they will write,
                # so that two runs starting at once wait for each other instead of one failing.
                db = sqlite3.connect(self.location, timeout=self.busy_timeout, isolation_level=None)
                try:
                    self._use_wal(db)
                    db.execute("PRAGMA synchronous=NORMAL")
                    no_checkpoint = getattr(sqlite3, "SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE", None)
                    if no_checkpoint is not None:  # Python 3.12+: closing need not checkpoint
                        db.setconfig(no_checkpoint, True)  # type: ignore[attr-defined,unused-ignore]
                    if db.execute("PRAGMA user_version").fetchone()[0] != self.SCHEMA_VERSION:
                        with immediate(db):  # new, or an older layout: a store can start again
                            if (
                                db.execute("PRAGMA user_version").fetchone()[0]
                                != self.SCHEMA_VERSION
                            ):
                                for table in self.TABLES:
                                    db.execute(f"DROP TABLE IF EXISTS {table}")
                                for statement in self.SCHEMA:
                                    db.execute(statement)
                                db.execute(f"PRAGMA user_version = {self.SCHEMA_VERSION}")
                except BaseException:
                    db.close()
                    raise
            except (sqlite3.Error, OSError) as err:
                self._give_up(err)
                return None
            self._db = db
        return self._db

    def _use_wal(self, db: sqlite3.Connection) -> None:
        """Switch to WAL. SQLite does not wait on a lock for this, so two runs creating the
        store at once would see 'database is locked': retry until the busy timeout instead."""
        import sqlite3

        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _give_up(self, err: Exception) -> None:
        if not self.broken:
            # The advice names what is there: a folder in the store's place is no file to delete.
            what = "Move the folder away" if os.path.isdir(self.location) else "Delete the file"
            print(
                f"provenance: {self.NAME} {self.location} cannot be used "
                f"({type(err).__name__}: {err}); {self.WITHOUT_IT}. {what}, or set "
                f"{self.TURN_OFF}=off, to stop this warning.",
                file=sys.stderr,
                flush=True,
            )
        self.broken = True
        self._drop_pending()
