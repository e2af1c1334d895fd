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
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import blake3
import pytest

from provenance import validate
from provenance.sidecar import is_live, running_records, side_record_path
from tests.conftest import ROOT, sidecar_of

SEED = int(os.environ.get("PROVENANCE_FAULT_SEED", "20261201"))
LANES = 8  # artifacts killed one run at a time, side by side
TRIALS_PER_LANE = 20
ROUNDS = 5  # rounds of 8 concurrent writers on one artifact
WRITERS = 8


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
        )
        self.ended: dict[int, int] = {}
        self.ended_at: dict[int, float] = {}
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

    def start(self, argv: list[str]) -> int:
        assert self.proc.stdin is not None
        with self._changed:
            count = len(self._started)
            self.proc.stdin.write(json.dumps(argv) + "\n")
            self.proc.stdin.flush()
            assert self._changed.wait_for(lambda: len(self._started) > count, timeout=60)
            return self._started[count]

    def wait(self, pid: int) -> int:
        with self._changed:
            assert self._changed.wait_for(lambda: pid in self.ended, timeout=60), pid
            return self.ended[pid]

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


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
    while pending:
        now = time.monotonic()
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
        while not ready.exists() and pid not in launcher.ended:
            time.sleep(0.001)
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
