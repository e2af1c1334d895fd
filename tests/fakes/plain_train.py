"""A training script with argparse and nothing of provenance in it, as most scripts are."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--end", choices=["return", "raise", "exit", "wait", "gate"])
    args = parser.parse_args(argv)
    data = Path(args.data).read_text().strip()
    Path(args.out).write_text(f"model of {data} after {args.epochs} epochs\n")
    print(f"trained {args.epochs} epochs")
    if args.end == "wait":  # until a signal comes: <out>.ready says it is under way
        Path(f"{args.out}.ready").write_text("ready\n")
        time.sleep(120)
    if args.end == "raise":
        raise RuntimeError(f"diverged at epoch {args.epochs}")
    if args.end == "exit":
        return 3
    if args.end == "gate":
        from provenance import current_run

        current_run().gate("rmse", passed=False, value=0.9, threshold=0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
