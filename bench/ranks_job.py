"""What a job of N ranks costs and leaves: wall time against N lone processes, and the files.

Starts N ranks of tests/fakes/ranked.py as real processes with PMI's variables (as mpirun or
srun would), and N lone runs of it (no rank variables, each into its own folder), interleaved,
and prints median wall times side by side, then what the last job left beside its artifact.
Not a test: timings on shared machines are noisy.

    python bench/ranks_job.py [--ranks 4 8] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAKE = ROOT / "tests" / "fakes" / "ranked.py"


def _start(out: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, str(FAKE), "--out", str(out), "--logs"]
    return subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)


def job(folder: Path, ranks: int) -> float:
    """Wall time of one job of ``ranks`` ranks writing into ``folder``."""
    base = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    procs = [
        _start(folder / "model.json", dict(base, PMI_RANK=str(r), PMI_SIZE=str(ranks)))
        for r in range(ranks)
    ]
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - start
    assert codes == [0] * ranks, codes
    return elapsed


def lone(folder: Path, ranks: int) -> float:
    """Wall time of ``ranks`` ordinary runs at once, each into its own folder."""
    base = dict(os.environ, PYTHONPATH=str(ROOT))
    start = time.perf_counter()
    procs = []
    for r in range(ranks):
        (folder / str(r)).mkdir(parents=True, exist_ok=True)
        procs.append(_start(folder / str(r) / "model.json", base))
    codes = [p.wait() for p in procs]
    elapsed = time.perf_counter() - start
    assert codes == [0] * ranks, codes
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ranks", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for ranks in args.ranks:
            jobs, lones = [], []
            for i in range(args.runs):
                folder = Path(tmp) / f"job{ranks}-{i}"
                folder.mkdir()
                jobs.append(job(folder, ranks))
                lones.append(lone(Path(tmp) / f"lone{ranks}-{i}", ranks))
            j, s = statistics.median(jobs), statistics.median(lones)
            print(f"{ranks} ranks: job {j:.2f} s, {ranks} lone runs {s:.2f} s, ratio {j / s:.2f}")
            left = sorted(os.listdir(folder))
            record = json.loads((folder / "model.json.manifest.json").read_text())
            launch = record["run_provenance"]["launch"]
            print(f"  left: {', '.join(left)}")
            print(
                f"  launch: {launch['launcher']}, world size {launch['world_size']}, "
                f"statuses {[r['status'] for r in launch['ranks']]}"
            )


if __name__ == "__main__":
    main()
