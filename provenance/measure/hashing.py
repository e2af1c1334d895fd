"""Digests of declared paths: BLAKE3 for every file, SHA-256 up to a size threshold, trees.

Three paths, by size:

- a small file (up to 1 MiB) is read whole in one call and hashed on this thread;
- a file up to ``sha256_max_bytes`` is read once in 4 MiB chunks, SHA-256 updating on a helper
  thread while BLAKE3 updates on this one, so the pass costs what SHA-256 alone costs;
- a larger file gets BLAKE3 alone, multi-threaded over a memory map. A file that shrinks while
  mapped raises SIGBUS in whoever reads the map, so on Linux the map is read in a forked child:
  if the file is truncated under it the child dies, and the entry says so. Elsewhere the file is
  read in chunks by a multi-threaded BLAKE3 instead.

The stat before and after hashing must agree, or the digest is withheld and the entry carries an
error: nothing is claimed that was not measured. A ``DigestCache`` spares re-reading files whose
stat key has not changed since they were last hashed.
"""

from __future__ import annotations

import contextlib
import errno
import faulthandler
import hashlib
import mmap
import os
import select
import signal
import stat
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TextIO

import blake3

from provenance.record.limits import MAX_LISTED, MAX_LISTING_BYTES
from provenance.stores.digest_cache import DigestCache, stat_key

TREE_FORMAT = "provenance.tree/v1"
SMALL_FILE_MAX = 1024 * 1024
_CHUNK = 4 * 1024 * 1024
_FORK_MMAP = sys.platform == "linux" and hasattr(os, "fork")
# Non-blocking, which regular files ignore: something swapped in for a file between a stat and
# the open (a FIFO) cannot hang the run waiting for a writer.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NONBLOCK", 0)
_MAX_FD = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536
_THREADS = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


@dataclass(frozen=True)
class HashPolicy:
    """Which digests a file gets: BLAKE3 always, SHA-256 only up to ``sha256_max_bytes``.

    The default, 256 MiB, bounds what SHA-256 adds to one file's hashing to about 0.2 s at the
    1.5 GB/s measured here, where BLAKE3 runs about 9 times faster (see docs/performance.md).
    """

    sha256_max_bytes: int = 256 * 1024 * 1024

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
    # What the digest was taken of, where asked for and within the listing's bounds: the
    # folder's listing (docs/commands/verify.md), whose BLAKE3 is the digest itself.
    listing: bytes | None = None


class _Changed(Exception):
    """The file did not hold still while it was read."""


def describe_error(err: OSError) -> str:
    """A stable, path-free description of an OS error for a sidecar entry."""
    return f"{type(err).__name__}: {err.strerror or err}"


def hash_file(
    path: str | os.PathLike[str],
    policy: HashPolicy,
    cache: DigestCache | None = None,
    *,
    sha256: bool = True,
    progress: Progress | None = None,
) -> FileDigest:
    """Digest one regular file; report, never raise, when it cannot be read or will not hold still.

    ``sha256=False`` asks for BLAKE3 alone (what a directory digest needs).
    """
    key = os.fsencode(os.path.abspath(path))
    return _hash_file(path, key, policy, cache, sha256, progress, lookup=True)


def _hash_file(
    path: str | bytes | os.PathLike[str],
    key: bytes,
    policy: HashPolicy,
    cache: DigestCache | None,
    sha256: bool,
    progress: Progress | None,
    *,
    lookup: bool,
) -> FileDigest:
    began = time.time_ns()
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as err:
        return FileDigest(0, None, None, describe_error(err))
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        size = before.st_size
        want_sha = sha256 and size <= policy.sha256_max_bytes
        # A small file reads faster than the store answers; only a walk (which asks a folder
        # at a time) or a large file is worth a lookup.
        if cache is not None and lookup and size > SMALL_FILE_MAX:
            hit = cache.get(key, before, sha256=want_sha)
            if hit is not None:
                if progress is not None:
                    progress.advance(size)
                return FileDigest(size, hit.blake3, hit.sha256 if want_sha else None)
        if size <= SMALL_FILE_MAX:
            b3, sha = _hash_small(fd, size, want_sha)
        elif want_sha:
            b3, sha = _hash_read_both(fd, size)
        elif _FORK_MMAP:
            b3, sha = _hash_mapped_in_child(fd, size), None
        else:
            b3, sha = _hash_read_threaded(fd, size), None
        if progress is not None:
            progress.advance(size)
        after = os.fstat(fd)
        if stat_key(after) != stat_key(before):
            raise _Changed(
                f"changed while hashing: its size or times moved ({size} bytes before, "
                f"{after.st_size} after)"
            )
    except _Changed as err:
        return FileDigest(size, None, None, str(err))
    except OSError as err:
        return FileDigest(0, None, None, describe_error(err))
    finally:
        os.close(fd)
    if cache is not None and size > SMALL_FILE_MAX:
        cache.put(key, before, b3, sha, hashing_began_ns=began)
    return FileDigest(size, b3, sha)


def _read_exactly(fd: int, size: int) -> bytes:
    data = os.read(fd, size + 1)  # one byte more: a file that grew says so
    while 0 < len(data) < size:
        more = os.read(fd, size + 1 - len(data))
        if not more:
            break
        data += more
    if len(data) != size:
        raise _Changed(f"changed while hashing: {size} bytes expected, {len(data)} read")
    return data


def _hash_small(fd: int, size: int, want_sha: bool) -> tuple[str, str | None]:
    data = _read_exactly(fd, size)
    return blake3.blake3(data).hexdigest(), hashlib.sha256(data).hexdigest() if want_sha else None


def _hash_small_seen(path: bytes, seen: os.stat_result) -> tuple[str | None, str | None]:
    """BLAKE3 of a small file a walk has just stat-ed: one open, one read, one fstat.

    The walk's stat stands in for the stat before reading, so the check that the file held
    still covers the time from the walk to the end of the read.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as err:
        return None, describe_error(err)
    try:
        data = _read_exactly(fd, seen.st_size)
        after = os.fstat(fd)
    except _Changed as err:
        return None, str(err)
    except OSError as err:
        return None, describe_error(err)
    finally:
        os.close(fd)
    if (after.st_ino, after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
        seen.st_ino,
        seen.st_size,
        seen.st_mtime_ns,
        seen.st_ctime_ns,
    ):
        return None, f"changed while hashing: {seen.st_size} bytes seen, {after.st_size} after"
    return blake3.blake3(data).hexdigest(), None


_helper: Any = None


def _sha256_helper() -> Any:
    """One helper thread for SHA-256, started the first time a file needs it."""
    global _helper
    if _helper is None:
        from concurrent.futures import ThreadPoolExecutor

        _helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="provenance-sha256")
    return _helper


def _hash_read_both(fd: int, size: int) -> tuple[str, str]:
    """One read pass feeding both digests, SHA-256 on a helper thread alongside BLAKE3.

    Two buffers: while the helper digests one chunk, this thread reads the next into the other
    and runs BLAKE3 over it, so reading costs no time of its own.
    """
    b3, sha = blake3.blake3(), hashlib.sha256()
    views = [memoryview(bytearray(_CHUNK)), memoryview(bytearray(_CHUNK))]
    helper = _sha256_helper()
    pending = None
    read = turn = 0
    while True:
        n = os.readv(fd, [views[turn]])
        if pending is not None:
            pending.result()  # the helper is done with the other buffer
            pending = None
        if not n:
            break
        chunk = views[turn][:n]
        pending = helper.submit(sha.update, chunk)
        b3.update(chunk)
        read += n
        turn ^= 1
    if read != size:
        raise _Changed(f"changed while hashing: {size} bytes expected, {read} read")
    return b3.hexdigest(), sha.hexdigest()


def _hash_read_threaded(fd: int, size: int) -> str:
    b3 = blake3.blake3(max_threads=_THREADS)
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    read = 0
    while n := os.readv(fd, [buffer]):
        b3.update(view[:n])
        read += n
    if read != size:
        raise _Changed(f"changed while hashing: {size} bytes expected, {read} read")
    return b3.hexdigest()


def _hash_mapped_in_child(fd: int, size: int) -> str:
    """Multi-threaded BLAKE3 over a memory map, read by a forked child that may die of SIGBUS.

    The parent never starts BLAKE3's own threads, so the child starts them afresh.
    """
    readable, writable = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "fork() in a threaded process"
        pid = os.fork()
    if pid == 0:  # the child: hash, report, and leave without running any Python cleanup
        status = 1
        try:
            faulthandler.disable()  # a SIGBUS here is an answer, not a crash to report
            os.close(readable)
            # Hold nothing but the file and the pipe: an inherited lock (a running record's)
            # must not outlive the parent in an orphaned child.
            low, high = sorted((fd, writable))
            os.closerange(3, low)
            os.closerange(low + 1, high)
            os.closerange(high + 1, _MAX_FD)
            with mmap.mmap(fd, size, prot=mmap.PROT_READ) as mapped:
                if hasattr(mapped, "madvise"):
                    mapped.madvise(mmap.MADV_SEQUENTIAL)
                digest = blake3.blake3(max_threads=_THREADS)
                digest.update(mapped)
                os.write(writable, digest.hexdigest().encode())
            status = 0
        finally:
            os._exit(status)
    os.close(writable)
    try:
        answer, status = _answer_of(pid, readable)
    except BaseException:
        # Interrupted (a signal stopped the hashing): the child's work is no longer wanted.
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        os.close(readable)
        os.waitpid(pid, 0)
        raise
    os.close(readable)
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGBUS:
        raise _Changed("changed while hashing: the file shrank under its memory map (SIGBUS)")
    if status != 0 or len(answer) != 64:
        raise OSError(f"the hashing child process failed (wait status {status})")
    return answer.decode()


def _answer_of(pid: int, readable: int) -> tuple[bytes, int]:
    """The child's 64-character digest and its wait status, once it has ended.

    The end of the pipe is not waited for: a process another thread forked meanwhile holds a
    copy of its write end, and may live on. The child's own end is what is watched.
    """
    answer = b""
    while True:
        ready, _, _ = select.select([readable], [], [], 0.2)
        if ready:
            chunk = os.read(readable, 64 - len(answer)) if len(answer) < 64 else b""
            answer += chunk
            if chunk:
                continue
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            if len(answer) < 64:
                os.set_blocking(readable, False)
                with contextlib.suppress(BlockingIOError):
                    answer += os.read(readable, 64 - len(answer))
            return answer, status


class Progress:
    """A progress bar on stderr for long hashing, shown only on a terminal and after a second:
    bytes hashed, out of the total where the caller knows it (with the time left), files done
    and the path being hashed."""

    PATH_WIDTH = 40  # characters of the current path shown: its end, which names the file

    def __init__(
        self, description: str, *, stream: TextIO | None = None, delay: float = 1.0
    ) -> None:
        self._bar: Any = None
        self._files = 0
        self._within = self._label = ""
        stream = sys.stderr if stream is None else stream
        if stream.isatty():
            with contextlib.suppress(ImportError):
                from tqdm import tqdm

                self._bar = tqdm(
                    desc=description,
                    total=None,
                    unit="B",
                    unit_scale=True,
                    delay=delay,
                    leave=False,
                    file=stream,
                )

    def expect(self, n: int) -> None:
        """``n`` more bytes to hash, as a record says: the total grows, and with it an ETA."""
        if self._bar is not None and n > 0:
            self._bar.total = (self._bar.total or 0) + n

    def begin(self, shown: str) -> None:
        """A declared path is being hashed: the files of a folder read as below it."""
        self._within = shown
        self._now(shown)

    def file(self, relpath: str) -> None:
        """A file of the folder begun is being hashed."""
        self._now(f"{self._within}/{relpath}" if self._within else relpath)

    def advance(self, n: int) -> None:
        """One more file hashed, of ``n`` bytes."""
        if self._bar is not None:
            self._files += 1
            self._postfix()
            self._bar.update(n)

    def _now(self, path: str) -> None:
        if self._bar is not None:
            label = "".join(c if c.isprintable() else "?" for c in path)
            if len(label) > self.PATH_WIDTH:
                label = "…" + label[-(self.PATH_WIDTH - 1) :]
            self._label = label
            self._postfix()

    def _postfix(self) -> None:
        files = f"{self._files:,} file" + ("" if self._files == 1 else "s")
        self._bar.set_postfix_str(f"{files}, {self._label}", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# -- directories -------------------------------------------------------------------------------


class TreeEntry(NamedTuple):
    """One entry below a directory: its path relative to that directory, as bytes."""

    relpath: bytes
    path: bytes
    kind: str  # "f" file, "d" directory, "l" symlink, "o" anything else
    stat: os.stat_result | None
    error: str | None = None


def walk_tree(top: str | os.PathLike[str]) -> Iterator[TreeEntry]:
    """Every entry below ``top`` (not ``top`` itself), in bytewise order of relative path.

    The walk is iterative and never follows symlinks, so neither depth nor a symlink loop can
    stop it, and only the listings along the current path are held in memory. Each directory's
    listing is sorted with its own entry under its name and its contents under ``name/``, which
    puts them where a global sort of relative paths would.
    """
    stack = [iter(_listing(os.fsencode(top), b""))]
    while stack:
        for key, entry in stack[-1]:
            if key is _DESCEND:
                stack.append(iter(_listing(entry.path, entry.relpath + b"/")))
                break
            yield entry
        else:
            stack.pop()


_DESCEND = b""  # marks the item that opens a directory's contents


def _listing(directory: bytes, prefix: bytes) -> list[tuple[bytes, TreeEntry]]:
    """A directory's entries as ``(sort key, entry)``, each subdirectory's contents marked by a
    ``(_DESCEND, entry)`` item placed under the key ``name/``."""
    try:
        with os.scandir(directory) as it:
            found = list(it)
    except OSError as err:
        relpath = prefix.rstrip(b"/")
        return [(relpath, TreeEntry(relpath, directory, "d", None, describe_error(err)))]
    keyed = []
    for dirent in found:
        rel = prefix + dirent.name
        try:
            st = dirent.stat(follow_symlinks=False)
        except OSError as err:
            keyed.append((rel, TreeEntry(rel, dirent.path, "o", None, describe_error(err))))
            continue
        kind = _KINDS.get(stat.S_IFMT(st.st_mode), "o")
        entry = TreeEntry(rel, dirent.path, kind, st)
        keyed.append((rel, entry))
        if kind == "d":
            keyed.append((rel + b"/", entry))
    keyed.sort(key=_first)
    return [(_DESCEND if key[-1:] == b"/" else key, entry) for key, entry in keyed]


def _first(item: tuple[bytes, TreeEntry]) -> bytes:
    return item[0]


_KINDS = {stat.S_IFREG: "f", stat.S_IFDIR: "d", stat.S_IFLNK: "l"}


def hash_tree(
    top: str | os.PathLike[str],
    policy: HashPolicy,
    cache: DigestCache | None = None,
    progress: Progress | None = None,
    observe: Callable[[TreeEntry], None] | None = None,
    *,
    keep_listing: bool = False,
) -> TreeDigest:
    """Deterministic digest of a directory: entries sorted by path, symlinks recorded, not followed.

    Each entry contributes ``kind NUL relpath NUL payload NUL`` to one BLAKE3 stream, where the
    payload is ``size:blake3`` for a file, the link text for a symlink and empty otherwise. The
    stream is fed as the walk goes, so memory does not grow with the number of files; with
    ``keep_listing`` the stream is kept too, up to ``MAX_LISTED`` entries and
    ``MAX_LISTING_BYTES``, as the folder's listing.
    """
    began = time.time_ns()  # one moment for the whole walk: earlier is the cautious side
    top_key = os.fsencode(os.path.abspath(top)) + b"/"
    cached = cache.blake3_of if cache is not None else None
    tree = blake3.blake3()
    tree.update(TREE_FORMAT.encode() + b"\0")
    records: list[bytes] = []  # fed to the digest in batches: one call per record costs more
    errors: list[str] = []
    file_count = size_bytes = 0
    kept: list[bytes] | None = [TREE_FORMAT.encode() + b"\0"] if keep_listing else None
    kept_entries = kept_bytes = 0
    for entry in walk_tree(top):
        if observe is not None:
            observe(entry)
        relpath, path, kind, st, error = entry
        if error is not None:
            errors.append(f"{_shown(relpath) or '.'}: {error}")
            continue
        if kind == "f":
            assert st is not None  # only an entry with an error has no stat
            size = st.st_size
            if progress is not None:
                progress.file(_shown(relpath))
            # The walk's lstat is the file's stat: a cache hit needs no open at all.
            b3 = cached(top_key + relpath, st) if cached is not None else None
            if b3 is None:
                if size <= SMALL_FILE_MAX:
                    b3, error = _hash_small_seen(path, st)
                    if b3 is not None and cache is not None:
                        cache.put(top_key + relpath, st, b3, None, hashing_began_ns=began)
                else:
                    digest = _hash_file(
                        path, top_key + relpath, policy, cache, False, None, lookup=False
                    )
                    b3, size, error = digest.blake3, digest.size_bytes, digest.error
                if error is not None:
                    errors.append(f"{_shown(relpath)}: {error}")
                    continue
            records.append(b"f\0%s\0%d:%s\0" % (relpath, size, b3.encode()))  # type: ignore[union-attr]
            file_count += 1
            size_bytes += size
            if progress is not None:
                progress.advance(size)
        elif kind == "l":
            try:
                target = os.readlink(path)
            except OSError as err:
                errors.append(f"{_shown(relpath)}: {describe_error(err)}")
                continue
            records.append(b"l\0%s\0%s\0" % (relpath, target))
        else:
            records.append(b"%s\0%s\0\0" % (kind.encode(), relpath))
        if len(records) >= 4096:
            kept, kept_entries, kept_bytes = _keep(kept, records, kept_entries, kept_bytes)
            tree.update(b"".join(records))
            records.clear()
    kept, kept_entries, kept_bytes = _keep(kept, records, kept_entries, kept_bytes)
    tree.update(b"".join(records))
    if errors:
        return TreeDigest(None, file_count, size_bytes, sorted(errors))
    listing = b"".join(kept) if kept is not None else None
    return TreeDigest(tree.hexdigest(), file_count, size_bytes, listing=listing)


def _keep(
    kept: list[bytes] | None, records: list[bytes], entries: int, size: int
) -> tuple[list[bytes] | None, int, int]:
    """The listing so far with ``records`` added, or None once it is past its bounds."""
    if kept is None:
        return None, entries, size
    entries += len(records)
    size += sum(map(len, records))
    if entries > MAX_LISTED or size > MAX_LISTING_BYTES:
        return None, entries, size
    kept.append(b"".join(records))
    return kept, entries, size


def _shown(relpath: bytes) -> str:
    return relpath.decode("utf-8", "surrogateescape")


def describe_path(
    path: str,
    shown_as: str,
    policy: HashPolicy,
    cache: DigestCache | None = None,
    progress: Progress | None = None,
    observe: Callable[[TreeEntry], None] | None = None,
    listings: dict[str, bytes] | None = None,
) -> dict[str, Any]:
    """The sidecar entry for one declared path, as it is on disk now. For a directory,
    ``observe`` is shown every entry of the walk that hashes it, and with ``listings`` its
    listing is kept there, by its digest, and the entry says whether it was (``listed``)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {"path": shown_as, "exists": False}
    except NotADirectoryError:
        return {"path": shown_as, "exists": False}
    except OSError as err:
        return {"path": shown_as, "exists": True, "kind": "other", "error": describe_error(err)}
    if progress is not None:
        progress.begin(shown_as)
    if stat.S_ISREG(st.st_mode):
        digest = hash_file(path, policy, cache, progress=progress)
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
        tree = hash_tree(path, policy, cache, progress, observe, keep_listing=listings is not None)
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
        elif listings is not None and tree.blake3 is not None:
            entry["listed"] = tree.listing is not None
            if tree.listing is not None:
                listings[tree.blake3] = tree.listing
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
