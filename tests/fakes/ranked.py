"""A training script as each rank of a distributed launch runs it: one argv for every rank.

The rank comes from the launcher's environment, as a real script reads it; the options say what
each rank does (rank 0 saves the model, one rank fails, one is killed). ``RANKED_LATE=R:S`` makes
rank R end S seconds later, outside argv, so that the same command can end in another order.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import time
from pathlib import Path

from provenance import current_run, recorded_run

_RANK_VARIABLES = ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "SLURM_PROCID")


def this_rank() -> int:
    for name in _RANK_VARIABLES:
        if name in os.environ:
            return int(os.environ[name])
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True, help="the model, saved by --save-rank")
    parser.add_argument("--save-rank", type=int, default=0, help="-1: every rank saves it")
    parser.add_argument(
        "--c-write-rank",
        type=int,
        default=-1,
        help="saves the model through libc, unheard by Python (torch.save writes from C++)",
    )
    parser.add_argument("--logs", action="store_true", help="each rank declares log.rank{N}.txt")
    parser.add_argument("--fail-rank", type=int, default=-1)
    parser.add_argument("--kill-rank", type=int, default=-1, help="SIGKILLs itself")
    parser.add_argument("--hang-rank", type=int, default=-1, help="waits until signalled")
    parser.add_argument(
        "--broken-rank", type=int, default=-1, help="fails once --broken-when exists"
    )
    parser.add_argument(
        "--broken-when",
        type=Path,
        help="made by the launcher once a failed rank's process is gone: its peers' connections"
        " to it close then",
    )
    parser.add_argument("--ready", type=Path, help="a folder each rank touches once under way")
    parser.add_argument(
        "--ranks",
        type=int,
        default=0,
        help="with --ready: --fail-rank fails only once this many ranks are under way",
    )
    return parser


def _write_from_c(path: Path, data: bytes) -> None:
    """Write ``path`` as a C library does: libc's open(2), which no Python audit hook hears."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int]
    fd = libc.open(os.fsencode(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    if fd < 0:
        raise OSError(ctypes.get_errno(), f"cannot write {path}")
    libc.write(fd, data, len(data))
    libc.close(fd)


@recorded_run(outputs={"model": "out"})
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rank = this_rank()
    if args.logs:
        log = args.out.with_name(f"log.rank{rank}.txt")
        current_run().add_output("log", log)
        log.write_text(f"rank {rank} trained\n")
    if args.save_rank in (rank, -1):
        args.out.write_text('{"weights": [1, 2, 3]}\n')
    if args.c_write_rank == rank:
        _write_from_c(args.out, b'{"weights": [4, 5, 6]}\n')
    current_run().record(rows=3)
    if args.ready is not None:
        (args.ready / f"rank{rank}").write_text("ready\n")
    for late in os.environ.get("RANKED_LATE", "").split(","):  # "rank:seconds,..."
        late_rank, _, late_s = late.partition(":")
        if late_rank and rank == int(late_rank):
            time.sleep(float(late_s))
    if rank == args.kill_rank:
        os.kill(os.getpid(), signal.SIGKILL)
    if rank == args.hang_rank:
        time.sleep(60)
    if rank == args.broken_rank and args.broken_when is not None:
        deadline = time.monotonic() + 60
        while not args.broken_when.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        raise RuntimeError("Connection closed by peer")
    if rank == args.fail_rank:
        deadline = time.monotonic() + 60
        while args.ready is not None and len(os.listdir(args.ready)) < args.ranks:
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        raise RuntimeError(f"rank {rank} ran out of memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
