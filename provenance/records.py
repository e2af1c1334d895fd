"""Reading the records a user points the ``provenance`` command at, as hostile input.

A record may be truncated, huge, nested without end, hold numbers no writer produces, or name
paths that are FIFOs, devices, symlink loops, or outside the project. This module is the one
boundary: reading gives a ``Record`` that passed the schema or raises ``UnreadableRecord`` with
a message that says which file and why, and ``Record.place`` turns a path the record names into
one that may be touched, or says why not.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.errors import ProvenanceError
from provenance.measure.paths import find_root
from provenance.ranks import parts_of, ranks_folder
from provenance.record.limits import (
    MAX_DECLARED,
    MAX_DEPTH,
    MAX_PATH_BYTES,
    MAX_RECORD_BYTES,
    Refused,
    declared_count,
    depth_over,
    openings,
    refusal,
    size_text,
    strict_loads,
)
from provenance.record.outcome import FAILED, INTERRUPTED, RUNNING, SUCCEEDED
from provenance.record.schema import validate
from provenance.record.sidecar import (
    PREVIOUS,
    is_live,
    is_sidecar_name,
    running_records,
    side_record_path,
    sidecar_path_for,
    slot_entries,
)

# The records a run keeps beside its sidecar (docs/sidecar.md), besides running ones.
SIDE_KINDS = (FAILED, INTERRUPTED, SUCCEEDED, PREVIOUS)


class UnreadableRecord(ProvenanceError):
    """No usable record: the file is missing, not strict JSON, too large or not a sidecar."""


@dataclass(frozen=True)
class Boundary:
    """The folders a command may touch below: nothing outside them unless asked (``anywhere``)."""

    folders: tuple[Path, ...]
    anywhere: bool = False

    @classmethod
    def of(cls, folders: Iterable[str | os.PathLike[str]], *, anywhere: bool = False) -> Boundary:
        found: list[Path] = []
        for folder in folders:
            for form in (os.path.abspath(folder), os.path.realpath(folder)):
                if Path(form) not in found:
                    found.append(Path(form))
        return cls(tuple(found), anywhere)

    def admits(self, path: str) -> bool:
        """Whether an absolute, normalized ``path`` lies in one of the folders (or anywhere)."""
        return self.anywhere or any(
            path == str(f) or path.startswith(str(f).rstrip(os.sep) + os.sep) for f in self.folders
        )

    def widened(self, folders: Iterable[str | os.PathLike[str]]) -> Boundary:
        return Boundary.of([*self.folders, *folders], anywhere=self.anywhere)


@dataclass(frozen=True)
class Place:
    """A path as a record shows it, and where it is on disk if it may be touched."""

    shown: str
    path: Path | None  # symlinks resolved; None when it must not be touched
    refused: str | None = None  # why not
    written: Path | None = None  # the absolute path worked out from the text alone, if usable


OUTSIDE = "outside the project root: not read (verify reads it with --outside-root)"
OUTSIDE_BY_LINK = (
    "outside the project root through a symlink: not read (verify reads it with --outside-root)"
)
# What a running record says of its run: still under way (its process holds the record's
# lock), or lost (the process is gone without writing its final record).
LIVE, LOST = RUNNING, "lost"


@dataclass(frozen=True)
class Record:
    """One run's record: the sidecar document and where its relative paths resolve."""

    source: Path  # the file it was read from
    document: dict[str, Any]
    root: Path | None
    embedded: bool = False  # read from an artifact that embeds the block, not a sidecar

    @property
    def block(self) -> dict[str, Any]:
        block: dict[str, Any] = self.document["run_provenance"]
        return block

    @property
    def fields(self) -> dict[str, Any]:
        """What the script recorded beside the block."""
        return {k: v for k, v in self.document.items() if k not in ("schema", "run_provenance")}

    @property
    def running(self) -> bool:
        """Whether this is the record of a run under way (or lost), not a final one."""
        return bool((self.block.get("outcome") or {}).get("status") == RUNNING)

    @property
    def base(self) -> Path:
        """Where relative paths in the record resolve from: the root, else the record's folder."""
        return self.root if self.root is not None else Path(os.path.abspath(self.source.parent))

    def boundary(self, *, outside_root: bool = False) -> Boundary:
        """What a command reading this record may touch: the project root, unless asked."""
        return Boundary.of([self.base], anywhere=outside_root)

    def place(
        self, shown: Any, boundary: Boundary, real: Callable[[str], str] = os.path.realpath
    ) -> Place:
        """Where a path the record names is, or why it is not to be touched (see ``place_of``)."""
        return place_of(self.base, shown, boundary, real)


def holds_block(record: Record, shown: str) -> bool:
    """Whether the path ``shown`` in ``record`` is the very file its block was read from (an
    embedded copy), rather than another host of a copy of the same block."""
    if not record.embedded:
        return False
    source = os.path.abspath(record.source)
    base = record.root if record.root is not None else Path.cwd()
    if os.path.normpath(os.path.join(base, shown)) == source:
        return True
    # The root found for an embedded block may not be the one the run had (an entrypoint
    # outside it): then a relative path that ends the file's own path names it.
    parts = Path(os.path.normpath(shown)).parts
    return (
        not os.path.isabs(shown)
        and ".." not in parts
        and Path(source).parts[-len(parts) :] == parts
    )


def declared_entries(table: object) -> Iterator[tuple[str, Any]]:
    """``(name, entry)`` for each path a record's inputs or outputs table names; a list gives
    ``name[i]``; a name given no path (null) gives nothing."""
    if not isinstance(table, dict):
        return
    for name, value in table.items():
        if isinstance(value, list):
            for index, entry in enumerate(value):
                yield f"{name}[{index}]", entry
        elif value is not None:
            yield name, value


def place_of(
    base: Path, shown: Any, boundary: Boundary, real: Callable[[str], str] = os.path.realpath
) -> Place:
    """Where a path a record names, relative to ``base``, is, or why it is not to be touched.
    Nothing outside ``boundary`` is touched to find out: the path is checked as written, then
    with its symlinks resolved (by ``real``: ``os.path.realpath``, or a ``RealPaths`` of the
    command's), so a link out of the root is refused too."""
    if not isinstance(shown, str) or not shown:
        return Place(str(shown), None, "malformed path")
    if "\0" in shown:
        return Place(shown, None, "unusable path: it holds a NUL byte")
    try:
        encoded = os.fsencode(shown)
    except UnicodeError:
        return Place(shown, None, "unusable path: it cannot be a file name here")
    if len(encoded) > MAX_PATH_BYTES:
        return Place(shown, None, f"unusable path: over {MAX_PATH_BYTES} bytes")
    written = os.path.normpath(os.path.join(base, shown))
    if not boundary.admits(written):
        return Place(shown, None, OUTSIDE, Path(written))
    resolved = real(written)  # never raises on a loop: stat-ing it says ELOOP
    if not boundary.admits(resolved):
        return Place(shown, None, OUTSIDE_BY_LINK, Path(written))
    return Place(shown, Path(resolved), None, Path(written))


class RealPaths:
    """``os.path.realpath`` for the many paths one command resolves: each folder is resolved
    once, and a path in it costs one ``lstat`` of its last part, not one of every part. To be
    used while the command runs, not kept: a folder made a link since is not seen."""

    def __init__(self) -> None:
        self._folders: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        folder, _, name = path.rpartition("/")
        if not folder or path.startswith("//") or os.path.normpath(path) != path:
            return os.path.realpath(path)  # relative, the root itself, or not normalized
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = os.path.realpath(folder)
        joined = real.rstrip("/") + "/" + name
        try:
            if stat.S_ISLNK(os.lstat(joined).st_mode):
                return os.path.realpath(path)
        except OSError:
            pass  # as realpath takes a part it cannot stat: as it is
        return joined


def run_state(running_record: Path) -> str:
    return LIVE if is_live(running_record) else LOST


def rank_states(record: Record) -> list[tuple[int, str]]:
    """The ranks a job's record says were running, each with its state now: live while its
    process still holds its presence in the hand-off folder, lost once nothing holds it (the
    launcher killed it, or the rank that would have rewritten the record, before they ended)."""
    launch = record.block.get("launch")
    ranks = launch.get("ranks") if isinstance(launch, dict) else None
    if record.embedded or not isinstance(ranks, list):
        return []
    presences = [p for p in parts_of(ranks_folder(sidecar_target(record.source)))]
    states = []
    for entry in ranks:
        rank = entry.get("rank") if isinstance(entry, dict) else None
        if type(rank) is not int or entry.get("status") != RUNNING:
            continue
        mine = [p for p in presences if p.name.startswith(f"rank{rank}.") and p.suffix == ".live"]
        states.append((rank, LIVE if any(is_live(p) for p in mine) else LOST))
    return states


def job_state(record: Record) -> str:
    """Whether a running record is still under way: a job's while any of its ranks runs."""
    if "launch" in record.block:
        return LIVE if any(state == LIVE for _, state in rank_states(record)) else LOST
    return run_state(record.source)


def running_beside(record: Record) -> list[tuple[Path, str]]:
    """The running records of the same artifact beside ``record``, each with its state."""
    if record.embedded:
        return []
    found = running_records(sidecar_target(record.source))
    return [(path, run_state(path)) for path in found if path != record.source]


# The side records of a run that wrote none of its outputs while the artifact had a sidecar.
ATTEMPT_KINDS = (SUCCEEDED, FAILED, INTERRUPTED)


@dataclass(frozen=True)
class Attempt:
    """Another run's record kept beside a record (``X.manifest.<status>.json``): a run that
    wrote none of the artifact's outputs, so did not take over its sidecar."""

    source: Path
    kind: str  # what its name says: succeeded, failed or interrupted
    status: str | None  # what its outcome says; None when it cannot be read
    exit_code: int | None
    newer: bool | None  # than the record it is beside; None: nothing tells
    evidence: str  # how that is known, or why it cannot be read
    unreadable: bool = False


def attempts(record: Record) -> list[Attempt]:
    """The other runs' records beside ``record`` (``X.manifest.<status>.json``), newest first:
    the newer ones, then those nothing dates, then the older ones; within each, by the time
    the file was last written, then by name.

    Newer is judged on the bytes first: such a run measured the outputs it did not write, so
    one that saw other bytes than ``record`` describes ran before ``record``'s run wrote them.
    Only where the bytes agree (or there are none to compare) do the files' times decide, and
    only both together: an attempt whose mtime and ctime are both earlier than the record's is
    older. A side record that cannot be read is named as such, never read further."""
    if record.embedded:
        return []
    target = sidecar_target(record.source)
    found = []
    for kind in ATTEMPT_KINDS:
        path = side_record_path(target, kind)
        if path == record.source or not os.path.lexists(path):
            continue
        found.append(_attempt(record, path, kind))
    order = {True: 0, None: 1, False: 2}
    found.sort(key=lambda a: str(a[0].source))
    found.sort(key=lambda a: (order[a[0].newer], -a[1]))
    return [a for a, _ in found]


def _attempt(record: Record, path: Path, kind: str) -> tuple[Attempt, int]:
    try:
        st = os.lstat(path)
        other = load(path, record.root)
    except (UnreadableRecord, OSError) as err:
        why = str(err) if isinstance(err, UnreadableRecord) else f"{path}: {_reason(err)}"
        return Attempt(path, kind, None, None, None, why, unreadable=True), 0
    outcome = other.block["outcome"]
    saw = _saw_same_bytes(record.block, other.block)
    times = _written_before(path, st, record.source)
    if saw is False:
        newer, evidence = False, "it found other bytes than this record describes"
    elif times is True:
        newer, evidence = False, "both its mtime and ctime are earlier than this record's"
    elif saw is True:
        newer, evidence = True, "it found the bytes this record describes, and was written later"
    elif times is False:
        newer, evidence = True, "written later, by its times alone (no bytes to compare)"
    else:
        newer, evidence = None, "neither its bytes nor its times tell"
    return Attempt(path, kind, outcome["status"], outcome["exit_code"], newer, evidence), (
        st.st_mtime_ns
    )


def _saw_same_bytes(mine: dict[str, Any], theirs: dict[str, Any]) -> bool | None:
    """Whether another run found the outputs ``mine`` describes as they are recorded there
    (False: other bytes), judged on the outputs it did not write; None: none to compare."""
    same = None
    for name, slot in (theirs.get("outputs") or {}).items():
        ours = (mine.get("outputs") or {}).get(name)
        for their, our in zip(slot_entries(slot), slot_entries(ours), strict=False):
            if their.get("written_by_run") or not (their.get("blake3") and our.get("blake3")):
                continue
            if their.get("path") != our.get("path"):
                continue
            if their["blake3"] != our["blake3"]:
                return False
            same = True
    return same


def _written_before(path: Path, st: os.stat_result, source: Path) -> bool | None:
    """Whether ``path`` was written before ``source`` by both its mtime and its ctime (True),
    after by both (False), or the two disagree or cannot be read (None)."""
    try:
        mine = os.stat(source)
    except OSError:
        return None
    before = (st.st_mtime_ns < mine.st_mtime_ns, st.st_ctime_ns < mine.st_ctime_ns)
    after = (st.st_mtime_ns > mine.st_mtime_ns, st.st_ctime_ns > mine.st_ctime_ns)
    return True if all(before) else False if all(after) else None


def sidecar_target(source: Path) -> Path:
    """The sidecar ``X.manifest.json`` that a record at ``source`` is, or is kept beside."""
    stem = source.name.removesuffix(".json")
    for _ in range(2):  # X.manifest.failed, X.manifest.running.<token>
        if stem.endswith(".manifest"):
            break
        stem = stem.rpartition(".")[0]
    target = source.with_name(stem + ".json")
    beside = {side_record_path(target, kind) for kind in SIDE_KINDS}
    if source == target or source in beside or source in running_records(target):
        return target
    return source


def locate(given: str | os.PathLike[str]) -> Path:
    """The record for an artifact or a sidecar path: ``X.manifest.json`` for an artifact ``X``,
    else the record of a run of it still under way (or lost)."""
    path = Path(given)
    if is_sidecar_name(path.name):
        return path
    sidecar = sidecar_path_for(path)
    if os.path.lexists(sidecar):
        return sidecar
    running = running_records(sidecar)
    if running:
        return ([r for r in running if is_live(r)] or running)[-1]
    if not path.is_file():
        return sidecar
    return path  # an artifact with no sidecar beside it may embed the block itself


def load(
    given: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
    *,
    vouched: Callable[[Path, os.stat_result], bool] | None = None,
    roots: Roots | None = None,
    read: tuple[bytes, os.stat_result] | None = None,
) -> Record:
    """Read and check the record of ``given``; relative paths resolve from ``root``, else from
    the project root of the record (see ``root_for``).

    ``vouched(source, st)``: whether a store that keeps what records passed says this one,
    with the stat taken after reading it, passed the schema check unchanged (the lineage
    index); the check is then not made again. The strict JSON reader always is.

    ``roots``: the ``Roots`` of a command reading many records, which looks at each folder
    once. ``read``: the record's bytes and their stat, as ``read_bytes`` gave them, if the
    caller read them already (it is then those bytes that are checked, not the file again)."""
    source = locate(given)
    if not is_sidecar_name(Path(given).name) and not os.path.lexists(source):
        raise UnreadableRecord(
            f"no record for {given}: neither it nor {sidecar_path_for(Path(given)).name} exists"
        )
    embedded = not is_sidecar_name(source.name)
    try:
        document, st = _read_json(source, read=read)
    except UnreadableRecord as err:
        if not embedded:
            raise
        # An artifact that is not a JSON document holding a record has no record: that is
        # the finding, not how its bytes failed to be JSON.
        raise UnreadableRecord(_no_record(given, source)) from err
    if embedded:
        block = document.get("run_provenance") if isinstance(document, dict) else None
        if not isinstance(block, dict):
            raise UnreadableRecord(_no_record(given, source))
        document = {"schema": "provenance.manifest/v1", "run_provenance": block}
    if declared_count(document) > MAX_DECLARED:
        raise UnreadableRecord(f"{source}: declares over {MAX_DECLARED:,} paths: not a sidecar")
    if embedded or vouched is None or not vouched(source, st):
        try:
            validate(document)
        except ProvenanceError as err:
            raise UnreadableRecord(f"{source}: {err}") from None
    entrypoint = document["run_provenance"]["entrypoint"]
    base = (
        Path(os.path.abspath(root))
        if root is not None
        else (roots or Roots()).root_for(source, entrypoint["path"], entrypoint.get("sha256"))
    )
    return Record(source, document, base, embedded)


def _no_record(given: str | os.PathLike[str], source: Path) -> str:
    return (
        f"no record for {given} (looked for {sidecar_path_for(source).name} and an embedded "
        "run_provenance block)"
    )


# How many folders above a record's own the root it was written against is looked for, when no
# ``.git`` or ``pyproject.toml`` marks one; and the largest entrypoint hashed to tell.
MAX_ROOT_LEVELS = 32
MAX_ENTRYPOINT_BYTES = 64 * 1024**2


def written_against(source: Path, shown: str, sha256: Any) -> Path | None:
    """The folder a record at ``source`` was written against, found from its own paths: the
    nearest of the record's folder and its ancestors (at most ``MAX_ROOT_LEVELS`` up, never
    ``/`` itself) where the entrypoint ``shown`` (relative to it, or absolute and under it,
    also once its symlinks are resolved) is a regular file with the recorded ``sha256``.
    None when there is none: a record names no root, and one is only taken on that evidence."""
    if not isinstance(shown, str) or not isinstance(sha256, str) or "\0" in shown:
        return None
    folder = os.path.dirname(os.path.abspath(source))
    for _ in range(MAX_ROOT_LEVELS):
        parent = os.path.dirname(folder)
        if parent == folder:
            return None  # "/": a root that admits everything is no root
        if place_of(Path(folder), shown, Boundary.of([folder])).path is not None:
            entrypoint = os.path.normpath(os.path.join(folder, shown))
            if _sha256_of(entrypoint) == sha256:
                return Path(folder)
        folder = parent
    return None


def _sha256_of(path: str) -> str | None:
    """The SHA-256 of a regular file of at most ``MAX_ENTRYPOINT_BYTES``, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError):
        return None
    with os.fdopen(fd, "rb") as handle:
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_ENTRYPOINT_BYTES:
                return None
            digest = hashlib.sha256()
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        except OSError:
            return None
    return digest.hexdigest()


def root_for(source: Path, shown: str, sha256: Any = None) -> Path | None:
    """The project root the relative paths of the record at ``source``, whose entrypoint is
    ``shown`` (with that ``sha256``), are relative to. A record does not say it (that would tie
    its bytes to one checkout), so: the project above the record, else the one above the
    working folder, whichever holds the record's entrypoint; where neither does, the project
    above the record, else the folder the record was written against, found from its
    entrypoint (``written_against``), else the project above the working folder."""
    return Roots().root_for(source, shown, sha256)


class Roots:
    """``root_for`` for the many records of one command: each folder, and each entrypoint
    below each candidate root, looked at once."""

    def __init__(self) -> None:
        self._folders: dict[str, Path | None] = {}
        self._holds: dict[tuple[Path, str], bool] = {}
        self._against: dict[tuple[str, str, Any], Path | None] = {}

    def root_for(self, source: Path, shown: str, sha256: Any = None) -> Path | None:
        parent = os.path.dirname(os.path.abspath(source))
        candidates = [find_root(parent, self._folders), find_root(os.getcwd(), self._folders)]
        if os.path.isabs(shown):
            return candidates[0] or self._written_against(source, shown, sha256)
        for candidate in candidates:
            if candidate is not None and self._holds_entrypoint(candidate, shown):
                return candidate
        # Neither holds it: the project above the record, else the folder the record's own
        # paths say it was written against, before a project only the working folder is in.
        return candidates[0] or self._written_against(source, shown, sha256) or candidates[1]

    def _written_against(self, source: Path, shown: str, sha256: Any) -> Path | None:
        key = (os.path.dirname(os.path.abspath(source)), shown, sha256)
        if key not in self._against:
            self._against[key] = written_against(source, shown, sha256)
        return self._against[key]

    def _holds_entrypoint(self, candidate: Path, shown: str) -> bool:
        key = (candidate, shown)
        if key not in self._holds:
            entrypoint = os.path.normpath(os.path.join(candidate, shown))
            self._holds[key] = Boundary.of([candidate]).admits(entrypoint) and os.path.isfile(
                entrypoint
            )
        return self._holds[key]


def read_json(path: Path, *, kind: str = "sidecar", limit: int = MAX_RECORD_BYTES) -> Any:
    """The strict JSON in ``path``, read as hostile input (see the module's docstring); ``kind``
    names what the file should be in messages, ``limit`` its largest size in bytes."""
    return _read_json(path, kind=kind, limit=limit)[0]


def _read_json(
    path: Path,
    *,
    kind: str = "sidecar",
    limit: int = MAX_RECORD_BYTES,
    read: tuple[bytes, os.stat_result] | None = None,
) -> tuple[Any, os.stat_result]:
    """``read_json``, and the file's stat taken once it was read; ``read``: the file's bytes
    and that stat, from ``read_bytes``, if they were read already."""
    data, after = read if read is not None else read_bytes(path, kind=kind, limit=limit)
    why = refusal(data, kind, limit)
    if why is not None:
        raise UnreadableRecord(f"{path}: {why}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UnreadableRecord(f"{path}: not JSON: not UTF-8 at byte {err.start}") from None
    try:
        document = strict_loads(text)
    except Refused as err:
        raise UnreadableRecord(f"{path}: not strict JSON: {err}") from None
    except RecursionError:
        raise UnreadableRecord(f"{path}: nested too deeply to be a {kind}") from None
    except ValueError as err:
        raise UnreadableRecord(f"{path}: not JSON: {err}") from None
    if openings(data) > MAX_DEPTH and depth_over(document, MAX_DEPTH):
        raise UnreadableRecord(f"{path}: nested deeper than {MAX_DEPTH} levels: not a {kind}")
    return document, after


def read_bytes(
    path: str | os.PathLike[str], *, kind: str = "sidecar", limit: int = MAX_RECORD_BYTES
) -> tuple[bytes, os.stat_result]:
    """The bytes of a regular file of at most ``limit`` bytes (``kind`` names what it should
    be in messages), and its stat taken once they were read; ``UnreadableRecord`` if not."""
    try:
        # Non-blocking: a FIFO named as a sidecar must not hang the command waiting for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnreadableRecord(f"{path}: not a regular file")
            # Its size says so without reading it; the read is bounded for one that grows.
            data = b"" if st.st_size > limit else _read_bounded(fd, st.st_size, limit)
            after = os.fstat(fd)  # a write while it was read changes its ctime
        finally:
            os.close(fd)
    except FileNotFoundError:
        raise UnreadableRecord(f"{path}: no such file") from None
    except OSError as err:
        if err.errno == errno.ENXIO:  # a socket, which opens as nothing: as a FIFO is said
            raise UnreadableRecord(f"{path}: not a regular file") from None
        raise UnreadableRecord(f"{path}: cannot be read: {_reason(err)}") from None
    except ValueError as err:  # a NUL byte in the name
        raise UnreadableRecord(f"{path}: cannot be read: {_reason(err)}") from None
    if st.st_size > limit:
        raise UnreadableRecord(f"{path}: over {size_text(limit)}: not a {kind}")
    return data, after


def _read_bounded(fd: int, size: int, limit: int) -> bytes:
    """The bytes of ``fd`` up to its end, at most ``limit + 1`` (one more than a reader takes,
    to tell one over it): one read when the file is still the ``size`` fstat gave."""
    chunks = []
    left = limit + 1
    want = size + 1
    while left > 0:
        chunk = os.read(fd, min(want, left))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
        want = 1 << 20  # it grew, or the read was short: on in chunks
    return b"".join(chunks)


def _reason(err: Exception) -> str:
    return (err.strerror if isinstance(err, OSError) else None) or str(err)
