"""A stand-in for torchrun, where torch is not installed: starts ``--nproc-per-node`` ranks of
a script or module with the variables torchrun gives each rank, and exits 1 if any rank failed.

It takes what ``provenance replay`` passes torchrun (``--standalone``, ``--nnodes``,
``--nproc-per-node``, ``-m``) and says what it was given on stderr, so a test can see it ran.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys


def main() -> int:
    parser = argparse.ArgumentParser(prog="torchrun")
    parser.add_argument("--standalone", action="store_true")
    parser.add_argument("--nnodes", type=int, default=1)
    parser.add_argument("--nproc-per-node", "--nproc_per_node", type=int, default=1)
    parser.add_argument("-m", "--module", action="store_true")
    parser.add_argument("script")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    print(f"fake torchrun: {args.nproc_per_node} ranks of {args.script}", file=sys.stderr)
    size = args.nproc_per_node * args.nnodes
    head = ["-m", args.script] if args.module else [args.script]
    procs = []
    for rank in range(args.nproc_per_node):
        env = dict(
            os.environ,
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(size),
            LOCAL_WORLD_SIZE=str(args.nproc_per_node),
            GROUP_RANK="0",
            GROUP_WORLD_SIZE=str(args.nnodes),
            TORCHELASTIC_RUN_ID="fake-" + str(os.getpid()),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT="29500",
        )
        procs.append(subprocess.Popen([sys.executable, *head, *args.args], env=env))
    codes = [p.wait() for p in procs]
    return 0 if all(c == 0 for c in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
