"""Randomized faults: kill -9 and SIGTERM at random moments, alone and among 8 concurrent writers.

Whatever instant a run is killed at, over an earlier good record:
- every record beside the artifact is whole and valid (never half of one);
- the last successful record survives, as the sidecar or as ``.previous.json``;
- a record that is the sidecar after its own run ended describes the bytes beside it, or says it
  cannot (``concurrent_writers``), or a lost run's record beside it says another run was cut off;
- no running record is left live once every process has ended.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import blake3

from provenance import validate
from provenance.sidecar import is_live, running_records, side_record_path
from tests.conftest import FAKES, ROOT, sidecar_of

SEED = int(os.environ.get("PROVENANCE_FAULT_SEED", "20261201"))
LANES = 8  # artifacts killed one run at a time, side by side
TRIALS_PER_LANE = 20
ROUNDS = 5  # rounds of 8 concurrent writers on one artifact
WRITERS = 8


def spawn(out: Path, tag: str, size: int, inputs: list[Path]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(FAKES / "faulty.py"), "--out", str(out), "--tag", tag]
        + ["--size", str(size), "--inputs", *map(str, inputs)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


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


def test_random_kills_never_lose_or_tear_evidence(tmp_path):
    rng = random.Random(SEED)
    lanes = []
    for n in range(LANES):
        folder = tmp_path / f"lane{n}"
        folder.mkdir()
        inputs = [folder / f"in{i}.bin" for i in range(3)]
        for i, path in enumerate(inputs):
            path.write_bytes(bytes([i]) * rng.randrange(1, 2**20))
        lanes.append(Lane(folder / "model.bin", inputs))
    for lane in lanes:  # the earlier good record every lane starts from
        assert spawn(lane.out, "good", 4096, lane.inputs).wait(timeout=60) == 0
        lane.last_good = sidecar_of(lane.out).read_bytes()

    outcomes: dict[int, int] = {}
    for trial in range(TRIALS_PER_LANE):
        plan = [
            (lane, rng.choice((signal.SIGKILL, signal.SIGTERM)), rng.uniform(0.0, 0.5))
            for lane in lanes
        ]
        started = time.monotonic()
        procs = [
            (lane, signum, delay, spawn(lane.out, f"t{trial}", rng.randrange(2**16, 2**24), lane.inputs))
            for lane, signum, delay in plan
        ]
        for lane, signum, delay, proc in sorted(procs, key=lambda p: p[2]):
            time.sleep(max(0.0, started + delay - time.monotonic()))
            if proc.poll() is None:
                proc.send_signal(signum)
        for lane, _, _, proc in procs:
            code = proc.wait(timeout=60)
            outcomes[code] = outcomes.get(code, 0) + 1
            lane.last_good = check(lane.out, lane.last_good)
            if code in (0, -signal.SIGTERM) and sidecar_of(lane.out).exists():
                assert describes_the_bytes(lane.out)
    for lane in lanes:
        assert not any(is_live(r) for r in running_records(sidecar_of(lane.out)))
    # The kills landed at every stage: some runs finished, some were killed each way.
    assert outcomes.get(-signal.SIGKILL, 0) > 0
    assert outcomes.get(-signal.SIGTERM, 0) > 0


def test_random_kills_among_concurrent_writers(tmp_path):
    rng = random.Random(SEED + 1)
    out = tmp_path / "model.bin"
    inputs = [tmp_path / "in.bin"]
    inputs[0].write_bytes(b"x" * 4096)
    assert spawn(out, "good", 4096, inputs).wait(timeout=60) == 0
    last_good = sidecar_of(out).read_bytes()
    for round_ in range(ROUNDS):
        procs = [
            spawn(out, f"r{round_}w{i}", rng.randrange(2**16, 2**22), inputs)
            for i in range(WRITERS)
        ]
        started = time.monotonic()
        for proc in rng.sample(procs, WRITERS // 2):
            time.sleep(max(0.0, started + rng.uniform(0.0, 0.5) - time.monotonic()))
            if proc.poll() is None:
                proc.send_signal(rng.choice((signal.SIGKILL, signal.SIGTERM)))
        for proc in procs:
            proc.wait(timeout=60)
        last_good = check(out, last_good)
        if sidecar_of(out).exists():
            assert describes_the_bytes(out)
        assert not any(is_live(r) for r in running_records(sidecar_of(out)))
