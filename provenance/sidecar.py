"""Writing evidence: canonical bytes, atomic replacement, embedding, keeping earlier records."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.outcome import FAILED, INTERRUPTED, RUNNING, SUCCEEDED

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


def running_record_path(target: Path, token: str) -> Path:
    """Where a run still under way keeps its small record: ``X.manifest.running.<token>.json``."""
    return side_record_path(target, f"{RUNNING}.{token}")


def running_records(target: Path) -> list[Path]:
    """The running records beside ``target`` (a sidecar path), sorted by name."""
    stem = re.escape(target.name.removesuffix(".json"))
    pattern = re.compile(rf"{stem}\.{RUNNING}\.{_TOKEN}\.json")
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    return sorted(target.parent / n for n in names if pattern.fullmatch(n))


def is_live(record: str | os.PathLike[str]) -> bool:
    """Whether the run that wrote this running record still holds it (its process is alive).

    A run keeps an exclusive ``flock`` on its running record for as long as it runs; the kernel
    drops it when the process dies, however it dies (kill -9, the OOM killer).
    """
    try:
        fd = os.open(record, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return False
    try:
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


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace ``path`` with ``data``: a crash leaves the old file or the new one, never half."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = os.stat(target).st_mode & 0o7777
    except OSError:
        mode = _default_mode()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)


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


def read_json_object(path: str | os.PathLike[str]) -> tuple[bytes, dict[str, Any]] | None:
    """The bytes and parsed content of ``path`` when it holds a JSON object, else None."""
    try:
        raw = Path(path).read_bytes()
        document = json.loads(raw)
    except (OSError, ValueError):
        return None
    return (raw, document) if isinstance(document, dict) else None


def embedded_bytes(document: Mapping[str, Any], block: Mapping[str, Any]) -> bytes:
    """``document`` with ``run_provenance`` set, its own key order kept, the block last."""
    merged = {k: v for k, v in document.items() if k != "run_provenance"}
    merged["run_provenance"] = json.loads(canonical_bytes(block))  # sorted like the sidecar
    return _json_bytes(merged, sort_keys=False, allow_nan=True)


@dataclass(frozen=True)
class Placement:
    """Where a sidecar goes, and which earlier record moves aside to make room."""

    path: Path
    keep_previous_at: Path | None = None
    note: str | None = None


def place(target: Path, *, succeeded: bool, status: str, rewrote_output: bool) -> Placement:
    """Decide where a run's sidecar goes without destroying an earlier run's evidence.

    A run that did not succeed never takes over the sidecar of artifacts it left alone: if it
    rewrote no output, the earlier sidecar stays and this record goes beside it as
    ``<artifact>.manifest.<status>.json``; if it rewrote some, it takes the usual path and the
    earlier record moves to ``<artifact>.manifest.previous.json``.
    """
    if succeeded or not target.exists():
        return Placement(target)
    stem = target.name.removesuffix(".json")
    if not rewrote_output:
        beside = target.with_name(f"{stem}.{status}.json")
        return Placement(
            beside,
            note=f"kept the earlier sidecar {target} (this {status} run rewrote none of its "
            f"outputs); this run's record is {beside}",
        )
    previous = target.with_name(f"{stem}.{PREVIOUS}.json")
    return Placement(
        target,
        keep_previous_at=previous,
        note=f"this {status} run rewrote outputs; the earlier sidecar moved to {previous}",
    )


def write_placed(placement: Placement, data: bytes) -> None:
    """Write ``data`` at the placement, first moving the earlier record aside if asked."""
    if placement.keep_previous_at is not None:
        os.replace(placement.path, placement.keep_previous_at)
    atomic_write(placement.path, data)
