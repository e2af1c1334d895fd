"""The folders below the search folders that hold records, each with its records' stat keys.

``lineage`` with its index must look at every record to be never stale: one listing a folder
and one stat a record, nothing parsed. A folder's regular records come as one ``entries``
value (each name, NUL, its stat key, in name order), so a folder none of whose records changed
is one comparison with what the index holds. Records that are links, or could not be stat-ed,
are named apart and looked at one by one, and so are the records kept beside a sidecar
(``X.manifest.failed.json``, ``X.manifest.running.<token>.json``), which ``runs`` lists.

On a large tree the stats are shared with one forked process: a stat is a system call, and a
second core makes them in half the time. The walk is the full scan's (``os.walk``, top down,
folders and names sorted, ``SKIPPED_FOLDERS`` and linked folders not entered, unreadable
folders passed over), and its folders come back in that order however the work was shared.
"""

from __future__ import annotations

import marshal
import os
import re
import signal
import struct
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from provenance.record.sidecar import SIDECAR_SUFFIX
from provenance.stores.digest_cache import STAT_KEY

SKIPPED_FOLDERS = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "site-packages",
    }
)
KEY_BYTES = STAT_KEY.size
# Folders found, breadth first, before the rest of the walk is shared with a second process:
# fewer, and one process does it all (a small tree gains nothing from a fork).
SPLIT_AT = 8
_FS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()  # os.fsencode, inlined
_OPEN = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
_BELOW = _OPEN | getattr(os, "O_NOFOLLOW", 0)  # a folder the walk enters: never through a link


@dataclass(frozen=True)
class Folder:
    """A walked folder that holds records."""

    order: tuple[str, ...]  # its path below its top, by part: the walk's order
    shown: str  # as the walk names it (``str(Path(folder))``)
    real: str  # its real path
    entries: bytes  # its regular records: name, NUL, stat key, in name order
    others: tuple[str, ...]  # its records that are links, or could not be stat-ed, by name
    # The records kept beside its sidecars (``X.manifest.<kind>.json``: running, failed, ...),
    # by name: never stored in the index (a running one's state is its process's, not its bytes').
    sides: tuple[str, ...] = ()

    @property
    def prefix(self) -> str:
        """What a record's name is joined to: the path the full scan shows it by."""
        return _prefix(self.shown)

    @property
    def key(self) -> bytes:
        """Its real path as the index keys it: bytes, with no trailing slash."""
        return folder_key(self.real)


def _prefix(shown: str) -> str:
    """What a name in the folder shown as ``shown`` is joined to, as ``Path(shown) / name``."""
    return "" if shown == "." else shown.rstrip("/") + "/"


def folder_key(real: str) -> bytes:
    return real.rstrip("/").encode(*_FS)


def parse_entries(entries: bytes, *, checked: bool = True) -> dict[bytes, bytes]:
    """``{name: stat key}`` of an ``entries`` value, in its order; ValueError if malformed
    (``checked``; a walk's own, made by ``_folder``, need not be)."""
    if checked and _ENTRIES.fullmatch(entries) is None:
        raise ValueError("an entry is empty or ends early")
    return dict(_ENTRY.findall(entries))  # in C: a folder of a hundred records is one call


# A name (no NUL), NUL, a stat key (any bytes); entries, one after another.
_ENTRY = re.compile(b"([^\\0]+)\\0(.{%d})" % KEY_BYTES, re.DOTALL)
_ENTRIES = re.compile(b"(?:[^\\0]+\\0.{%d})*" % KEY_BYTES, re.DOTALL)


def join_entries(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """The ``entries`` value of ``(name, stat key)`` pairs, put in the walk's name order."""
    pairs = sorted(pairs, key=lambda pair: os.fsdecode(pair[0]))
    return b"".join(name + b"\0" + key for name, key in pairs)


def scan(top: str | os.PathLike[str], meanwhile: Callable[[], None] | None = None) -> list[Folder]:
    """The folders below ``top`` (itself included) that hold records, in the walk's order.

    ``meanwhile``: the caller's own work, done by this process while a forked one walks (then
    the forked one walks all of what is left), else before walking."""
    shown = str(Path(top))
    try:
        fd = os.open(shown, _OPEN)
    except OSError:
        if meanwhile is not None:
            meanwhile()
        return []  # no folder there: os.walk yields nothing either
    first = _Pending((), shown, os.path.realpath(shown), fd)
    found: list[Folder] = []
    level = [first]
    while level and len(level) < SPLIT_AT:  # breadth first, until there is work to share
        below: list[_Pending] = []
        for pending in level:
            below.extend(_list(pending, found))
        level = below
    if level:
        found.extend(_shared(level, meanwhile))
    elif meanwhile is not None:
        meanwhile()
    found.sort(key=lambda folder: folder.order)
    return found


@dataclass(frozen=True)
class _Pending:
    order: tuple[str, ...]
    shown: str
    real: str
    fd: int | None = None  # open already (the top), else opened by name below its parent


def _list(pending: _Pending, found: list[Folder]) -> list[_Pending]:
    """Add ``pending``'s folder to ``found`` if it holds records; return its subfolders."""
    fd = pending.fd
    if fd is None:
        try:
            fd = os.open(pending.shown, _BELOW)
        except OSError:
            return []  # unreadable, gone, or turned into a link since it was listed
    try:
        with os.scandir(fd) as listing:
            records = []
            folders = []
            sides = []
            for entry in listing:
                name = entry.name
                try:
                    is_folder = entry.is_dir()  # through a link, as os.walk sorts them
                except OSError:
                    is_folder = False
                if is_folder:
                    if name not in SKIPPED_FOLDERS and not entry.is_symlink():
                        folders.append(name)
                elif name.endswith(SIDECAR_SUFFIX):
                    records.append((name, entry))
                elif ".manifest." in name and name.endswith(".json"):
                    sides.append(name)
            if records or sides:
                found.append(_folder(pending, records, sorted(sides)))
    except OSError:
        return []
    finally:
        os.close(fd)
    folders.sort()
    prefix = _prefix(pending.shown)
    real = pending.real.rstrip("/") + "/"
    return [_Pending((*pending.order, name), prefix + name, real + name) for name in folders]


def _folder(
    pending: _Pending, records: list[tuple[str, os.DirEntry[str]]], sides: list[str]
) -> Folder:
    records.sort(key=lambda pair: pair[0])
    pack = STAT_KEY.pack  # stat_key, inlined: this loop runs once per record of the tree
    parts = []
    others = []
    for name, entry in records:
        try:
            if entry.is_symlink():
                raise OSError
            st = entry.stat(follow_symlinks=False)  # fstatat on the listed folder: no path walk
        except OSError:
            others.append(name)
            continue
        key = pack(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        parts.append(name.encode(*_FS) + b"\0" + key)
    return Folder(
        pending.order, pending.shown, pending.real, b"".join(parts), tuple(others), tuple(sides)
    )


class _Orphaned(Exception):
    """The command that forked this walker is gone: nobody will read what it finds."""


def _walk(pending: list[_Pending], parent: int | None = None) -> list[Folder]:
    """Every folder below ``pending`` (themselves included) that holds records; ``parent``:
    the command's process, for a forked walker to stop with it."""
    found: list[Folder] = []
    stack = list(reversed(pending))
    while stack:
        if parent is not None and os.getppid() != parent:
            raise _Orphaned  # killed by a signal it had no say in (SIGTERM): stop walking too
        stack.extend(reversed(_list(stack.pop(), found)))
    return found


def _shared(pending: list[_Pending], meanwhile: Callable[[], None] | None = None) -> list[Folder]:
    """``_walk`` of ``pending``, shared with a forked process where that is safe and there is a
    second core: the subtrees wait in a queue (a pipe of their numbers) and each process takes
    the next one whenever it is free, this one after ``meanwhile``; so however long
    ``meanwhile`` takes, neither process waits on the other for long. By this process alone
    otherwise, after ``meanwhile``."""
    if not _may_fork():
        if meanwhile is not None:
            meanwhile()
        return _walk(pending)
    groups = _groups(pending)
    pipes: list[int] = []
    try:
        queue, fill = os.pipe()
        pipes.append(queue)
        os.write(fill, b"".join(_ITEM.pack(i) for i in range(len(groups))))  # one page at most
        os.close(fill)  # at the end of the queue, a read returns nothing: every subtree taken
        read, write = os.pipe()
        pipes += [read, write]
    except OSError:
        for fd in pipes:
            os.close(fd)
        if meanwhile is not None:
            meanwhile()
        return _walk(pending)
    parent = os.getpid()
    try:
        child = os.fork()
    except OSError:
        for fd in pipes:
            os.close(fd)
        if meanwhile is not None:
            meanwhile()
        return _walk(pending)
    if child == 0:  # pragma: no cover -- the forked process; its result is what the tests see
        status = 1
        try:
            os.close(read)
            taken, found = _take(queue, groups, parent)
            _send(write, taken, found)
            status = 0
        finally:
            os._exit(status)  # never the parent's cleanup, buffers or handlers
    os.close(write)
    try:
        if meanwhile is not None:
            meanwhile()
        ours, found = _take(queue, groups)
        data = _read_all(read)
    except BaseException:  # Ctrl-C, or anything: no walker is left walking for nobody
        _stop(child)  # not reaped yet: its pid is still its own
        raise
    finally:
        os.close(read)
        os.close(queue)
    received = _receive(data, child)
    theirs, more = received if received is not None else (set(), [])
    found += more
    for i, group in enumerate(groups):  # any the forked process did not say it walked
        if i not in ours and i not in theirs:
            found += _walk(group)
    return found


_ITEM = struct.Struct("<I")
_GROUPS = 1024  # queued at most: a page of the pipe, which a pipe always holds


def _groups(pending: list[_Pending]) -> list[list[_Pending]]:
    """``pending`` in at most ``_GROUPS`` runs of neighbours, each a unit of the queue."""
    size = -(-len(pending) // _GROUPS)
    return [pending[i : i + size] for i in range(0, len(pending), size)]


def _take(
    queue: int, groups: list[list[_Pending]], parent: int | None = None
) -> tuple[set[int], list[Folder]]:
    """Walk the groups taken from ``queue`` until it is empty: their numbers and what was
    found. ``parent``: the command's process, for a forked walker to stop with it."""
    taken: set[int] = set()
    found: list[Folder] = []
    while True:
        item = os.read(queue, _ITEM.size)
        if len(item) != _ITEM.size:
            return taken, found  # the end of the queue (a short read: the end, to be safe)
        (i,) = _ITEM.unpack(item)
        if i >= len(groups):
            return taken, found
        taken.add(i)
        found += _walk(groups[i], parent)


def _stop(child: int) -> None:
    try:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    except (ProcessLookupError, ChildProcessError):
        pass  # gone, and reaped, already


def _may_fork() -> bool:
    if not hasattr(os, "fork") or threading.active_count() > 1:
        return False  # a fork of a process with threads can inherit a lock held mid-use
    try:
        return len(os.sched_getaffinity(0)) > 1
    except (AttributeError, OSError):
        return (os.cpu_count() or 1) > 1


def _send(fd: int, taken: set[int], found: list[Folder]) -> None:
    rows = [(f.order, f.shown, f.real, f.entries, f.others, f.sides) for f in found]
    data = marshal.dumps((sorted(taken), rows))
    view = memoryview(struct.pack("<Q", len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]
    os.close(fd)


def _read_all(fd: int) -> bytes:
    """All the forked process wrote, up to its end; nothing if the pipe failed."""
    chunks = []
    try:
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    except OSError:
        return b""
    return b"".join(chunks)


def _receive(data: bytes, child: int) -> tuple[set[int], list[Folder]] | None:
    """The groups the forked process walked and what it found there, once it has ended, or
    None if it did not say it all (what it took is then walked here)."""
    try:
        _, status = os.waitpid(child, 0)
    except ChildProcessError:  # reaped by the kernel (SIGCHLD ignored): its answer's length says
        status = 0
    if status != 0 or len(data) < 8 or struct.unpack_from("<Q", data)[0] != len(data) - 8:
        return None
    try:
        taken, rows = marshal.loads(data[8:])
        return {int(i) for i in taken}, [Folder(*row) for row in rows]
    except (ValueError, TypeError, EOFError):
        return None
