"""10,000 files of 1-8 KiB: hashing cold (no cache) and warm (cache) against a stat-only floor.

The floor walks the folder and stats every file, the least any check for change can do. b3sum
over the same files (one process, every path on its command line) sets the cold reference.

    python bench/small_files.py [--files N] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import best_of, files_below, machine, small_files, table, tool

from provenance.measure.hashing import HashPolicy, hash_tree
from provenance.stores.digest_cache import RACY_WINDOW_NS, DigestCache

POLICY = HashPolicy()


def stat_floor(top: Path) -> int:
    """Walk and stat every file: what any change check must at least do."""
    count = 0
    stack = [str(top)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                else:
                    count += st.st_size > -1
    return count


def settle(top: Path) -> None:
    """Files changed in the last 2 s are racy and never cached: wait until these are not."""
    newest = max(p.stat().st_ctime_ns for p in top.rglob("*"))
    wait = (newest + RACY_WINDOW_NS - time.time_ns()) / 1e9
    if wait > 0:
        time.sleep(wait + 0.1)


def run(files: int, runs: int, name: str) -> list[list[str]]:
    top = small_files(files, 1000, name)
    settle(top)
    paths = files_below(top)
    assert len(paths) == files, f"{top} holds {len(paths)} files"
    for path in paths:  # the page cache, not the disk, is what is being measured
        Path(path).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        location = Path(tmp) / "digests.sqlite3"

        def cold() -> None:
            location.unlink(missing_ok=True)
            cache = DigestCache(location)
            hash_tree(top, POLICY, cache)
            cache.close()

        def warm() -> None:
            cache = DigestCache(location)
            hash_tree(top, POLICY, cache)
            cache.close()
            assert cache.misses == 0, cache.misses

        floor = best_of(runs, lambda: stat_floor(top))
        no_cache = best_of(runs, lambda: hash_tree(top, POLICY))
        cold_time = best_of(runs, cold)
        warm_time = best_of(runs, warm)
    rows = [
        ["stat floor (walk + stat)", f"{floor * 1000:8.1f} ms", "1.00x floor"],
        ["warm (digest cache)", f"{warm_time * 1000:8.1f} ms", f"{warm_time / floor:.2f}x floor"],
        ["cold, no cache", f"{no_cache * 1000:8.1f} ms", f"{no_cache / floor:.2f}x floor"],
        [
            "cold, filling the cache",
            f"{cold_time * 1000:8.1f} ms",
            f"{cold_time / floor:.2f}x floor",
        ],
    ]
    b3sum = tool("b3sum", "Debian: apt-get install b3sum; or cargo install b3sum")
    if b3sum:
        ref = best_of(
            runs, lambda: subprocess.run([b3sum, *paths], check=True, stdout=subprocess.DEVNULL)
        )
        rows.append(["b3sum, every file", f"{ref * 1000:8.1f} ms", f"{ref / floor:.2f}x floor"])
        rows.append(["cold, no cache / b3sum", "", f"{no_cache / ref:.2f}x b3sum's time"])
        rows.append(["cold, filling / b3sum", "", f"{cold_time / ref:.2f}x b3sum's time"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"{args.files} files of 1-8 KiB in the page cache; {machine()}; best of {args.runs}")
    table(run(args.files, args.runs, f"small-{args.files}"), ["what", "time", "ratio"])


if __name__ == "__main__":
    main()
