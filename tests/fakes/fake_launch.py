"""A stand-in for torchrun and mpirun, for machines without them: starts N ranks of a command
on this machine with the variables the real launcher sets, waits for all, exits with the worst.

Named ``torchrun``: ``torchrun --nproc-per-node N [-m MODULE | SCRIPT] ARGS...``.
Named ``mpirun``: ``mpirun -n N COMMAND ARGS...``.
"""

from __future__ import annotations

import os
import subprocess
import sys


def _torchrun(argv: list[str]) -> tuple[int, list[str], dict[str, str]]:
    size, at = 1, 0
    while argv[at].startswith("--nproc"):
        size, at = int(argv[at].partition("=")[2]), at + 1
    if argv[at] == "-m":
        command = [sys.executable, "-m", *argv[at + 1 :]]
    else:
        command = [sys.executable, *argv[at:]]
    job = {"TORCHELASTIC_RUN_ID": "fake", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    return size, command, job


def main() -> int:
    name = os.path.basename(sys.argv[0])
    argv = sys.argv[1:]
    if name == "torchrun":
        size, command, job = _torchrun(argv)
        rank_vars = ("RANK", "WORLD_SIZE")
    else:
        size, command, job = int(argv[1]), argv[2:], {"PMIX_NAMESPACE": "fake"}
        rank_vars = ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE")
    procs = [
        subprocess.Popen(
            command, env=dict(os.environ, **job, **{rank_vars[0]: str(r), rank_vars[1]: str(size)})
        )
        for r in range(size)
    ]
    return max(p.wait() for p in procs)


if __name__ == "__main__":
    sys.exit(main())
