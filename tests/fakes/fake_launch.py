"""A stand-in for the launchers, for machines without them: starts N ranks of a command on this
machine with the variables the real launcher sets each rank, waits for all, exits with the worst.

Each reads its command line with an argparse parser shaped as the real one (a part of its
options, the same flags for a module or a program, the same abbreviation rule), so a command the
real launcher would refuse is refused here too. What it runs is what the real one runs:

- ``torchrun`` (and ``python -m torch.distributed.run``): ``python -u [-m] SCRIPT ARGS``, or
  ``SCRIPT ARGS`` with ``--no-python``;
- ``accelerate launch``: ``python [-m] SCRIPT ARGS`` (its torch elastic agent's variables);
- ``deepspeed``: ``python -u [-m] SCRIPT --local_rank=N ARGS`` (no ``--local_rank`` with
  ``--no_local_rank``);
- ``mpirun -n N COMMAND ARGS``.

Each prints the command of rank 0 on stderr, so a test can see what ran.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence

Ranks = list[tuple[list[str], dict[str, str]]]


def _parser(prog: str, abbrev: bool = True) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, allow_abbrev=abbrev)


def _script(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("training_script")
    parser.add_argument("training_script_args", nargs=argparse.REMAINDER)


def _elastic(rank: int, size: int, per_node: int) -> dict[str, str]:
    return {
        "RANK": str(rank),
        "LOCAL_RANK": str(rank % per_node),
        "WORLD_SIZE": str(size),
        "LOCAL_WORLD_SIZE": str(per_node),
        "GROUP_RANK": str(rank // per_node),
        "GROUP_WORLD_SIZE": str(size // per_node),
        "TORCHELASTIC_RUN_ID": "fake",
        "TORCHELASTIC_RESTART_COUNT": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
    }


def torchrun_parser() -> argparse.ArgumentParser:
    """As ``torch.distributed.run.get_args_parser``."""
    parser = _parser("torchrun")
    parser.add_argument("--nnodes", default="1")
    parser.add_argument("--nproc-per-node", "--nproc_per_node", type=int, default=1)
    parser.add_argument("--master-port", "--master_port", type=int, default=29500)
    parser.add_argument("--rdzv-conf", "--rdzv_conf", default="")
    parser.add_argument("-r", "--redirects", default="0")
    parser.add_argument("--standalone", action="store_true")
    parser.add_argument("-m", "--module", action="store_true")
    parser.add_argument("--no-python", "--no_python", action="store_true")
    _script(parser)
    return parser


def torchrun(argv: Sequence[str]) -> Ranks:
    parser = torchrun_parser()
    args = parser.parse_args(argv)
    if args.module and args.no_python:
        parser.error("--module and --no-python cannot be used together")
    if args.no_python:
        command = [args.training_script]
    else:
        command = [sys.executable, "-u", *(["-m"] if args.module else []), args.training_script]
    size = args.nproc_per_node
    command += args.training_script_args
    return [(command, _elastic(rank, size, size)) for rank in range(size)]


def accelerate(argv: Sequence[str]) -> Ranks:
    if argv[:1] != ["launch"]:
        raise SystemExit(f"accelerate: only launch is faked, not {argv[:1]}")
    parser = _parser("accelerate launch", abbrev=False)
    for name in ("--num_processes", "--num_machines", "--mixed_precision", "--main_process_port"):
        parser.add_argument(name, name.replace("_", "-"))
    parser.add_argument("--multi_gpu", "--multi-gpu", action="store_true")
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.add_argument("-m", "--module", action="store_true")
    parser.add_argument("--no_python", "--no-python", action="store_true")
    _script(parser)
    args = parser.parse_args(argv[1:])
    size = int(args.num_processes or 1)
    if args.no_python:
        command = [args.training_script]
    else:
        command = [sys.executable, *(["-m"] if args.module else []), args.training_script]
    command += args.training_script_args
    accelerate_env = {"ACCELERATE_MIXED_PRECISION": args.mixed_precision or "no"}
    return [(command, {**_elastic(r, size, size), **accelerate_env}) for r in range(size)]


def deepspeed(argv: Sequence[str]) -> Ranks:
    parser = _parser("deepspeed")
    parser.add_argument("-H", "--hostfile", default="/job/hostfile")
    parser.add_argument("-i", "--include", default="")
    parser.add_argument("--num_gpus", "--num_accelerators", type=int, default=1)
    parser.add_argument("--num_nodes", type=int, default=-1)
    parser.add_argument("--master_port", type=int, default=29500)
    parser.add_argument("--launcher", default="pdsh")
    parser.add_argument("--module", action="store_true")
    parser.add_argument("--no_python", action="store_true")
    parser.add_argument("--no_local_rank", action="store_true")
    parser.add_argument("--force_multi", action="store_true")
    _script(parser)
    args = parser.parse_args(argv)
    size = args.num_gpus
    ranks: Ranks = []
    for rank in range(size):
        if args.no_python:
            command = [args.training_script]
        else:
            command = [sys.executable, "-u", *(["-m"] if args.module else []), args.training_script]
        if not args.no_local_rank:
            command.append(f"--local_rank={rank}")
        env = {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(size),
            "LOCAL_SIZE": str(size),
            "CROSS_RANK": "0",
            "CROSS_SIZE": "1",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(args.master_port),
        }
        ranks.append(([*command, *args.training_script_args], env))
    return ranks


def mpirun(argv: Sequence[str]) -> Ranks:
    size, command = int(argv[1]), list(argv[2:])
    return [
        (
            command,
            {
                "PMIX_NAMESPACE": "fake",
                "OMPI_COMM_WORLD_RANK": str(rank),
                "OMPI_COMM_WORLD_SIZE": str(size),
            },
        )
        for rank in range(size)
    ]


LAUNCHERS = {"torchrun": torchrun, "accelerate": accelerate, "deepspeed": deepspeed}


def start(ranks: Ranks) -> int:
    print(f"fake launcher runs: {ranks[0][0]}", file=sys.stderr)
    procs = [subprocess.Popen(command, env=dict(os.environ, **env)) for command, env in ranks]
    return max(p.wait() for p in procs)


def main() -> int:
    name = os.path.basename(sys.argv[0])
    return start(LAUNCHERS.get(name, mpirun)(sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
