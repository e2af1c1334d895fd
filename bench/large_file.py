"""A 1 GiB file in the page cache: our BLAKE3 path against b3sum, our SHA-256 path against openssl.

Also the cost of SHA-256 by file size, which sets HashPolicy's default threshold.

    python bench/large_file.py [--runs N]
"""

from __future__ import annotations

import argparse
import hashlib

from benchlib import GIB, best_of, big_file, command, gbps, machine, table, tool

from provenance.measure.hashing import HashPolicy, hash_file

BLAKE3_ONLY = HashPolicy(sha256_max_bytes=0)
BOTH = HashPolicy(sha256_max_bytes=2**62)


def sha256_alone(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        while chunk := handle.read(4 * 1024**2):
            digest.update(chunk)
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    path = big_file(GIB)
    print(f"1 GiB in the page cache; {machine()}; best of {args.runs}")
    ours_b3 = best_of(args.runs, lambda: hash_file(path, BLAKE3_ONLY))
    ours_both = best_of(args.runs, lambda: hash_file(path, BOTH))
    rows = []
    b3sum = tool("b3sum", "Debian: apt-get install b3sum; or cargo install b3sum")
    if b3sum:
        theirs = best_of(args.runs, command([b3sum, str(path)]))
        rows.append(
            [
                "BLAKE3",
                "hash_file (mapped, threads)",
                gbps(GIB, ours_b3),
                "b3sum",
                gbps(GIB, theirs),
                f"{theirs / ours_b3:.2f}x",
            ]
        )
    openssl = tool("openssl", "install OpenSSL")
    if openssl:
        theirs = best_of(args.runs, command([openssl, "dgst", "-sha256", str(path)]))
        rows.append(
            [
                "SHA-256",
                "hash_file (both in one pass)",
                gbps(GIB, ours_both),
                "openssl dgst -sha256",
                gbps(GIB, theirs),
                f"{theirs / ours_both:.2f}x",
            ]
        )
        alone = best_of(args.runs, lambda: sha256_alone(str(path)))
        rows.append(
            [
                "SHA-256",
                "hashlib alone",
                gbps(GIB, alone),
                "openssl dgst -sha256",
                gbps(GIB, theirs),
                f"{theirs / alone:.2f}x",
            ]
        )
    table(rows, ["digest", "ours", "throughput", "reference", "throughput", "ours/ref speed"])
    print()
    print("What SHA-256 adds by file size (the SHA-256 threshold):")
    sizes = [64 * 1024**2, 256 * 1024**2, GIB]
    cost_rows = []
    for size in sizes:
        part = big_file(size)
        alone = best_of(args.runs, lambda p=part: hash_file(p, BLAKE3_ONLY))
        both = best_of(args.runs, lambda p=part: hash_file(p, BOTH))
        cost_rows.append(
            [
                f"{size // 1024**2} MiB",
                f"{alone * 1000:7.1f} ms",
                f"{both * 1000:7.1f} ms",
                f"+{(both - alone) * 1000:6.1f} ms",
                f"{both / alone:4.1f}x",
            ]
        )
    table(cost_rows, ["size", "BLAKE3 alone", "BLAKE3+SHA-256", "SHA-256 adds", "ratio"])


if __name__ == "__main__":
    main()
