"""``provenance lineage`` of one artifact, and ``provenance runs`` of the runs with one argument,
among N records: the full scan against the lineage index.

Generates N records (pipelines of four runs, one in fifty starting from a folder it wrote) in a
temporary project, then times each command, each time its own process as a user runs it: with
the index off (every record parsed), cold (parsing and filling the index, each command its own),
warm (the median of --warm-runs calls), warm again after 1% of the records were rewritten
(the same bytes in new files, so the same answer), and after 1% were changed (an argument
neither command shows, so the same answer again, but new bytes to parse). Every output must
be the full scan's, byte for byte. The package's bytecode is compiled first, as an installed
package's is.

    python bench/lineage_scale.py [--records N] [--warm-runs K]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchlib import ROOT, machine, table

from provenance import validate
from provenance.stores.digest_cache import RACY_WINDOW_NS

STAGES = 4
PER_FOLDER = 100
HEX = "0" * 64
POLICY = {
    "algorithms": ["blake3", "sha256"],
    "sha256_max_bytes": 256 * 1024**2,
    "directory_digest": "provenance.tree/v1",
}


def digest(*parts: object) -> str:
    import hashlib

    return hashlib.blake2s(repr(parts).encode(), digest_size=32).hexdigest()


def entry(path: str, blake3: str, kind: str = "file") -> dict[str, Any]:
    if kind == "directory":
        return {
            "path": path,
            "exists": True,
            "kind": kind,
            "blake3": blake3,
            "file_count": 3,
            "size_bytes": 300,
        }
    return {
        "path": path,
        "exists": True,
        "kind": kind,
        "size_bytes": 100,
        "blake3": blake3,
        "sha256": HEX,
    }


def record(stage: int, inputs: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": "provenance.manifest/v1",
        "run_provenance": {
            "schema": "provenance.run/v1",
            "entrypoint": {"path": f"stage{stage}.py", "sha256": HEX, "blake3": HEX},
            "code": {},
            "argv": ["--seed", str(stage)],
            "args": {"seed": stage},
            "inputs": inputs,
            "outputs": outputs,
            "hash_policy": POLICY,
            "outcome": {"status": "succeeded", "exit_code": 0, "error": None, "gates": {}},
        },
    }


def generate(top: Path, count: int) -> Path:
    """``count`` records under ``top``; the artifact at the end of a pipeline midway is returned."""
    (top / "pyproject.toml").write_text('[project]\nname = "bench"\n')
    written = 0
    pipeline = 0
    middle: Path | None = None
    while written < count:
        folder_data = pipeline % 50 == 0
        previous: tuple[str, str] | None = None  # (path, digest) of the last stage's output
        for stage in range(min(STAGES, count - written)):
            folder = top / "runs" / f"r{written // PER_FOLDER:05d}"
            folder.mkdir(parents=True, exist_ok=True)
            shown = f"runs/{folder.name}/p{pipeline}-s{stage}.out"
            made = digest(pipeline, stage)
            if stage == 0:
                inputs = {"raw": entry(f"raw/p{pipeline}.csv", digest(pipeline, "raw"))}
                if folder_data:
                    shown = f"runs/{folder.name}/p{pipeline}-data"
                    outputs = {"data": entry(shown, made, "directory")}
                else:
                    outputs = {"out": entry(shown, made)}
            elif stage == 1 and folder_data and previous is not None:
                part = f"{previous[0]}/part0.csv"
                inputs = {"part": entry(part, digest(pipeline, "part"))}
                outputs = {"out": entry(shown, made)}
            else:
                assert previous is not None
                inputs = {"in": entry(*previous)}
                outputs = {"out": entry(shown, made)}
            document = record(stage, inputs, outputs)
            if written == 0:
                validate(document)  # the generated records are real sidecars
            sidecar = top / f"{shown}.manifest.json"
            sidecar.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
            previous = (shown, made)
            written += 1
            if folder_data and stage == STAGES - 1 and (middle is None or written <= count // 2):
                middle = top / shown  # the last folder-fed pipeline before the middle
        pipeline += 1
    assert middle is not None or count < 2 * STAGES
    return middle or top / str(previous[0] if previous else "")


@dataclass(frozen=True)
class Timed:
    wall: float
    cpu: float  # user + system: what the command cost, however busy the machine was
    out: str


def measure(command: list[str], top: Path, cache: str) -> Timed:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PROVENANCE_DIGEST_CACHE=cache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode
    argv = [sys.executable, "-m", "provenance", *command]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, cwd=top)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if done.returncode != 0 or done.stderr:
        raise SystemExit(f"{command[0]} failed ({done.returncode}): {done.stderr}")
    return Timed(wall, cpu, done.stdout)


@dataclass(frozen=True)
class Series:
    full: Timed
    cold: Timed
    warms: list[Timed]  # fastest first
    edited: Timed | None = None
    changed: Timed | None = None

    @property
    def warm(self) -> Timed:
        return self.warms[len(self.warms) // 2]

    def check(self, name: str) -> None:
        assert self.cold.out == self.full.out, f"{name}: the index must answer as the full scan"
        assert all(t.out == self.full.out for t in self.warms), name
        assert self.edited is None or self.edited.out == self.full.out, name  # the same bytes
        assert self.changed is None or self.changed.out == self.full.out, name

    def rows(self, changed: int) -> list[list[str]]:
        assert self.edited is not None
        assert self.changed is not None
        return [
            [
                label,
                f"{t.wall:.2f} s",
                f"{self.full.wall / t.wall:.1f}x",
                f"{t.cpu:.2f} s",
                f"{self.full.cpu / t.cpu:.1f}x",
            ]
            for label, t in [
                ("full scan (index off)", self.full),
                ("index, cold (filling it)", self.cold),
                (f"index, warm (median of {len(self.warms)})", self.warm),
                (f"index, warm, {changed:,} records rewritten", self.edited),
                (f"index, warm, {changed:,} records changed", self.changed),
            ]
        ]


def series(command: list[str], top: Path, location: str, warm_runs: int) -> Series:
    full = measure(command, top, "off")
    cold = measure(command, top, location)
    warms = sorted(
        (measure(command, top, location) for _ in range(warm_runs)), key=lambda t: t.wall
    )
    return Series(full, cold, warms)


def rewrite(top: Path, share: int) -> int:
    """Rewrite one record in ``share`` (same bytes, a new file): each must be parsed again."""
    count = 0
    for i, path in enumerate(sorted(top.glob("runs/*/*.manifest.json"))):
        if i % share == 0:
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_bytes(path.read_bytes())
            os.replace(temporary, path)
            count += 1
    return count


def change(top: Path, share: int) -> int:
    """Change one record in ``share`` (an argument neither command shows, at the same size, in
    a new file): new bytes, each parsed again."""
    count = 0
    for i, path in enumerate(sorted(top.glob("runs/*/*.manifest.json"))):
        if i % share == 0:
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_bytes(path.read_bytes().replace(b'"--seed"', b'"--SEED"'))
            os.replace(temporary, path)
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--warm-runs", type=int, default=5, help="warm calls, the median shown")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "provenance")], check=True)
    print(f"lineage of one artifact, runs of one argument, among {args.records:,} records")
    print(f"  {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp) / "project"
        top.mkdir()
        started = time.perf_counter()
        artifact = generate(top, args.records)
        print(f"  (made {args.records:,} records in {time.perf_counter() - started:.1f} s)")
        time.sleep(RACY_WINDOW_NS / 1e9 + 0.1)  # records just written are racy: never stored
        # Each command its own index, so that each cold call fills one.
        commands = {
            "lineage --json": (
                ["lineage", "--json", "--search", str(top), str(artifact)],
                str(Path(tmp) / "lineage" / "digests.sqlite3"),
            ),
            "runs --json --where seed=0": (
                ["runs", "--json", "--where", "seed=0", str(top)],
                str(Path(tmp) / "runs" / "digests.sqlite3"),
            ),
        }
        measured = {
            name: series(command, top, location, args.warm_runs)
            for name, (command, location) in commands.items()
        }
        changed = rewrite(top, 100)
        for name, (command, location) in commands.items():
            measured[name] = replace(measured[name], edited=measure(command, top, location))
        assert change(top, 100) == changed
        for name, (command, location) in commands.items():
            measured[name] = replace(measured[name], changed=measure(command, top, location))
    lineage, runs = measured["lineage --json"], measured["runs --json --where seed=0"]
    assert json.loads(lineage.full.out)["inputs"], "the artifact has a lineage to follow"
    found = json.loads(runs.full.out)["runs"]
    assert len(found) == len(range(0, args.records, STAGES)), "every first stage's run is found"
    for name, timed in measured.items():
        timed.check(name)
        table(timed.rows(changed), [name, "wall time", "vs full", "CPU time", "vs full"])
        walls = ", ".join(f"{t.wall:.2f}" for t in timed.warms)
        print(f"  warm calls, wall time in seconds: {walls}")


if __name__ == "__main__":
    main()
