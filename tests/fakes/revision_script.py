"""Copies its input to its output upper-cased, as a small data step kept in git does."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from provenance import recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    return parser


@recorded_run(inputs={"data": "data"}, outputs={"out": "out"})
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.out.write_text(args.data.read_text().upper())
    return 0


if __name__ == "__main__":
    sys.exit(main())
