"""Writes the colour its environment names, importing numpy when asked, as a GPU job reads
CUDA_VISIBLE_DEVICES and imports its array library."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from provenance import recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--numpy", action="store_true", help="import numpy, as real work does")
    parser.add_argument("--show", action="append", default=[], help="also write this variable")
    return parser


@recorded_run(
    outputs={"out": "out"},
    environment=["FAKE_COLOR", "FAKE_API_TOKEN", "FAKE_NEVER_SET"],
)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.numpy:
        import numpy  # noqa: F401 -- imported for the record's distributions, not used
    shown = "".join(f"{name} {os.environ.get(name, '(unset)')}\n" for name in args.show)
    args.out.write_text(f"colour {os.environ.get('FAKE_COLOR', 'none')}\n{shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
