"""The peer a user would otherwise pick: DVC hashing the same 1 GiB file and 10,000-file folder.

DVC is installed into a throwaway environment under build/bench/ (never into the project's),
and run as users run it: `dvc add --no-commit` in a scratch repository, cold (no state) and
warm (its state database holds the stats). DVC's start-up, timed with `dvc version`, is shown
and taken off. Our side is hash_file / hash_tree in-process, cold and with the digest cache.

    python bench/dvc_peer.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import GIB, WORK, best_of, big_file, machine, small_files, table

from provenance.measure.hashing import HashPolicy, hash_file, hash_tree
from provenance.stores.digest_cache import DigestCache

VENV = WORK / "dvc-venv"


def dvc_binary() -> Path:
    dvc = VENV / "bin" / "dvc"
    if not dvc.exists():
        print(f"  (installing DVC into {VENV.relative_to(WORK.parents[1])}: once, a minute or two)")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [
                str(VENV / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "dvc",
            ],
            check=True,
        )
    return dvc


def link_tree(source: Path, target: Path) -> None:
    """Hard links: the same inodes and bytes, no copy."""
    for folder, _, files in os.walk(source):
        relative = Path(folder).relative_to(source)
        (target / relative).mkdir(parents=True, exist_ok=True)
        for name in files:
            os.link(Path(folder) / name, target / relative / name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    dvc = dvc_binary()
    version = subprocess.run([str(dvc), "version"], capture_output=True, text=True, check=True)
    print(f"{version.stdout.splitlines()[0]}; {machine()}; best of {args.runs}")
    big, folder = big_file(GIB), small_files(10_000, 1000, "small-10000")
    policy = HashPolicy()
    repo = Path(tempfile.mkdtemp(dir=WORK, prefix="dvc-repo-"))
    try:
        subprocess.run([str(dvc), "init", "--no-scm", "-q"], cwd=repo, check=True)
        os.link(big, repo / "big.bin")
        link_tree(folder, repo / "folder")

        def dvc_add(target: str, *, cold: bool) -> None:
            if cold:
                shutil.rmtree(repo / ".dvc" / "tmp", ignore_errors=True)
            subprocess.run(
                [str(dvc), "add", "--no-commit", "-q", target],
                cwd=repo,
                check=True,
                stdout=subprocess.DEVNULL,
            )

        startup = best_of(
            args.runs,
            lambda: subprocess.run([str(dvc), "version"], capture_output=True, check=True),
        )
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            location = Path(tmp) / "digests.sqlite3"

            def ours(target: Path, *, cold: bool) -> None:
                if cold:
                    location.unlink(missing_ok=True)
                cache = DigestCache(location)
                if target.is_dir():
                    hash_tree(target, policy, cache)
                else:
                    hash_file(target, policy, cache)
                cache.close()

            for label, target in (("1 GiB file", "big.bin"), ("10,000 files", "folder")):
                for cold in (True, False):
                    theirs = best_of(args.runs, lambda t=target, c=cold: dvc_add(t, cold=c))
                    mine = best_of(args.runs, lambda t=target, c=cold: ours(repo / t, cold=c))
                    net = max(theirs - startup, 1e-6)
                    rows.append(
                        [
                            label,
                            "cold" if cold else "warm",
                            f"{theirs * 1000:7.0f} ms",
                            f"{net * 1000:7.0f} ms",
                            f"{mine * 1000:7.1f} ms",
                            f"{net / mine:6.0f}x",
                        ]
                    )
        print(f"  DVC start-up (dvc version): {startup * 1000:.0f} ms")
        table(rows, ["data", "run", "dvc add", "minus start-up", "provenance", "DVC/ours"])
    finally:
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
