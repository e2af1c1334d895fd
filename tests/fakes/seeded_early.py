"""Binds set_seed to a name of its own before its run begins, as transformers scripts do."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from transformers import set_seed

from provenance import recorded_run


@recorded_run(outputs={"out": "out"})
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="seeded.txt")
    args = parser.parse_args(argv)
    set_seed(9)
    Path(args.out).write_text("seeded\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
