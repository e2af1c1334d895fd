"""PyTorch's multigpu_torchrun.py example in small, on the CPU with gloo: DDP training where only
rank 0 saves the checkpoint with torch.save, which writes it from C++. ``--fail-rank R`` makes
rank R raise before the last collective, so that the others' collectives fail after it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from provenance import recorded_run


@recorded_run(outputs={"checkpoint": "snapshot"})
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--snapshot", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--fail-rank", type=int, default=-1)
    args = parser.parse_args(argv)
    dist.init_process_group(backend="gloo")  # env:// from torchrun's variables
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = DistributedDataParallel(torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.arange(32, dtype=torch.float32).reshape(8, 4) / 32
    for _ in range(args.epochs):
        optimizer.zero_grad()
        model(data).sum().backward()  # gradients all-reduced across the ranks
        optimizer.step()
    if rank == args.fail_rank:
        raise ValueError(f"rank {rank} found a bad batch")
    dist.barrier()
    if rank == 0:
        torch.save(model.module.state_dict(), str(args.snapshot))
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
