"""Writing evidence: canonical bytes, atomic replacement, embedding, keeping earlier records."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from provenance.record.limits import MAX_RECORD_BYTES
from provenance.record.outcome import FAILED, INTERRUPTED, RUNNING, SUCCEEDED

MANIFEST_SCHEMA = "provenance.manifest/v1"
SIDECAR_SUFFIX = ".manifest.json"
PREVIOUS = "previous"
# Set by a caller (``provenance replay --run``) that wants to learn which records a run wrote:
# each final record's absolute path is appended to that file, one per line.
RECORD_LOG = "PROVENANCE_RECORD_LOG"
_TOKEN = "[0-9a-f]{8}"
# <artifact>.manifest.json, and the records place() keeps beside it.
_SIDECAR_NAME = re.compile(
    rf"\.manifest(\.({SUCCEEDED}|{FAILED}|{INTERRUPTED}|{PREVIOUS}|{RUNNING}\.{_TOKEN}))?\.json$"
)

_umask_lock = threading.Lock()
_umask: int | None = None


def _json_bytes(document: Mapping[str, Any], *, sort_keys: bool, allow_nan: bool) -> bytes:
    options: dict[str, Any] = {"sort_keys": sort_keys, "indent": 2, "allow_nan": allow_nan}
    try:
        return (json.dumps(document, ensure_ascii=False, **options) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        # A file name that is not valid UTF-8 decodes to lone surrogates; escaped as \udcXX
        # they stay valid JSON and map back to the same bytes through os.fsencode.
        return (json.dumps(document, ensure_ascii=True, **options) + "\n").encode("ascii")


def canonical_bytes(document: Mapping[str, Any]) -> bytes:
    """Sorted keys, two-space indentation, UTF-8, strict JSON (no NaN), trailing newline."""
    return _json_bytes(document, sort_keys=True, allow_nan=False)


def sidecar_path_for(artifact: str | os.PathLike[str]) -> Path:
    """``model.json`` -> ``model.json.manifest.json``."""
    path = Path(artifact)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def is_sidecar_name(name: str) -> bool:
    """Whether a file name is one this package gives sidecars."""
    return _SIDECAR_NAME.search(name) is not None


def side_record_path(target: Path, kind: str) -> Path:
    """``X.manifest.json`` -> ``X.manifest.<kind>.json`` (previous, failed, interrupted, ...)."""
    return target.with_name(f"{target.name.removesuffix('.json')}.{kind}.json")


def listing_path(target: Path, digest: str) -> Path:
    """Where the listing of a folder whose digest is ``digest`` is kept beside the sidecar
    ``X.manifest.json``: ``X.manifest.files.<first 16 hex digits>``. Named by its content, so
    a later run's listing never replaces one an earlier record names."""
    return target.with_name(f"{target.name.removesuffix('.json')}.files.{digest[:16]}")


def running_record_path(target: Path, token: str) -> Path:
    """Where a run still under way keeps its small record: ``X.manifest.running.<token>.json``."""
    return side_record_path(target, f"{RUNNING}.{token}")


def slot_entries(slot: Any) -> list[dict[str, Any]]:
    """The entries one name of a record's inputs or outputs holds: one entry, or a list of
    them. What a hostile record holds instead gives none."""
    if isinstance(slot, dict):
        return [slot]
    if isinstance(slot, list):
        return [entry for entry in slot if isinstance(entry, dict)]
    return []


def table_entries(table: Any) -> Iterator[dict[str, Any]]:
    """Every entry of a record's inputs or outputs table, name by name."""
    if isinstance(table, dict):
        for slot in table.values():
            yield from slot_entries(slot)


def running_records(target: Path) -> list[Path]:
    """The running records beside ``target`` (a sidecar path), sorted by name."""
    stem = re.escape(target.name.removesuffix(".json"))
    pattern = re.compile(rf"{stem}\.{RUNNING}\.{_TOKEN}\.json")
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    return sorted(
        target.parent / n for n in names if pattern.fullmatch(n) and _regular(target.parent / n)
    )


def lost_runs(sidecar: Path) -> frozenset[Path]:
    """The running records beside ``sidecar`` whose processes are gone."""
    return frozenset(other for other in running_records(sidecar) if not is_live(other))


def record_outputs(record: Path, *, written_only: bool = False) -> set[str]:
    """The output paths a record of ours names (only those its run wrote, if asked); none for
    what is not one."""
    document = read_own_record(record)
    block = document.get("run_provenance") if document is not None else None
    if not isinstance(block, dict):
        return set()
    return {
        e["path"]
        for e in table_entries(block.get("outputs"))
        if isinstance(e.get("path"), str) and (not written_only or e.get("written_by_run"))
    }


def superseded_runs(sidecar: Path, lost_before: frozenset[Path], rewrote: set[str]) -> list[Path]:
    """The lost runs' records beside ``sidecar`` that a record just written there accounts for.

    Only a writer that started after such a run was gone (``lost_before``: the records it found
    lost when it started) and rewrote every output that run declared (``rewrote``, as records
    show paths) leaves no byte of the lost run on disk; any other lost run may have left bytes
    the sidecar does not describe, and its record stays to say so.
    """
    found = []
    for other in running_records(sidecar):
        if other not in lost_before or is_live(other):
            continue
        theirs = record_outputs(other)
        if theirs and theirs <= rewrote:
            found.append(other)
    return found


def remove_lost(records: Iterable[Path]) -> None:
    """Remove these running records, each only if its process is gone."""
    for other in records:
        if not is_live(other):
            with contextlib.suppress(OSError):
                os.unlink(other)


def _regular(path: Path) -> bool:
    # Only a regular file is a running record: a FIFO, device, folder or link of that name is
    # never opened.
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def is_live(record: str | os.PathLike[str]) -> bool:
    """Whether the run that wrote this running record still holds it (its process is alive).

    A run keeps an exclusive ``flock`` on its running record for as long as it runs; the kernel
    drops it when the process dies, however it dies (kill -9, the OOM killer).
    """
    try:
        fd = os.open(record, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False  # no locks on this filesystem: nothing can be said to hold it
    finally:
        os.close(fd)
    return False


def _default_mode() -> int:
    global _umask
    with _umask_lock:
        if _umask is None:
            _umask = os.umask(0o022)
            os.umask(_umask)
    return 0o666 & ~_umask


# A temporary file nobody holds a lock on and older than this was left by a writer that died.
_STALE_TMP_SECONDS = 60
_NAME_MAX = 255
_TMP_SUFFIX = ".tmp"


def _tmp_prefix(name: str) -> str:
    # ".<name>.<8 random>.tmp" must fit in a file name even when <name> nearly fills one.
    room = _NAME_MAX - 2 - 8 - len(_TMP_SUFFIX)
    return "." + os.fsdecode(os.fsencode(name)[:room]) + "."


def _write_locked_tmp(target: Path, data: bytes, mode: int) -> tuple[int, str]:
    """A fsynced temporary copy of ``data`` beside ``target``, flock-ed while its fd is open."""
    fd, tmp = tempfile.mkstemp(
        prefix=_tmp_prefix(target.name), suffix=_TMP_SUFFIX, dir=target.parent
    )
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
        os.fchmod(fd, mode)
    except BaseException:
        _discard(fd, tmp)
        raise
    return fd, tmp


def _discard(fd: int, tmp: str) -> None:
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(tmp)


def _put_in_place(target: Path, data: bytes, mode: int) -> int:
    """Write ``data`` to a locked temporary file, rename it to ``target``, sync the folder;
    return the still-open (and still locked) descriptor."""
    fd, tmp = _write_locked_tmp(target, data, mode)
    try:
        os.replace(tmp, target)
    except BaseException:
        _discard(fd, tmp)
        raise
    _fsync_dir(target.parent)
    return fd


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    follow_symlinks: bool = True,
    mode: int | None = None,
) -> None:
    """Replace ``path`` with ``data``: a crash leaves the old file or the new one, never half.

    The file keeps the mode of the one it replaces, else the umask's; ``mode`` sets it instead
    (``0o600`` for a private key), and the data is never readable more widely on the way.

    A symlink is written through, as ``open()`` would (its target is replaced, the link stays),
    unless ``follow_symlinks`` is false: records are never written through a link someone put
    where a record goes. Temporary files that a killed writer left beside ``path`` are removed.
    """
    target = Path(path)
    if follow_symlinks and target.is_symlink():
        target = Path(os.path.realpath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        try:
            mode = os.stat(target).st_mode & 0o7777
        except OSError:
            mode = _default_mode()
    fd = _put_in_place(target, data, mode)
    os.close(fd)
    remove_stale_tmp(target)


def remove_stale_tmp(target: Path) -> None:
    """Remove the temporary files a writer of ``target`` left when it was killed mid-write.

    A live writer holds a lock on its temporary file from the moment it creates it, so a file
    that is both old and unlocked has no writer left.
    """
    prefix = _tmp_prefix(target.name)
    try:
        names = [n for n in os.listdir(target.parent) if n.startswith(prefix)]
    except OSError:
        return
    now = time.time()
    for name in names:
        if not name.endswith(_TMP_SUFFIX) or len(name) != len(prefix) + 8 + len(_TMP_SUFFIX):
            continue
        leftover = target.parent / name
        try:
            fd = os.open(leftover, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or now - st.st_mtime < _STALE_TMP_SECONDS:
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(leftover)
        except OSError:
            continue  # held by a live writer, or already gone
        finally:
            os.close(fd)


# How long a writer waits for another writer of the same folder (one stopped with Ctrl-Z, say)
# before it writes without the lock, saying so.
LOCK_WAIT_S = 10.0


@contextlib.contextmanager
def folder_lock(
    folder: Path, *, give_up: Callable[[], bool] = lambda: False, wait_s: float = LOCK_WAIT_S
) -> Iterator[bool]:
    """Serialize the record writers of one folder (an exclusive ``flock`` on the folder).

    Yields whether the lock is held. A writer never hangs on it: after ``wait_s``, or as soon as
    ``give_up()`` says so (a signal asked the process to end), it goes on without the lock, as
    it does where the filesystem has no locks.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        yield False
        return
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
                break
            except BlockingIOError:
                if give_up() or time.monotonic() >= deadline:
                    locked = False
                    break
                time.sleep(0.01)
            except OSError:
                locked = False
                break
        yield locked
    finally:
        os.close(fd)  # closing drops the lock


def read_own_record(path: Path) -> dict[str, Any] | None:
    """The JSON object at a path where this package keeps records (a sidecar, a running
    record), read within the size a record may have; None when there is none."""
    found = read_json_object(path, limit=MAX_RECORD_BYTES)
    return found[1] if found is not None else None


def record_status(path: Path) -> str | None:
    """The outcome status of the record at ``path`` (ours to read: it sits at our target), or
    None when there is none, or it is not one of this package's records."""
    document = read_own_record(path)
    if document is None:
        return None
    block = document.get("run_provenance")
    outcome = block.get("outcome") if isinstance(block, dict) else None
    status = outcome.get("status") if isinstance(outcome, dict) else None
    return status if isinstance(status, str) else None


def keep_last_good(target: Path) -> Path | None:
    """Before a run that did not succeed takes ``target``'s place, keep a successful record
    there as ``X.manifest.previous.json`` (a copy: ``target`` stays until it is replaced).

    Call with the folder lock held. Returns where the copy went, if one was made.
    """
    if record_status(target) != SUCCEEDED:
        return None  # nothing to keep, or the last good record is already kept aside
    previous = side_record_path(target, PREVIOUS)
    try:
        data = target.read_bytes()
    except OSError:
        return None
    atomic_write(previous, data, follow_symlinks=False)
    return previous


class RunningRecord:
    """The small record a run keeps while it runs, locked so that its liveness can be told."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def create(cls, target: Path, data: bytes) -> RunningRecord:
        """Write it beside ``target``, already locked when it appears under its name."""
        target.parent.mkdir(parents=True, exist_ok=True)
        path = running_record_path(target, secrets.token_hex(4))
        fd = _put_in_place(path, data, _default_mode())
        return cls(path, fd)

    def remove(self) -> None:
        """The final record is written: this one has served. Other runs' records beside it are
        theirs: see ``superseded_runs`` for when a run may remove a lost one's."""
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        self.release()

    def release(self) -> None:
        """Let go of the lock (the record stays, and reads as lost)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is; not every platform allows this.
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_json_object(
    path: str | os.PathLike[str], limit: int | None = None
) -> tuple[bytes, dict[str, Any]] | None:
    """The bytes and parsed content of ``path`` when it is a regular file (of at most ``limit``
    bytes) holding a JSON object, else None. Never blocks on a FIFO."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (limit is not None and st.st_size > limit):
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            raw = handle.read()
        document = json.loads(raw)
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        os.close(fd)
    return (raw, document) if isinstance(document, dict) else None


def embedded_bytes(document: Mapping[str, Any], block: Mapping[str, Any]) -> bytes:
    """``document`` with ``run_provenance`` set, its own key order kept, the block last."""
    merged = {k: v for k, v in document.items() if k != "run_provenance"}
    merged["run_provenance"] = json.loads(canonical_bytes(block))  # sorted like the sidecar
    return _json_bytes(merged, sort_keys=False, allow_nan=True)
