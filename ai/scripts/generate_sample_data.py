"""Generate the bundled sample corpus: MOS shards, libvmaf caches, scores, metadata, grids."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out
from ai.sample.generator import generate
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder to write (replaced whole)")
    parser.add_argument("--seed", type=int, default=0, help="the random seed (default: 0)")
    add_manifest_out(parser, "<out>")
    return parser


@recorded_run(outputs={"sample": "out"})
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    current_run().record(seed=args.seed, written=generate(args.out, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
