"""``provenance lineage`` of one artifact among N records: the full scan against the lineage index.

Generates N records (pipelines of four runs, one in fifty starting from a folder it wrote) in a
temporary project, then times the command, each time its own process as a user runs it: with
the index off (every record parsed), cold (parsing and filling the index), warm (the median of
--warm-runs calls), and warm again after 1% of the records were rewritten (the same bytes in
new files, so the same answer). Every output must be the full scan's, byte for byte. The
package's bytecode is compiled first, as an installed package's is.

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
from dataclasses import dataclass
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


def measure(artifact: Path, top: Path, cache: str) -> Timed:
    env = dict(os.environ, PYTHONPATH=str(ROOT), PROVENANCE_DIGEST_CACHE=cache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed package has its bytecode
    argv = [sys.executable, "-m", "provenance", "lineage", "--json", "--search", str(top)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(
        [*argv, str(artifact)], env=env, capture_output=True, text=True, check=False, cwd=top
    )
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if done.returncode != 0:
        raise SystemExit(f"lineage failed ({done.returncode}): {done.stderr}")
    return Timed(wall, cpu, done.stdout)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--warm-runs", type=int, default=5, help="warm calls, the median shown")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "provenance")], check=True)
    print(f"lineage of one artifact among {args.records:,} records; {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        top = Path(tmp) / "project"
        top.mkdir()
        started = time.perf_counter()
        artifact = generate(top, args.records)
        print(f"  (made {args.records:,} records in {time.perf_counter() - started:.1f} s)")
        time.sleep(RACY_WINDOW_NS / 1e9 + 0.1)  # records just written are racy: never stored
        location = str(Path(tmp) / "cache" / "digests.sqlite3")
        full = measure(artifact, top, "off")
        cold = measure(artifact, top, location)
        warms = sorted(
            (measure(artifact, top, location) for _ in range(args.warm_runs)),
            key=lambda t: t.wall,
        )
        warm = warms[len(warms) // 2]
        changed = rewrite(top, 100)
        edited = measure(artifact, top, location)
    assert json.loads(full.out)["inputs"], "the artifact has a lineage to follow"
    assert cold.out == full.out, "the index must answer as the full scan does"
    assert all(t.out == full.out for t in warms)
    assert edited.out == full.out  # the same bytes rewritten: the same answer
    rows = [
        [
            label,
            f"{t.wall:.2f} s",
            f"{full.wall / t.wall:.1f}x",
            f"{t.cpu:.2f} s",
            f"{full.cpu / t.cpu:.1f}x",
        ]
        for label, t in [
            ("full scan (index off)", full),
            ("index, cold (filling it)", cold),
            (f"index, warm (median of {len(warms)})", warm),
            (f"index, warm, {changed:,} records rewritten", edited),
        ]
    ]
    table(rows, ["lineage --json", "wall time", "vs full", "CPU time", "vs full"])
    walls = ", ".join(f"{t.wall:.2f}" for t in warms)
    print(f"  warm calls, wall time in seconds: {walls}")


if __name__ == "__main__":
    main()
