"""Randomized faults: kill -9 and SIGTERM at random moments, alone and among 8 concurrent writers.

Whatever instant a run is killed at, over an earlier good record:
- every record beside the artifact is whole and valid (never half of one);
- the last successful record survives, as the sidecar or as ``.previous.json``;
- a record that is the sidecar after its own run ended describes the bytes beside it, or says it
  cannot (``concurrent_writers``), or a lost run's record beside it says another run was cut off;
- no running record is left live once every process has ended.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import blake3
import pytest

from provenance import validate
from provenance.record.sidecar import is_live, running_records, side_record_path
from tests.conftest import ROOT, sidecar_of

SEED = int(os.environ.get("PROVENANCE_FAULT_SEED", "20261201"))
LANES = 8  # artifacts killed one run at a time, side by side
TRIALS_PER_LANE = 20
ROUNDS = 5  # rounds of 8 concurrent writers on one artifact
WRITERS = 8


# Whatever a test waits for (a run, the launcher, a ready file) comes within this, or the test
# fails saying what never came, instead of hanging.
BOUND_S = 60.0


def until(done: Callable[[], bool], what: str, timeout: float = BOUND_S) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.001)


# Kills land this long after a run says it is under way (its arguments are parsed and its
# running record written): the script writing, its hold, the exit hashing, the writing of the
# record and the exit all fall in this window.
WINDOW_S = 0.2


class Launcher:
    """Forks runs of the faulty trainer from one warm process (tests/fakes/launcher.py)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.launcher"],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # its runs are its group: one signal ends what hangs
        )
        self.ended: dict[int, int] = {}
        self.ended_at: dict[int, float] = {}
        self.gone = False
        self._started: list[int] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            word, pid, *rest = line.split()
            with self._changed:
                if word == "started":
                    self._started.append(int(pid))
                else:
                    self.ended[int(pid)] = int(rest[0])
                    self.ended_at[int(pid)] = time.monotonic()
                self._changed.notify_all()
        with self._changed:
            self.gone = True
            self._changed.notify_all()

    def _wait_for(self, done: Callable[[], bool], what: str) -> None:
        """With the condition held: fail, saying what never came, if the launcher ends first or
        time runs out."""
        if not self._changed.wait_for(lambda: done() or self.gone, timeout=BOUND_S):
            raise AssertionError(f"{what}: not within {BOUND_S:.0f} s")
        if not done():
            raise AssertionError(f"{what}: the launcher ended first ({self.proc.poll()})")

    def start(self, argv: list[str]) -> int:
        assert self.proc.stdin is not None
        with self._changed:
            count = len(self._started)
            self.proc.stdin.write(json.dumps(argv) + "\n")
            self.proc.stdin.flush()
            self._wait_for(lambda: len(self._started) > count, "the start of a run")
            return self._started[count]

    def wait(self, pid: int) -> int:
        with self._changed:
            self._wait_for(lambda: pid in self.ended, f"the end of run {pid}")
            return self.ended[pid]

    def close(self) -> None:
        """Let the launcher end once its runs have; end it and them if they do not."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=BOUND_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # not reaped: the group is still its own
            self.proc.wait()
            with self._changed:
                hung = sorted(set(self._started) - set(self.ended))
            raise AssertionError(
                f"the launcher did not end within {BOUND_S:.0f} s; runs that never ended: {hung}"
            ) from None


@pytest.fixture
def launcher() -> Iterator[Launcher]:
    started = Launcher()
    try:
        yield started
    finally:
        started.close()


def argv_for(
    out: Path, tag: str, size: int, inputs: list[Path], ready: Path, hold: float
) -> list[str]:
    return [
        "--out", str(out), "--tag", tag, "--size", str(size), "--inputs", *map(str, inputs),
        "--ready", str(ready), "--hold", str(hold),
    ]  # fmt: skip


def kill_in_window(launcher: Launcher, plan: list[tuple[int, Path, int, float]]) -> None:
    """Send each run its signal ``delay`` seconds after it wrote its ready file."""
    pending = list(plan)
    ready_at: dict[int, float] = {}
    deadline = time.monotonic() + BOUND_S
    while pending:
        now = time.monotonic()
        if now > deadline:
            waiting = [pid for pid, *_ in pending]
            raise AssertionError(f"runs never ready nor ended within {BOUND_S:.0f} s: {waiting}")
        for item in list(pending):
            pid, ready, signum, delay = item
            if pid in launcher.ended:
                pending.remove(item)
                continue
            if pid not in ready_at and ready.exists():
                ready_at[pid] = now
            if pid in ready_at and now >= ready_at[pid] + delay:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signum)
                pending.remove(item)
        time.sleep(0.001)


def records_beside(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f"{out.name}.manifest*.json"))


def read(path: Path) -> dict:
    document = json.loads(path.read_bytes())
    validate(document)
    return document


def status(document: dict) -> str:
    return document["run_provenance"]["outcome"]["status"]


def tag_of(document: dict) -> str:
    argv = document["run_provenance"]["argv"]
    return argv[argv.index("--tag") + 1]


@dataclass
class Lane:
    out: Path
    inputs: list[Path]
    last_good: bytes = b""


def check(out: Path, last_good: bytes) -> bytes:
    """Check the invariants beside ``out``; return the last good record's bytes now."""
    for path in records_beside(out):
        read(path)  # whole and valid, whichever it is
    sidecar = sidecar_of(out)
    previous = side_record_path(sidecar, "previous")
    kept = {p.read_bytes() for p in (sidecar, previous) if p.exists()}
    if sidecar.exists() and status(read(sidecar)) == "succeeded":
        last_good = sidecar.read_bytes()  # a newer success (it must describe these bytes)
    assert last_good in kept, "the last successful record was lost"
    return last_good


def describes_the_bytes(out: Path) -> bool:
    document = read(sidecar_of(out))
    entry = document["run_provenance"]["outputs"]["model"]
    if entry.get("concurrent_writers") or "not_hashed" in entry or entry.get("error"):
        return True  # it says it cannot vouch for these bytes
    if running_records(sidecar_of(out)):
        return True  # a lost run's record beside it says the bytes may be that run's
    return bool(entry["exists"]) and entry["blake3"] == blake3.blake3(out.read_bytes()).hexdigest()


def test_random_kills_never_lose_or_tear_evidence(tmp_path, launcher):
    rng = random.Random(SEED)
    lanes = []
    for n in range(LANES):
        folder = tmp_path / f"lane{n}"
        folder.mkdir()
        inputs = [folder / f"in{i}.bin" for i in range(3)]
        for i, path in enumerate(inputs):
            path.write_bytes(bytes([i]) * rng.randrange(1, 2**20))
        lanes.append(Lane(folder / "model.bin", inputs))
    durations = []
    for lane in lanes:  # the earlier good record every lane starts from
        ready = lane.out.parent / "ready-good"
        pid = launcher.start(argv_for(lane.out, "good", 2**23, lane.inputs, ready, 0))
        until(lambda r=ready, p=pid: r.exists() or p in launcher.ended, f"run {pid} ready or ended")
        was_ready = time.monotonic()
        assert launcher.wait(pid) == 0
        durations.append(launcher.ended_at[pid] - was_ready)
        lane.last_good = sidecar_of(lane.out).read_bytes()
    # Kills spread over what a run takes from ready to its end on this machine, now.
    window = max(0.02, 1.2 * sorted(durations)[len(durations) // 2])

    outcomes: dict[int, int] = {}
    kinds: dict[str, int] = {}
    for trial in range(TRIALS_PER_LANE):
        plan = []
        spared = rng.randrange(LANES)  # one run a round is left to finish, whatever the machine
        for lane in lanes:
            ready = lane.out.parent / f"ready{trial}"
            size, hold = rng.randrange(2**16, 2**24), rng.choice((0.0, 0.0, 0.05))
            pid = launcher.start(argv_for(lane.out, f"t{trial}", size, lane.inputs, ready, hold))
            signum = rng.choice((signal.SIGKILL, signal.SIGTERM))
            plan.append((pid, ready, signum, rng.uniform(0.0, window)))
        kill_in_window(launcher, [p for n, p in enumerate(plan) if n != spared])
        for lane, (pid, *_) in zip(lanes, plan, strict=True):
            code = launcher.wait(pid)
            outcomes[code] = outcomes.get(code, 0) + 1
            lane.last_good = check(lane.out, lane.last_good)
            if code in (0, -signal.SIGTERM) and sidecar_of(lane.out).exists():
                assert describes_the_bytes(lane.out)
            for path in records_beside(lane.out):
                kind = path.name.removeprefix("model.bin.manifest").split(".")[1]
                kinds[kind] = kinds.get(kind, 0) + 1
    for lane in lanes:
        assert not any(is_live(r) for r in running_records(sidecar_of(lane.out)))
    # The kills landed at every stage: some runs finished, some were killed each way, some
    # left a running record, some an interrupted one.
    assert outcomes.get(0, 0) > 0, outcomes
    assert outcomes.get(-signal.SIGKILL, 0) > 0, outcomes
    assert outcomes.get(-signal.SIGTERM, 0) > 0, outcomes
    assert kinds.get("running", 0) > 0, kinds
    assert kinds.get("previous", 0) > 0, kinds


def test_random_kills_among_concurrent_writers(tmp_path, launcher):
    rng = random.Random(SEED + 1)
    out = tmp_path / "model.bin"
    inputs = [tmp_path / "in.bin"]
    inputs[0].write_bytes(b"x" * 4096)
    assert launcher.wait(launcher.start(argv_for(out, "good", 4096, inputs, out, 0))) == 0
    for round_ in range(ROUNDS):
        plan = []
        for i in range(WRITERS):
            ready = tmp_path / f"ready{round_}.{i}"
            size = rng.randrange(2**16, 2**22)
            pid = launcher.start(argv_for(out, f"r{round_}w{i}", size, inputs, ready, 0.0))
            plan.append((pid, ready, rng.choice((signal.SIGKILL, signal.SIGTERM)), 0.0))
        doomed = rng.sample(plan, WRITERS // 2)
        kill_in_window(launcher, [(p, r, s, rng.uniform(0.0, WINDOW_S)) for p, r, s, _ in doomed])
        for pid, *_ in plan:
            launcher.wait(pid)
        for path in records_beside(out):
            read(path)  # whole and valid
        # Which of the round's successes is the last one cannot be told from outside; that a
        # successful record is still kept, as the sidecar or beside it, can.
        kept = [p for p in (sidecar_of(out), side_record_path(sidecar_of(out), "previous"))]
        assert any(p.exists() and status(read(p)) == "succeeded" for p in kept)
        if sidecar_of(out).exists():
            assert describes_the_bytes(out)
        assert not any(is_live(r) for r in running_records(sidecar_of(out)))


class Lines:
    """The lines written to a pipe, read with a bound; blank ones (the filler) are passed over."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending = b""

    def next(self, what: str) -> str:
        deadline = time.monotonic() + BOUND_S
        while True:
            line, newline, rest = self.pending.partition(b"\n")
            if newline:
                self.pending = rest
                if line:
                    return line.decode()
                continue
            left = deadline - time.monotonic()
            readable, _, _ = select.select([self.fd], [], [], max(0.0, left))
            if not readable:
                raise AssertionError(f"{what}: not within {BOUND_S:.0f} s")
            chunk = os.read(self.fd, 1 << 16)
            assert chunk, f"{what}: the launcher's output ended first"
            self.pending += chunk


def threads_in_pipe_write(pid: int) -> list[bool]:
    """For each thread of ``pid``: is it asleep writing to a full pipe?"""
    stuck = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            stuck.append("pipe_write" in Path(f"/proc/{pid}/task/{tid}/wchan").read_text())
    return stuck


def children_of(pid: int) -> set[int]:
    found = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            found |= {int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()}
    return found


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads threads from /proc")
def test_a_run_forked_while_the_launcher_is_stuck_telling_of_another_still_ends(tmp_path):
    """Stop the launcher mid-report (its output pipe full) and have it fork the next run then.

    A lock a reporting thread holds at the fork (stdout's) stays held in the child, which has
    no such thread to release it: the child would wait on it forever.
    """
    out_read, out_write = os.pipe()
    # Its stdout buffered, as tox runs it: a buffered stream is one with a lock.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.launcher"],
        cwd=ROOT,
        env=dict(env, PYTHONPATH=str(ROOT)),
        stdin=subprocess.PIPE,
        stdout=out_write,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
    )
    # A description of the pipe's write end of our own, non-blocking to fill it; the
    # launcher's own stays blocking.
    filler = os.open(f"/proc/self/fd/{out_write}", os.O_WRONLY | os.O_NONBLOCK)
    os.close(out_write)
    assert proc.stdin is not None
    lines = Lines(out_read)
    inputs = [tmp_path / "in.bin"]
    inputs[0].write_bytes(b"x" * 4096)
    try:
        proc.stdin.write(
            json.dumps(argv_for(tmp_path / "a.bin", "a", 16, inputs, tmp_path / "ra", 60)) + "\n"
        )
        proc.stdin.flush()
        first = int(lines.next("the first run's start").split()[1])
        with contextlib.suppress(BlockingIOError):
            while True:
                os.write(filler, b"\n" * 4096)
        os.kill(first, signal.SIGKILL)  # its end is now told to a full pipe
        until(lambda: any(threads_in_pipe_write(proc.pid)), "the launcher telling of the end")
        proc.stdin.write(
            json.dumps(argv_for(tmp_path / "b.bin", "b", 16, inputs, tmp_path / "rb", 0)) + "\n"
        )
        proc.stdin.flush()
        until(
            lambda: bool(children_of(proc.pid)) or all(threads_in_pipe_write(proc.pid)),
            "the second run forked, or the launcher waiting to tell of the first's end first",
        )
        seen = [lines.next("the second run's start")]
        while not seen[-1].startswith("started"):
            seen.append(lines.next("the second run's start"))
        second = int(seen[-1].split()[1])
        while not seen[-1].startswith(f"ended {second} "):
            seen.append(lines.next(f"the end of run {second}"))
        assert f"ended {first} -9" in seen
        assert seen[-1] == f"ended {second} 0"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and any run it left hanging
        proc.wait()
        os.close(filler)
        os.close(out_read)
