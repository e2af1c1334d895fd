"""Digests of declared paths: BLAKE3 for every file, SHA-256 up to a size threshold, trees."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import blake3

TREE_FORMAT = "provenance.tree/v1"
_CHUNK = 4 * 1024 * 1024
# Below this size a single-threaded BLAKE3 beats spinning up its thread pool.
_THREADED_MIN = 8 * 1024 * 1024


@dataclass(frozen=True)
class HashPolicy:
    """Which digests a file gets: BLAKE3 always, SHA-256 only up to ``sha256_max_bytes``."""

    sha256_max_bytes: int = 64 * 1024 * 1024

    def as_record(self) -> dict[str, Any]:
        return {
            "algorithms": ["blake3", "sha256"],
            "sha256_max_bytes": self.sha256_max_bytes,
            "directory_digest": TREE_FORMAT,
        }


@dataclass(frozen=True)
class FileDigest:
    size_bytes: int
    blake3: str | None
    sha256: str | None
    error: str | None = None


@dataclass
class TreeDigest:
    blake3: str | None
    file_count: int
    size_bytes: int
    errors: list[str] = field(default_factory=list)


def describe_error(err: OSError) -> str:
    """A stable, path-free description of an OS error for a sidecar entry."""
    return f"{type(err).__name__}: {err.strerror or err}"


def hash_file(path: str | os.PathLike[str], policy: HashPolicy) -> FileDigest:
    """Digest one regular file in a single read pass; report, never raise, on read errors."""
    try:
        with open(path, "rb", buffering=0) as handle:
            size = os.fstat(handle.fileno()).st_size
            want_sha = size <= policy.sha256_max_bytes
            b3 = blake3.blake3(max_threads=blake3.blake3.AUTO if size >= _THREADED_MIN else 1)
            sha = hashlib.sha256() if want_sha else None
            buffer = bytearray(min(_CHUNK, max(size, 1)))
            view = memoryview(buffer)
            read = 0
            while n := handle.readinto(buffer):
                chunk = view[:n]
                b3.update(chunk)
                if sha is not None:
                    sha.update(chunk)
                read += n
    except OSError as err:
        return FileDigest(0, None, None, describe_error(err))
    if read != size:
        return FileDigest(
            size, None, None, f"changed while hashing: {size} bytes expected, {read} read"
        )
    return FileDigest(size, b3.hexdigest(), sha.hexdigest() if sha is not None else None)


@dataclass(frozen=True)
class TreeEntry:
    """One entry below a directory: its path relative to that directory, as bytes."""

    relpath: bytes
    path: str
    kind: str  # "f" file, "d" directory, "l" symlink, "o" anything else
    stat: os.stat_result | None
    error: str | None = None


def walk_tree(top: str | os.PathLike[str]) -> Iterator[TreeEntry]:
    """Every entry below ``top`` (not ``top`` itself), iteratively, never following symlinks."""
    stack: list[tuple[str, bytes]] = [(os.fspath(top), b"")]
    while stack:
        directory, prefix = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except OSError as err:
            yield TreeEntry(prefix, directory, "d", None, describe_error(err))
            continue
        for entry in entries:
            rel = prefix + os.fsencode(entry.name)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as err:
                yield TreeEntry(rel, entry.path, "o", None, describe_error(err))
                continue
            kind = _kind(st.st_mode)
            yield TreeEntry(rel, entry.path, kind, st)
            if kind == "d":
                stack.append((entry.path, rel + b"/"))


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "f"
    if stat.S_ISDIR(mode):
        return "d"
    if stat.S_ISLNK(mode):
        return "l"
    return "o"


def hash_tree(top: str | os.PathLike[str], policy: HashPolicy) -> TreeDigest:
    """Deterministic digest of a directory: entries sorted by path, symlinks recorded, not followed.

    Each entry contributes ``kind NUL relpath NUL payload NUL`` to one BLAKE3 stream, where the
    payload is ``size:blake3`` for a file, the link text for a symlink and empty otherwise.
    """
    records: list[tuple[bytes, bytes]] = []
    errors: list[str] = []
    file_count = size_bytes = 0
    for entry in walk_tree(top):
        name = entry.relpath.decode("utf-8", "surrogateescape")
        if entry.error is not None:
            errors.append(f"{name or '.'}: {entry.error}")
            continue
        payload = b""
        if entry.kind == "f":
            digest = hash_file(entry.path, policy)
            if digest.error is not None:
                errors.append(f"{name}: {digest.error}")
                continue
            payload = f"{digest.size_bytes}:{digest.blake3}".encode()
            file_count += 1
            size_bytes += digest.size_bytes
        elif entry.kind == "l":
            payload = os.fsencode(os.readlink(entry.path))
        records.append(
            (entry.relpath, entry.kind.encode() + b"\0" + entry.relpath + b"\0" + payload + b"\0")
        )
    if errors:
        return TreeDigest(None, file_count, size_bytes, sorted(errors))
    tree = blake3.blake3()
    tree.update(TREE_FORMAT.encode() + b"\0")
    for _, record in sorted(records):
        tree.update(record)
    return TreeDigest(tree.hexdigest(), file_count, size_bytes)


def describe_path(path: str, shown_as: str, policy: HashPolicy) -> dict[str, Any]:
    """The sidecar entry for one declared path, as it is on disk now."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {"path": shown_as, "exists": False}
    except NotADirectoryError:
        return {"path": shown_as, "exists": False}
    except OSError as err:
        return {"path": shown_as, "exists": True, "kind": "other", "error": describe_error(err)}
    if stat.S_ISREG(st.st_mode):
        digest = hash_file(path, policy)
        entry: dict[str, Any] = {
            "path": shown_as,
            "exists": True,
            "kind": "file",
            "size_bytes": digest.size_bytes,
            "blake3": digest.blake3,
            "sha256": digest.sha256,
        }
        if digest.error is not None:
            entry["error"] = digest.error
        return entry
    if stat.S_ISDIR(st.st_mode):
        tree = hash_tree(path, policy)
        entry = {
            "path": shown_as,
            "exists": True,
            "kind": "directory",
            "blake3": tree.blake3,
            "file_count": tree.file_count,
            "size_bytes": tree.size_bytes,
        }
        if tree.errors:
            entry["errors"] = tree.errors
        return entry
    # FIFOs, sockets and devices are never opened: reading one could block forever.
    return {"path": shown_as, "exists": True, "kind": "other"}


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a (small) file, for code identity; raises OSError as open() does."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
