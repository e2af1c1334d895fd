"""Distributed launches: which rank this process is, and the hand-off that leaves one record.

Every rank of a job runs the same recorded ``main``. Each writes its own part (its whole record,
outcome decided) atomically into ``X.manifest.ranks/`` beside the record; the rank that sees the
job settled, or one rank that waits a bounded time for the rest, assembles the one record under
the folder lock. See docs/adr/0003-distributed-launches.md for the protocol and its bounds.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.record.limits import MAX_PART_BYTES, OverLimit, fit
from provenance.record.outcome import FAILED, INTERRUPTED, RUNNING, SUCCEEDED
from provenance.record.sidecar import (
    atomic_write,
    canonical_bytes,
    folder_lock,
    is_live,
    keep_last_good,
    read_json_object,
    record_status,
    remove_lost,
    running_records,
    side_record_path,
    slot_entries,
    superseded_runs,
)

# How long the waiting rank waits for the others, in seconds (tests lower it).
WAIT_ENVIRONMENT = "PROVENANCE_RANK_WAIT_S"
DEFAULT_WAIT_S = 60.0
_POLL_S = 0.05
HANDOFF_SCHEMA = "provenance.rank/v1"
RANKS_SUFFIX = ".ranks"
# Statuses a rank has in the record besides the outcome statuses: it ended without reporting
# (its process is gone), or it left no trace at all before the wait ended.
LOST, MISSING = "lost", "missing"
_MAX_PART = MAX_PART_BYTES
_MAX_NAME = 255  # a presence holds the name of its rank's running record
# Every rank's waiting and the record grow with the world size: past this, a size is taken for
# a mistake (a stale variable, WORLD_SIZE=1000000) rather than a job, so one run cannot spend
# minutes polling a million presences and write a record of hundreds of megabytes.
MAX_WORLD_SIZE = 65536

# (launcher, rank variable, size variable, variables naming the job), most specific first: a
# torchrun inside an srun allocation has both, and RANK is the global rank.
_SOURCES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "torch",
        "RANK",
        "WORLD_SIZE",
        ("TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT", "MASTER_ADDR", "MASTER_PORT"),
    ),
    (
        "openmpi",
        "OMPI_COMM_WORLD_RANK",
        "OMPI_COMM_WORLD_SIZE",
        ("PMIX_NAMESPACE", "OMPI_MCA_ess_base_jobid", "OMPI_MCA_orte_ess_jobid"),
    ),
    ("pmi", "PMI_RANK", "PMI_SIZE", ("PMI_KVSNAME", "PMIX_NAMESPACE", "SLURM_JOB_ID")),
    ("slurm", "SLURM_PROCID", "SLURM_NTASKS", ("SLURM_JOB_ID", "SLURM_STEP_ID")),
)


@dataclass(frozen=True)
class Launch:
    """This process's place in a job of several ranks, as its launcher's environment says."""

    launcher: str
    rank: int
    world_size: int
    # What the launcher names the job by: only for telling jobs apart, never recorded.
    job: tuple[str, ...] = ()
    # What rebuilds its command besides the world size (torchrun's nproc_per_node, nnodes).
    options: tuple[tuple[str, int], ...] = ()


def detect(environ: Mapping[str, str]) -> tuple[Launch | None, str | None]:
    """The launch the environment describes, or None for a lone process; and a problem to warn
    about when rank variables are present but make no sense (the run then records alone)."""
    for launcher, rank_var, size_var, job_vars in _SOURCES:
        if rank_var not in environ and size_var not in environ:
            continue
        raw_rank, raw_size = environ.get(rank_var, ""), environ.get(size_var, "")
        try:
            rank, size = int(raw_rank), int(raw_size)
        except ValueError:
            return None, (
                f"{rank_var}={raw_rank!r} and {size_var}={raw_size!r} do not give a rank and "
                "a world size, so this process is recorded as a run of its own"
            )
        if size == 1 and rank == 0:
            return None, None  # a world of one is an ordinary run
        if size > MAX_WORLD_SIZE:
            return None, (
                f"{size_var}={size} is more ranks than a job is taken to have "
                f"({MAX_WORLD_SIZE}), so this process is recorded as a run of its own"
            )
        if not 0 <= rank < size:
            return None, (
                f"{rank_var}={rank} is not a rank of {size_var}={size}, so this process is "
                "recorded as a run of its own"
            )
        if launcher == "torch":
            launcher = "torchrun" if "TORCHELASTIC_RUN_ID" in environ else "torch.distributed"
        job = tuple(f"{v}={environ[v]}" for v in job_vars if v in environ)
        return Launch(launcher, rank, size, job, _options(launcher, size, environ)), None
    return None, None


def _options(launcher: str, size: int, environ: Mapping[str, str]) -> tuple[tuple[str, int], ...]:
    """torchrun's ``--nproc-per-node`` and ``--nnodes``, from the variables it sets each rank,
    when they make the world size; nothing else is needed to rebuild another launcher's command
    (``mpirun -n``, ``srun -n``: the world size)."""
    if launcher != "torchrun":
        return ()
    try:
        per_node = int(environ.get("LOCAL_WORLD_SIZE", ""))
        nodes = int(environ.get("GROUP_WORLD_SIZE", ""))
    except ValueError:
        return ()
    if per_node < 1 or nodes < 1 or per_node * nodes != size:
        return ()
    return (("nproc_per_node", per_node), ("nnodes", nodes))


def wait_bound(environ: Mapping[str, str]) -> float:
    """The wait bound in seconds, from ``PROVENANCE_RANK_WAIT_S`` (a bad value: the default)."""
    try:
        value = float(environ.get(WAIT_ENVIRONMENT, DEFAULT_WAIT_S))
    except ValueError:
        return DEFAULT_WAIT_S
    return value if value >= 0 else DEFAULT_WAIT_S


def ranks_folder(sidecar: Path) -> Path:
    """``X.manifest.json`` -> ``X.manifest.ranks``: where the ranks of a job hand off."""
    return sidecar.with_name(sidecar.name.removesuffix(".json") + RANKS_SUFFIX)


def is_ranks_folder_name(name: str) -> bool:
    return name.endswith(".manifest" + RANKS_SUFFIX)


@dataclass
class _View:
    """What the hand-off folder says of every rank of the job right now."""

    parts: dict[int, dict[str, Any]]
    unreported: dict[int, str]  # rank -> RUNNING, LOST or MISSING

    @property
    def state(self) -> tuple[object, ...]:
        return (tuple(sorted(self.parts)), tuple(sorted(self.unreported.items())))

    @property
    def settled(self) -> bool:
        """Every rank reported, or ended without a report: nothing more can come."""
        return all(status == LOST for status in self.unreported.values())


class Handoff:
    """One rank's side of the hand-off: presence, its part, and the assembly of the record."""

    def __init__(
        self,
        launch: Launch,
        sidecar: Path,
        *,
        started_ns: int,
        wait_s: float,
    ) -> None:
        self.launch = launch
        self.folder = ranks_folder(sidecar)
        self.sidecar = sidecar
        # Not argv: the ranks of an MPMD launch run different commands in one job.
        key = json.dumps([launch.launcher, launch.world_size, *launch.job])
        self.key = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        self.started_ns = started_ns
        self.wait_s = wait_s
        self._live: int | None = None
        # This rank failed: a launcher tears the job down when its process exits, so it must
        # not wait for ranks that only that teardown will end.
        self._failed = False
        self._reported_ns: int | None = None
        # The files at the job's record paths when this rank reported: an earlier job's.
        self._earlier: dict[Path, tuple[int, int, bytes] | None] = {}
        # The running records beside the sidecar whose runs were gone when this rank started.
        self.lost_before: frozenset[Path] = frozenset()

    def _part(self, rank: int) -> Path:
        return self.folder / f"rank{rank}.{self.key}.json"

    def _presence(self, rank: int) -> Path:
        return self.folder / f"rank{rank}.{self.key}.live"

    def _waiter(self) -> Path:
        return self.folder / f"waiter.{self.key}.lock"

    def _written(self) -> Path:
        return self.folder / f"record.{self.key}.json"

    def _fresh_ns(self) -> int:
        # A part or presence from before this is an earlier job's: ranks of one job start
        # within the wait bound of one another.
        return self.started_ns - int(max(self.wait_s, 1.0) * 1e9)

    def present(self) -> None:
        """Say that this rank runs: a file it holds locked until it has reported or ended."""
        if self._live is not None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        presence = self._presence(self.launch.rank)
        if is_live(presence):
            raise OSError(f"another process holds {presence}: rank {self.launch.rank} runs twice")
        # Locked before it is seen: another rank looking at a presence takes a shared lock for
        # an instant, and one it took as this rank locked its file made the rank lose its own.
        made = presence.with_name(f".{presence.name}.{os.getpid()}.new")
        fd = os.open(made, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.utime(fd)  # its mtime says when this job's rank started
            os.replace(made, presence)
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(made)
            raise
        self._live = fd

    def running_at(self, record: Path, *, lost_before: frozenset[Path]) -> None:
        """Say in this rank's presence where its running record is: if the rank is lost, the
        job's record accounts for it, and the rank that writes that record removes it."""
        self.lost_before = lost_before
        if self._live is None:
            return
        name = record.name.encode("utf-8", "surrogateescape")
        with contextlib.suppress(OSError):
            os.ftruncate(self._live, 0)
            os.pwrite(self._live, name, 0)

    def _lost_ranks_records(self, target: Path, view: _View) -> list[Path]:
        """The running records of this job's ranks that ended without reporting, as their
        presences name them; only names of running records beside ``target`` count."""
        beside = {p.name: p for p in running_records(target)}
        found = []
        for rank, status in view.unreported.items():
            if status != LOST:
                continue
            presence = _read_regular(self._presence(rank))
            if presence is None:
                continue
            name = presence[1][:_MAX_NAME].decode("utf-8", "surrogateescape")
            if name in beside:
                found.append(beside[name])
        return found

    def report(self, document: dict[str, Any], *, wrote: bool, opened: list[str]) -> None:
        """Write this rank's part, its outcome decided, atomically into the hand-off folder."""
        self._failed = document["run_provenance"]["outcome"]["status"] == FAILED
        try:
            # A rank already dead without a word failed before this one: the job's record
            # can then tell which came first.
            view = self._view()
            lost_before = sorted(r for r, state in view.unreported.items() if state == LOST)
        except OSError:
            lost_before = []
        part = {
            "handoff": HANDOFF_SCHEMA,
            "rank": self.launch.rank,
            "world_size": self.launch.world_size,
            "launcher": self.launch.launcher,
            "options": dict(self.launch.options),
            "started_ns": self.started_ns,
            "ended_ns": (reported := time.time_ns()),
            "wrote": wrote,
            "opened": opened,
            "lost_before": lost_before,
            "document": document,
        }
        self._earlier = {path: _identity(path) for path in _job_paths(self.sidecar)}
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write(self._part(self.launch.rank), canonical_bytes(part), follow_symlinks=False)
        self._reported_ns = reported
        self.release()

    def assembled(self, target: Path) -> tuple[Path, bytes] | None:
        """The job's complete record, once another rank has written it with this rank's part
        in it (the parts are then consumed); None until then."""
        if self._reported_ns is None or self._part(self.launch.rank).exists():
            return None
        for path in _job_paths(target):
            found = _read_regular(path)
            if found is None:
                continue
            st, data = found
            # Written after this rank's part: not an earlier job's record.
            if st.st_mtime_ns < self._reported_ns:
                continue
            if (st.st_dev, st.st_ino, _digest(data)) == self._earlier.get(path):
                continue  # the file that was there when this rank reported, touched
            if self._of_this_launch(data):
                return path, data
        return None

    def _of_this_launch(self, data: bytes) -> bool:
        """Whether ``data`` is a job's record of this launch: anything else there (garbled,
        another job's) would make rank 0's end event wrong, or leave it unsent."""
        try:
            block = json.loads(data)["run_provenance"]
            launch = block["launch"]
            return (
                launch["launcher"] == self.launch.launcher
                and launch["world_size"] == self.launch.world_size
                and len(launch["ranks"]) == self.launch.world_size
            )
        except (ValueError, RecursionError, KeyError, TypeError):
            return False

    def release(self) -> None:
        """Let go of the presence lock: this rank has reported, or is ending without a part."""
        if self._live is not None:
            os.close(self._live)
            self._live = None
            with contextlib.suppress(OSError):
                os.unlink(self._presence(self.launch.rank))

    def _view(self) -> _View:
        parts: dict[int, dict[str, Any]] = {}
        unreported: dict[int, str] = {}
        fresh = self._fresh_ns()
        for rank in range(self.launch.world_size):
            part = _read_part(self._part(rank), rank, self.launch)
            if part is not None and part["ended_ns"] >= fresh:
                parts[rank] = part
                continue
            presence = self._presence(rank)
            try:
                seen = os.stat(presence).st_mtime_ns >= fresh
            except OSError:
                seen = False
            live = seen and is_live(presence)
            if not live:
                # A rank writes its part before it lets its presence go: one that reported
                # between the two looks has its part there now, and is not lost.
                part = _read_part(self._part(rank), rank, self.launch)
                if part is not None and part["ended_ns"] >= fresh:
                    parts[rank] = part
                    continue
            unreported[rank] = (RUNNING if live else LOST) if seen else MISSING
        return _View(parts, unreported)

    def settle(
        self, target: Path, *, give_up: Callable[[], bool], warn: Callable[[str], None]
    ) -> Path | None:
        """After ``report``: assemble the job's record if this rank is the one to; return where
        it went, or None when another rank assembles it (or already has).

        Every check runs under the folder lock, so a part written before a check is seen by it:
        either the job is settled and this rank writes the record, or one rank (the holder of
        the waiter lock) waits up to the bound and then writes what is known.
        """
        waiter: int | None = None
        deadline = time.monotonic() + self.wait_s
        last: tuple[object, ...] = ()
        try:
            while True:
                with folder_lock(target.parent, give_up=give_up) as locked:
                    if not locked:
                        warn(f"assembling without the lock on {target.parent}")
                    if not self._part(self.launch.rank).exists():
                        return None  # the job's complete record is written: parts consumed
                    view = self._view()
                    moved = view.state != last
                    if moved:
                        # A rank reported or ended: the job is moving, so the bound restarts.
                        last, deadline = view.state, time.monotonic() + self.wait_s
                    if not view.settled and waiter is None:
                        waiter = _try_lock(self._waiter())
                        if waiter is None:
                            return None  # the waiting rank will assemble this part too
                        if self._failed:
                            # What is known, and leave: the ranks still running report when
                            # the launcher stops them, and one of them waits for the rest.
                            return self._assemble(target, view, warn)
                    stopping = give_up()
                    if view.settled or stopping or time.monotonic() >= deadline:
                        return self._assemble(target, view, warn, stopping=stopping)
                    if moved:
                        # What is known so far, in case the launcher kills every rank now:
                        # torchrun and mpirun follow SIGTERM with SIGKILL within seconds.
                        self._assemble(target, view, warn, final=False)
                time.sleep(_POLL_S)
        finally:
            if waiter is not None:
                os.close(waiter)

    def _assemble(
        self,
        target: Path,
        view: _View,
        warn: Callable[[str], None],
        *,
        final: bool = True,
        stopping: bool = False,
    ) -> Path | None:
        """Write the job's record from what the view holds; called with the folder lock held.

        A record that is not ``final`` is written only where it takes no earlier job's place
        and no successful record's: a job that then succeeds leaves what a single run leaves.
        """
        try:
            document = assemble(self.launch, view.parts, view.unreported, stopping=stopping)
            # The union of the ranks' paths may be more than one record holds.
            document, data = fit(document, canonical_bytes)
        except OverLimit as err:
            warn(f"could not write the job's record: {err}")
            return None
        except (AttributeError, KeyError, TypeError, ValueError) as err:
            # The parts sit in a folder anyone may write to: one not of our shape is no reason
            # to fail the rank that reads it.
            warn(
                f"could not assemble the job's record from {self.folder}: a part is malformed "
                f"({type(err).__name__}: {err})"
            )
            return None
        status = document["run_provenance"]["outcome"]["status"]
        wrote = any(part["wrote"] for part in view.parts.values())
        # This job's record as far as it was known, where it still stands: the more complete
        # one takes its place, even at the sidecar's name, as one run's record would.
        mine = self._written_before(target, view)
        path = target
        if not wrote and os.path.lexists(target) and mine != target:
            if status == RUNNING or (not final and mine is None):
                return None  # nothing to set beside an earlier record yet: a late rank will
            path = side_record_path(target, status)
            if final:
                warn(
                    f"kept the earlier sidecar {target} (this {status} job wrote none of its "
                    f"outputs); the job's record is {path}"
                )
        if not final and path == target and record_status(target) == SUCCEEDED:
            return None
        if path == target and status != SUCCEEDED:
            keep_last_good(target)
        atomic_write(path, data, follow_symlinks=False)
        if mine is not None and mine != path:
            with contextlib.suppress(OSError):
                mine.unlink()  # this job's, and the record just written holds all it held
        if not view.settled:
            self._note_written(path, data, view)
        if view.settled:
            lost_ranks = self._lost_ranks_records(target, view)
            self._clean()
            if path == target:
                # A rank killed after the others had reported left its running record: the
                # job's record, which now describes the bytes on disk, says what became of
                # it. Earlier lost runs go only as a lone run's record would make them go.
                rewrote = {str(p) for part in view.parts.values() for p in part.get("opened") or ()}
                remove_lost([*lost_ranks, *superseded_runs(target, self.lost_before, rewrote)])
        return path

    def _note_written(self, path: Path, data: bytes, view: _View) -> None:
        """Note in the hand-off which record this job wrote as far as it was known: where, its
        inode and bytes, and the parts it was made of, so that a later rank of the job can
        tell it from an earlier job's record or anything else put there since."""
        found = _identity(path)
        if found is None or found[2] != _digest(data):
            return  # replaced already: nothing of this job's to note
        device, inode, digest = found
        note = {
            "handoff": HANDOFF_SCHEMA,
            "path": path.name,
            "device": device,
            "inode": inode,
            "digest": digest.hex(),
            "parts": {str(r): part["ended_ns"] for r, part in sorted(view.parts.items())},
        }
        with contextlib.suppress(OSError):
            atomic_write(self._written(), canonical_bytes(note), follow_symlinks=False)

    def _written_before(self, target: Path, view: _View) -> Path | None:
        """Where the record this job wrote as far as it was known still stands, unchanged, or
        None. The note must name one of the job's record paths, every part it was made of must
        be one of this job's parts now (an earlier job's are gone or stale), and the file there
        must have the inode and bytes noted: a file put there since is never taken for it."""
        found = _read_regular(self._written())
        try:
            note = json.loads(found[1]) if found is not None else None
        except (ValueError, RecursionError):
            return None
        if not isinstance(note, dict) or note.get("handoff") != HANDOFF_SCHEMA:
            return None
        made_of = note.get("parts")
        if not isinstance(made_of, dict) or not made_of:
            return None
        now = {str(rank): part["ended_ns"] for rank, part in view.parts.items()}
        if any(type(ended) is not int or now.get(r) != ended for r, ended in made_of.items()):
            return None
        name = note.get("path")
        path = {p.name: p for p in _job_paths(target)}.get(name if isinstance(name, str) else "")
        if path is None:
            return None
        identity = _identity(path)
        if identity is None:
            return None
        device, inode, digest = identity
        if [device, inode, digest.hex()] != [note.get(k) for k in ("device", "inode", "digest")]:
            return None
        return path

    def _clean(self) -> None:
        """The record holds every rank that will ever report: the hand-off files have served."""
        for rank in range(self.launch.world_size):
            for path in (self._part(rank), self._presence(rank)):
                if path.exists() and not is_live(path):
                    with contextlib.suppress(OSError):
                        path.unlink()
        for path in (self._waiter(), self._written()):
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            self.folder.rmdir()  # only when nothing else is left in it


def _try_lock(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _read_part(path: Path, rank: int, launch: Launch) -> dict[str, Any] | None:
    """A rank's part, when it is one of this job's shape; anything else counts as no part."""
    found = read_json_object(path, limit=_MAX_PART)
    if found is None:
        return None
    part = found[1]
    document = part.get("document")
    block = document.get("run_provenance") if isinstance(document, dict) else None
    if (
        part.get("handoff") != HANDOFF_SCHEMA
        or part.get("rank") != rank
        or part.get("world_size") != launch.world_size
        or not isinstance(part.get("ended_ns"), int)
        or not isinstance(part.get("wrote"), bool)
        or not isinstance(block, dict)
        or not isinstance(block.get("outcome"), dict)
    ):
        return None
    return part


# -- the one record of a job -------------------------------------------------------------------


def assemble(
    launch: Launch,
    parts: Mapping[int, dict[str, Any]],
    unreported: Mapping[int, str],
    *,
    stopping: bool = False,
) -> dict[str, Any]:
    """The job's record from the ranks' parts: the same parts give the same bytes, whichever
    rank assembles them. ``stopping``: the assembling rank was told to end by a signal."""
    order = sorted(parts)
    documents = [parts[r]["document"] for r in order]
    blocks = [d["run_provenance"] for d in documents]
    fields: dict[str, Any] = {}
    for document in reversed(documents):  # the lowest rank's value wins
        fields.update({k: v for k, v in document.items() if k != "run_provenance"})
    block = {
        k: v for k, v in blocks[0].items() if k not in ("inputs", "outputs", "outcome", "left_out")
    }
    opened = [{str(p) for p in parts[r].get("opened", ())} for r in order]
    for table, outputs in (("inputs", False), ("outputs", True)):
        slots = [b.get(table) for b in blocks]
        block[table] = _merge_slots(order, slots, opened, outputs=outputs)
    left_out = _left_out(order, blocks)
    if left_out:
        block["left_out"] = left_out
    ranks = _rank_entries(launch, parts, unreported, stopping=stopping)
    block["outcome"] = _job_outcome(ranks, [b["outcome"] for b in blocks])
    block["launch"] = {
        "launcher": launch.launcher,
        "world_size": launch.world_size,
        **_agreed_options(parts[r].get("options") for r in order),
        "ranks": ranks,
    }
    return {**fields, "run_provenance": block}


def _agreed_options(found: Iterable[Any]) -> dict[str, int]:
    """The launch options every reporting rank gives alike (nproc_per_node, nnodes): whichever
    rank assembles, the same ones; none where a rank gives none or another value."""
    agreed: dict[str, int] | None = None
    for options in found:
        mine = {
            k: v
            for k, v in (options.items() if isinstance(options, dict) else ())
            if k in ("nproc_per_node", "nnodes") and type(v) is int and v >= 1
        }
        agreed = mine if agreed is None else {k: v for k, v in agreed.items() if mine.get(k) == v}
    return dict(sorted((agreed or {}).items()))


def _left_out(order: list[int], blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """What the ranks' parts left out (limits.fit), each path list's by the rank that cut it."""
    paths: list[dict[str, Any]] = []
    values: set[str] = set()
    for rank, block in zip(order, blocks, strict=True):
        found = block.get("left_out")
        if not isinstance(found, dict):
            continue
        paths.extend({**p, "rank": rank} for p in found.get("paths", ()) if isinstance(p, dict))
        values.update(v for v in found.get("values", ()) if isinstance(v, str))
    left_out: dict[str, Any] = {}
    if paths:
        left_out["paths"] = paths
    if values:
        left_out["values"] = sorted(values)
    return left_out


def _job_paths(target: Path) -> tuple[Path, ...]:
    """Where ``settle`` may put the job's record: the target, or beside an earlier record."""
    return (target, *(side_record_path(target, s) for s in (SUCCEEDED, FAILED, INTERRUPTED)))


def _identity(path: Path) -> tuple[int, int, bytes] | None:
    """What tells the file at ``path`` now from a job's record written there later: its inode,
    and its bytes, since a file written later may be given the inode an earlier one freed."""
    found = _read_regular(path)
    if found is None:
        return None
    st, data = found
    return st.st_dev, st.st_ino, _digest(data)


def _read_regular(path: Path) -> tuple[os.stat_result, bytes] | None:
    """The stat and bytes of the regular file at ``path`` (not through a link, never blocking
    on a FIFO, of at most ``_MAX_PART`` bytes); None for anything else."""
    try:
        fd = os.open(
            path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        )
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        st = os.fstat(file.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_PART:
            return None
        data = file.read(_MAX_PART + 1)
    return (st, data) if len(data) <= _MAX_PART else None


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


def _first_to_fail(
    parts: Mapping[int, dict[str, Any]], unreported: Mapping[int, str]
) -> int | None:
    """The rank whose failure came first in time, the others' being its consequence: a reported
    rank that failed or was interrupted, by when it reported (before its process ended, and so
    before any rank its end broke), or a rank found lost by a rank as it reported (it died
    before that). None when no rank ended badly in a way whose time is known.

    Only the order enters the record: the times are the ranks' clocks, in the hand-off files.
    """
    events: list[tuple[int, int, int]] = []
    late = 1 << 64  # a part without a time (never written so, but the folder is anyone's)
    for rank, part in parts.items():
        ended = part.get("ended_ns")
        when = ended if isinstance(ended, int) else late
        status = part["document"]["run_provenance"]["outcome"].get("status")
        if status in (FAILED, INTERRUPTED):
            events.append((when, 1, rank))
        seen = part.get("lost_before")
        for lost in seen if isinstance(seen, list) else ():
            if unreported.get(lost) == LOST:
                events.append((when, 0, lost))  # dead before this rank reported
    return min(events)[2] if events else None


def _rank_entries(
    launch: Launch,
    parts: Mapping[int, dict[str, Any]],
    unreported: Mapping[int, str],
    *,
    stopping: bool,
) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for rank in range(launch.world_size):
        if rank in parts:
            outcome = parts[rank]["document"]["run_provenance"]["outcome"]
            entries.append(
                {
                    "rank": rank,
                    "status": outcome.get("status"),
                    "exit_code": outcome.get("exit_code"),
                    "error": outcome.get("error"),
                }
            )
        else:
            entries.append({"rank": rank, "status": unreported[rank], "exit_code": None})
    first = _first_to_fail(parts, unreported)
    for entry in entries:
        status = entry["status"]
        if entry["rank"] == first:
            if status == LOST:
                entry["error"] = {
                    "type": "provenance.RankLost",
                    "message": (
                        f"rank {first} ended without reporting its outcome, before any other "
                        "rank failed: killed by a signal that cannot be caught (SIGKILL, the "
                        "OOM killer)"
                    ),
                }
                entry["unreported"] = "its process ended without reporting"
        elif status == LOST and first is not None:
            # Its process ended without a word after another rank's failure: the launcher
            # tearing the job down (torchrun, mpirun and srun all do) is what ends it.
            entry["status"] = INTERRUPTED
            entry["error"] = None
            entry["unreported"] = (
                f"its process ended without reporting after rank {first} ended: killed by the "
                "launcher with a signal that cannot be caught"
            )
        elif status == LOST:
            entry["error"] = {
                "type": "provenance.RankLost",
                "message": (
                    f"rank {entry['rank']} ended without reporting its outcome: killed by a "
                    "signal that cannot be caught (SIGKILL, the OOM killer)"
                ),
            }
            entry["unreported"] = "its process ended without reporting"
        elif status == MISSING:
            entry["error"] = {
                "type": "provenance.RankMissing",
                "message": f"rank {entry['rank']} left no trace before the wait ended",
            }
            entry["unreported"] = "no trace of it before the wait ended"
        elif status == RUNNING and stopping and first is not None:
            # The launcher is tearing the job down: the signal that ends the waiting rank is
            # the one that ends this rank too.
            entry["status"] = INTERRUPTED
            entry["error"] = None
            entry["unreported"] = (
                f"still running when the launcher stopped the job after rank {first} ended"
            )
        elif status == RUNNING:
            entry["error"] = None
            entry["unreported"] = "still running when this record was written"
        if entry["rank"] == first:
            entry["failed_first"] = True
        elif first is not None and entry["status"] in (FAILED, INTERRUPTED):
            entry["consequence_of"] = first
    return entries


def _job_outcome(ranks: list[dict[str, Any]], outcomes: list[dict[str, Any]]) -> dict[str, Any]:
    """The first rank to fail in time decides: its status (failed for one lost), exit code and
    error, and ``rank``. Without one: failed for a rank lost or missing (the lowest), else
    running while one runs, else succeeded."""
    gates: dict[str, Any] = {}
    for outcome in reversed(outcomes):
        for name, verdict in (outcome.get("gates") or {}).items():
            passed = bool(verdict.get("passed")) and gates.get(name, {}).get("passed", True)
            gates[name] = {**verdict, "passed": passed}
    gates = dict(sorted(gates.items()))
    culprits = [r for r in ranks if r.get("failed_first")]
    for wanted in (LOST, MISSING):
        culprits = culprits or [r for r in ranks if r["status"] == wanted]
    if culprits:
        first = culprits[0]
        code = first["exit_code"] if isinstance(first["exit_code"], int) else 1
        return {
            "status": INTERRUPTED if first["status"] == INTERRUPTED else FAILED,
            "exit_code": code,
            "error": first.get("error"),
            "gates": gates,
            "rank": first["rank"],
        }
    if any(r["status"] == RUNNING for r in ranks):
        return {"status": RUNNING, "exit_code": None, "error": None, "gates": gates}
    return {"status": SUCCEEDED, "exit_code": 0, "error": None, "gates": gates}


def _merge_slots(
    order: list[int], tables: list[Any], opened: list[set[str]], *, outputs: bool
) -> dict[str, Any]:
    """One table of declared paths for the job: a path all ranks declared is one entry, a path
    only some declared (``log.rank3.txt``) is one entry among the slot's list, and an output
    entry says which ranks wrote it."""
    names: list[str] = []
    for table in tables:
        for name in table if isinstance(table, dict) else {}:
            if name not in names:
                names.append(name)
    merged: dict[str, Any] = {}
    for name in names:
        slots = [t.get(name) if isinstance(t, dict) else None for t in tables]
        by_path: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for rank, slot in zip(order, slots, strict=True):
            for entry in slot_entries(slot):
                by_path.setdefault(str(entry.get("path")), []).append((rank, entry))
        if not by_path:
            merged[name] = None
            continue
        entries = [
            _merged_entry(path, seen, opened, order, outputs=outputs)
            for path, seen in by_path.items()
        ]
        single = len(entries) == 1 and all(isinstance(s, dict) for s in slots)
        merged[name] = entries[0] if single else entries
    return merged


def _merged_entry(
    path: str,
    seen: list[tuple[int, dict[str, Any]]],
    opened: list[set[str]],
    order: list[int],
    *,
    outputs: bool,
) -> dict[str, Any]:
    """The job's entry for one path from every rank's entry of it.

    Every rank that ran while another wrote a shared output sees it change; only the ranks
    whose process also opened it for writing (or renamed a file onto it) are credited. Where
    no rank's process was heard writing it (a writer in C: ``torch.save`` opens its file from
    C++), the writer is not known: ``written_by_ranks`` is null and ``candidate_ranks`` names
    the ranks that saw it change. ``concurrent_writers`` only when two ranks were each heard
    writing it.
    """
    flag = "written_by_run" if outputs else "changed_during_run"
    changed = [(r, e) for r, e in seen if e.get(flag)]
    heard = [(r, e) for r, e in changed if path in opened[order.index(r)]]
    # The bytes as a writer measured them after writing; else as the lowest rank saw them.
    entry = dict((heard or changed or seen)[0][1])
    if flag in entry:
        entry[flag] = bool(changed)
    if not outputs or not entry.get("exists"):
        return entry
    if heard or not changed:
        entry["written_by_ranks"] = [r for r, _ in heard]
    else:
        entry["written_by_ranks"] = None
        entry["candidate_ranks"] = [r for r, _ in changed]
    if len(heard) > 1:
        entry["concurrent_writers"] = True
    return entry


# -- which declared outputs this process wrote --------------------------------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_written: set[str] = set()
_watching = False


def _heard(event: str, args: tuple[Any, ...]) -> None:
    # Runs on every audited event of the process: the cheapest test first.
    if event == "open":
        path, mode, flags = args
        if isinstance(mode, str):
            if not any(c in mode for c in "wax+"):
                return
        elif not (isinstance(flags, int) and flags & _WRITE_FLAGS):
            return
    elif event == "os.rename":
        path = args[1]
    else:
        return
    if isinstance(path, (str, bytes, os.PathLike)):
        with contextlib.suppress(TypeError, ValueError):
            _written.add(os.path.abspath(os.fsdecode(path)))


def watch_writes() -> None:
    """From now on, note every path this process opens for writing or renames a file onto.

    A Python audit hook (PEP 578) hears ``open()``, ``os.open`` and ``os.replace`` wherever they
    are called, torch.save and numpy.save included; it cannot be removed, so it is added once,
    and only in a rank of a launch.
    """
    global _watching
    _written.clear()
    if not _watching:
        sys.addaudithook(_heard)
        _watching = True


def wrote_path(path: str) -> bool:
    """Whether this process opened ``path``, or a file under it, for writing since watching."""
    root = os.path.abspath(path)
    inside = root.rstrip(os.sep) + os.sep
    return any(p == root or p.startswith(inside) for p in _written)


def parts_of(folder: Path) -> Iterator[Path]:
    """The hand-off files in a ranks folder (for tests and tools that look at what is left)."""
    pattern = re.compile(
        r"(rank\d+\.[0-9a-f]{16}\.(json|live)|waiter\.[0-9a-f]{16}\.lock|record\.[0-9a-f]{16}\.json)"
    )
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(folder)):
            if pattern.fullmatch(name):
                yield folder / name
