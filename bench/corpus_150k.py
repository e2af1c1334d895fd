"""A 150,000-file corpus folder: cold and warm wall time and peak memory of hashing it.

Each measurement is its own process, as a run is; peak memory is the process's maximum
resident set, shown beside that of a process that only imports provenance.

    python bench/corpus_150k.py [--files N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, machine, table

from provenance.stores.digest_cache import RACY_WINDOW_NS

MEASURE = """
import json, resource, sys, time
from provenance.stores.digest_cache import DigestCache
from provenance.measure.hashing import HashPolicy, hash_tree
began = time.perf_counter()
cache = DigestCache(sys.argv[2]) if sys.argv[2] != "off" else None
tree = hash_tree(sys.argv[1], HashPolicy(), cache) if sys.argv[1] != "-" else None
if cache is not None:
    cache.close()
print(json.dumps({
    "seconds": time.perf_counter() - began,
    "files": tree.file_count if tree else 0,
    "digest": tree.blake3 if tree else None,
    "hits": cache.hits if cache else 0,
    "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
}))
"""


def make_corpus(count: int) -> Path:
    """``count`` files of 64-512 bytes in 150 folders, made once and kept."""
    import random

    top = ROOT / "build" / "bench" / f"corpus-{count}"
    marker = top.with_name(top.name + ".complete")
    if marker.exists() and marker.read_text() == str(count):
        return top
    started = time.perf_counter()
    rng = random.Random(count)
    per_folder = max(1, count // 150)
    for i in range(count):
        folder = top / f"clips{i // per_folder:03d}"
        if i % per_folder == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"clip{i:06d}.json").write_bytes(rng.randbytes(rng.randint(64, 512)))
    marker.write_text(str(count))
    print(f"  (made {count} files in {time.perf_counter() - started:.1f} s)")
    return top


def measure(top: str, cache: str) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, top, cache],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=150_000)
    args = parser.parse_args()
    print(f"{args.files} files of 64-512 bytes; {machine()}")
    top = make_corpus(args.files)
    newest = max(p.stat().st_ctime_ns for p in top.iterdir())
    time.sleep(max(0.0, (newest + RACY_WINDOW_NS - time.time_ns()) / 1e9 + 0.1))
    with tempfile.TemporaryDirectory() as tmp:
        location = str(Path(tmp) / "digests.sqlite3")
        baseline = measure("-", "off")
        measure(str(top), "off")  # once to bring every file into the page cache
        no_cache = measure(str(top), "off")
        cold = measure(str(top), location)
        warm = measure(str(top), location)
    assert no_cache["digest"] == cold["digest"] == warm["digest"]
    assert warm["hits"] == args.files, warm
    rows = [
        ["import provenance only", "-", f"{baseline['peak_mib']:.0f} MiB"],
        ["cold, no cache", f"{no_cache['seconds']:.2f} s", f"{no_cache['peak_mib']:.0f} MiB"],
        ["cold, filling the cache", f"{cold['seconds']:.2f} s", f"{cold['peak_mib']:.0f} MiB"],
        ["warm (digest cache)", f"{warm['seconds']:.2f} s", f"{warm['peak_mib']:.0f} MiB"],
    ]
    table(rows, ["run", "wall time", "peak memory (max RSS)"])
    print(f"  warm is {cold['seconds'] / warm['seconds']:.1f}x faster than cold")


if __name__ == "__main__":
    main()
