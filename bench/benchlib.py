"""Shared pieces of the benchmarks: timing, files to hash, external tools, printing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "bench"
GIB = 1024**3


def best_of(runs: int, work: Callable[[], object]) -> float:
    """The fastest of ``runs`` timings, in seconds: the least disturbed by the machine."""
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        samples.append(time.perf_counter() - start)
    return min(samples)


def command(argv: Sequence[str], **kwargs: object) -> Callable[[], object]:
    """A callable that runs ``argv`` to completion, output discarded, failure raised."""
    return lambda: subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kwargs)  # type: ignore[call-overload]


def tool(name: str, install_hint: str) -> str | None:
    found = shutil.which(name)
    if found is None:
        print(f"  ({name} not found: {install_hint}; its comparison is skipped)")
    return found


def big_file(size: int = GIB) -> Path:
    """A file of random bytes, made once and then read into the page cache."""
    path = WORK / f"random-{size // 1024**2}MiB.bin"
    if not path.exists() or path.stat().st_size != size:
        WORK.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            for _ in range(size // (64 * 1024**2)):
                handle.write(os.urandom(64 * 1024**2))
            handle.write(os.urandom(size % (64 * 1024**2)))
    warm_page_cache(path)
    return path


def warm_page_cache(path: Path) -> None:
    with open(path, "rb", buffering=0) as handle:
        while handle.read(16 * 1024**2):
            pass


def small_files(count: int, folder_size: int, name: str) -> Path:
    """``count`` files of 1-8 KiB in folders of ``folder_size``, made once and kept."""
    import random

    top = WORK / name
    marker = WORK / f"{name}.complete"
    if not (marker.exists() and marker.read_text() == str(count)):
        if top.exists():
            shutil.rmtree(top)
        marker.unlink(missing_ok=True)
        rng = random.Random(count)
        for i in range(count):
            folder = top / f"d{i // folder_size:04d}"
            if i % folder_size == 0:
                folder.mkdir(parents=True)
            (folder / f"f{i:06d}.bin").write_bytes(rng.randbytes(rng.randint(1024, 8192)))
        marker.write_text(str(count))
    return top


def files_below(top: Path) -> list[str]:
    return sorted(str(p) for p in top.rglob("*") if p.is_file())


def gbps(size: int, seconds: float) -> str:
    return f"{size / seconds / 1e9:5.2f} GB/s"


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {cores} cores, Python {sys.version.split()[0]}"
