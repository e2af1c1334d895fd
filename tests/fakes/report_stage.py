"""One stage of a small pipeline for the report tests: reads a file, writes one, may fail."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from provenance import current_run, recorded_run


@recorded_run(inputs={"data": "data"}, outputs={"out": "out"})
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--note", default="")
    parser.add_argument("--min-score", type=float, default=0.0)
    parser.add_argument("--fail", action="store_true")
    args = parser.parse_args(argv)
    data = Path(args.data).read_text()
    if args.fail:
        raise RuntimeError(f"diverged at epoch {args.epochs}: {args.note}")
    score = 0.5 + args.epochs / 10
    run = current_run()
    run.record(note=args.note, rows=len(data.splitlines()))
    run.gate("score", score >= args.min_score, value=score, threshold=args.min_score)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(f"{args.epochs} epochs of {data}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
