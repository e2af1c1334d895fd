"""What @recorded_run adds to a trivial script: wall time per run, and import cost per module.

Runs an undecorated and a decorated copy of the same trivial script as real subprocesses,
interleaved, and prints medians side by side: an argparse script, then the same script in click
and in Hydra. Not a test: timings on shared machines are noisy.

    python bench/decorator_overhead.py [--runs N] [--framework-runs N] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
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


CLICK_BODY = """
from pathlib import Path
import click
{imports}

@click.command()
@click.option("--out", required=True)
{decorator}
def main(out):
    Path(out).write_text("trivial\\n")


if __name__ == "__main__":
    main()
"""

HYDRA_BODY = """
from pathlib import Path
import hydra
{imports}

@hydra.main(version_base=None, config_path="conf", config_name="config")
{decorator}
def main(cfg):
    Path(cfg.out).write_text("trivial\\n")


if __name__ == "__main__":
    main()
"""
HYDRA_CONFIG = "out: ???\nhydra:\n  output_subdir: null\n  run:\n    dir: .\n"
IMPORT = "from provenance import recorded_run"


def pair(body: str, declaration: str) -> tuple[str, str]:
    """The undecorated and the decorated copy of one script."""
    plain = body.format(imports="", decorator="")
    return plain, body.format(imports=IMPORT, decorator=f"@recorded_run({declaration})")


# name -> (undecorated, decorated, how the output path is passed)
FRAMEWORKS = {
    "click": (*pair(CLICK_BODY, 'outputs={"out": "out"}'), "--out {}"),
    "hydra": (*pair(HYDRA_BODY, 'outputs={"out": "out"}'), "out={}"),
}

DEFERRED = {
    "sqlite3": "digest cache: a directory, or a file over 1 MiB",
    "concurrent.futures": "SHA-256 helper thread: a file between 1 MiB and the threshold",
    "tqdm": "progress bar: hashing on a terminal for over a second",
}


def time_runs(
    script: Path, out: Path, runs: int, form: str = "--out {}", baseline: str | None = None
) -> list[tuple[float, float]]:
    """Wall and CPU (user + system) ms of each run of ``script``, importing provenance from
    ``baseline`` when given."""
    samples = []
    argv = [a.format(out) for a in form.split()]
    env = {**os.environ, "PYTHONPATH": baseline} if baseline else None
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, str(script), *argv],
            check=True,
            cwd=script.parent,
            capture_output=True,
            env=env,
        )
        wall = (time.perf_counter() - start) * 1000
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
        samples.append((wall, cpu))
    return samples


def compare(
    plain: Path, decorated: Path, runs: int, form: str, baseline: str | None = None
) -> list[tuple[float, ...]]:
    """Median wall and CPU ms of the undecorated and the decorated script, run interleaved;
    with a baseline, of the decorated script on the baseline's provenance too."""
    folder = plain.parent
    variants = [(decorated, None), *([(decorated, baseline)] if baseline else [])]
    time_runs(plain, folder / "warm.txt", 2, form)  # warm the page cache and bytecode caches
    for script, home in variants:
        time_runs(script, folder / "warm.txt", 2, form, home)
    plain_ms: list[tuple[float, float]] = []
    decorated_ms: list[list[tuple[float, float]]] = [[] for _ in variants]
    for _ in range(runs):
        plain_ms += time_runs(plain, folder / "p.txt", 1, form)
        for (script, home), samples in zip(variants, decorated_ms, strict=True):
            samples += time_runs(script, folder / "d.txt", 1, form, home)
    return [
        tuple(statistics.median(s[i] for s in both) for i in (0, 1) for both in (plain_ms, mine))
        for mine in decorated_ms
    ]


def row(name: str, p: float, d: float, p_cpu: float, d_cpu: float) -> str:
    # CPU time is what a loaded machine distorts least: waiting for a core is not in it.
    return (
        f"{name:<10} {p:10.1f}ms {d:10.1f}ms {d - p:8.1f}ms {d / p:7.2f}x"
        f"   {p_cpu:8.1f}ms {d_cpu:8.1f}ms {d_cpu - p_cpu:8.1f}ms {d_cpu / p_cpu:6.2f}x"
    )


def import_costs(module: str, statement: str = "") -> dict[str, float]:
    """Cumulative import time in ms of each module ``statement`` (``import MODULE`` unless
    given) imports, from ``-X importtime``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement or f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    costs: dict[str, float] = {}
    # What the interpreter imports before any statement runs is not the statement's.
    startup = _top_level("pass") if statement != "pass" else set()
    for line in proc.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            ms = int(match.group(1)) / 1000
            costs[match.group(3)] = costs.get(match.group(3), 0) + ms
            if len(match.group(2)) == 1 and match.group(3) not in startup:
                # The package's names load apart from it (PEP 562), some modules at top level.
                costs["everything"] = costs.get("everything", 0) + ms
    return costs


def _top_level(statement: str) -> set[str]:
    return set(import_costs("", statement)) - {"everything"}


def provenance_home() -> str:
    """Where the scripts import provenance from (PYTHONPATH can point at another checkout)."""
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import provenance, os; print(os.path.dirname(provenance.__file__))",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=tempfile.gettempdir(),  # as the scripts run: not from this checkout's folder
    )
    return proc.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--framework-runs", type=int, default=7, help="0 skips click and Hydra")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="a folder holding another version's provenance package (say, main's, from "
        "`git archive main provenance | tar -x -C DIR`): its decorated argparse script is "
        "timed in the same interleaved runs",
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "pyproject.toml").write_text('[project]\nname = "bench"\n')
        plain, decorated = folder / "plain.py", folder / "decorated.py"
        plain.write_text(PLAIN)
        decorated.write_text(DECORATED)
        measured = compare(plain, decorated, args.runs, "--out {}", args.baseline)
        rows.append(("argparse", *measured[0]))
        if args.baseline:
            rows.append(("(baseline)", *measured[1]))
        for name, (plain_text, decorated_text, form) in FRAMEWORKS.items():
            if not args.framework_runs:
                break
            own = folder / name
            (own / "conf").mkdir(parents=True)
            (own / "conf" / "config.yaml").write_text(HYDRA_CONFIG)
            (own / "plain.py").write_text(plain_text)
            (own / "decorated.py").write_text(decorated_text)
            runs = args.framework_runs
            rows.append((name, *compare(own / "plain.py", own / "decorated.py", runs, form)[0]))
    print(f"python {sys.version.split()[0]}, interleaved runs ({args.runs} argparse, ", end="")
    print(f"{args.framework_runs} per framework), medians; provenance from {provenance_home()}")
    print(f"{'':<10} {'wall':-^46}   {'CPU (user + system)':-^41}")
    print(
        f"{'script':<10} {'undecorated':>12} {'decorated':>12} {'added':>10} {'ratio':>8}"
        f"   {'undecor.':>10} {'decor.':>10} {'added':>10} {'ratio':>7}"
    )
    for name, *medians in rows:
        print(row(name, *medians))
    print()
    print(f"`import provenance` alone: {import_costs('provenance')['provenance']:.1f} ms")
    # The package's names load when first used: the decorator is what brings wrapt in.
    costs = import_costs("provenance", "from provenance import recorded_run")
    print("cumulative import time of `from provenance import recorded_run` (ms):")
    for name in ("everything", "wrapt", "inspect", "blake3", "argparse", "json", "hashlib"):
        if name in costs:
            print(f"  {name:<14} {costs[name]:7.1f}")
    wrapt_parts = import_costs("wrapt")
    print("  of wrapt's, what its own package imports at load (not deferrable from outside):")
    for name in ("asyncio", "importlib.metadata"):
        if name in wrapt_parts:
            print(f"    {name:<18} {wrapt_parts[name]:7.1f}")
    print("deferred until needed (ms, imported alone), unless the decorator's imports bring it:")
    for name, when in DEFERRED.items():
        alone = import_costs(name).get(name)
        already = "  (imported anyway by the decorator's own imports)" if name in costs else ""
        print(f"  {name:<20} {alone if alone is not None else float('nan'):7.1f}  {when}{already}")


if __name__ == "__main__":
    main()
