"""Builds a TSV table from several CSV shards; the sidecar defaults to <out>.manifest.json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("shards", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--labels", type=Path, help="optional label file")
    parser.add_argument("--manifest-out", type=Path)
    return parser


@recorded_run(inputs={"shards": "shards", "labels": "labels"}, outputs={"table": "out"})
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = []
    for shard in args.shards:
        lines = shard.read_text().splitlines()
        rows.extend(line.replace(",", "\t") for line in lines[1:])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(f"{row}\n" for row in sorted(rows)))
    current_run().record(row_count=len(rows), shard_count=len(args.shards))
    return 0


if __name__ == "__main__":
    sys.exit(main())
