"""What @recorded_run adds to a trivial script: wall time per run, and import cost per module.

Runs an undecorated and a decorated copy of the same trivial script as real subprocesses,
interleaved, and prints medians side by side. Not a test: timings on shared machines are noisy.

    python bench/decorator_overhead.py [--runs N]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BODY = """
import argparse
import sys
from pathlib import Path
{imports}

{decorator}
def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.write_text("trivial\\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
"""

PLAIN = BODY.format(imports="", decorator="")
DECORATED = BODY.format(
    imports="from provenance import recorded_run",
    decorator='@recorded_run(outputs={"out": "out"})',
)


DEFERRED = {
    "sqlite3": "digest cache: a directory, or a file over 1 MiB",
    "concurrent.futures": "SHA-256 helper thread: a file between 1 MiB and the threshold",
    "tqdm": "progress bar: hashing on a terminal for over a second",
}


def time_runs(script: Path, out: Path, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, str(script), "--out", str(out)], check=True)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def import_costs(module: str) -> dict[str, float]:
    """Cumulative import time in ms of each module, from ``-X importtime``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    costs: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            costs[match.group(3)] = costs.get(match.group(3), 0) + int(match.group(1)) / 1000
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "pyproject.toml").write_text('[project]\nname = "bench"\n')
        plain, decorated = folder / "plain.py", folder / "decorated.py"
        plain.write_text(PLAIN)
        decorated.write_text(DECORATED)
        time_runs(plain, folder / "warm.txt", 2)  # warm the page cache and bytecode caches
        time_runs(decorated, folder / "warm.txt", 2)
        plain_ms, decorated_ms = [], []
        for _ in range(args.runs):
            plain_ms += time_runs(plain, folder / "p.txt", 1)
            decorated_ms += time_runs(decorated, folder / "d.txt", 1)
    p, d = statistics.median(plain_ms), statistics.median(decorated_ms)
    print(f"python {sys.version.split()[0]}, {args.runs} interleaved runs each, medians")
    print(f"{'undecorated':>14} {'decorated':>12} {'added':>10} {'ratio':>8}")
    print(f"{p:12.1f}ms {d:10.1f}ms {d - p:8.1f}ms {d / p:7.2f}x")
    print()
    costs = import_costs("provenance")
    print("cumulative import time of `import provenance`, by top-level package (ms):")
    for name in ("provenance", "wrapt", "inspect", "blake3", "argparse", "json", "hashlib"):
        if name in costs:
            print(f"  {name:<14} {costs[name]:7.1f}")
    wrapt_parts = import_costs("wrapt")
    print("  of wrapt's, what its own package imports at load (not deferrable from outside):")
    for name in ("asyncio", "importlib.metadata"):
        if name in wrapt_parts:
            print(f"    {name:<18} {wrapt_parts[name]:7.1f}")
    print("deferred until needed, so a trivial run never pays for them (ms, imported alone):")
    for name, when in DEFERRED.items():
        alone = import_costs(name).get(name)
        print(f"  {name:<20} {alone if alone is not None else float('nan'):7.1f}  {when}")


if __name__ == "__main__":
    main()
