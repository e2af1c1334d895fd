"""A trainer whose quality gate can fail; it embeds run_provenance in its model JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", type=Path, required=True)
    parser.add_argument("--out-json", type=Path, required=True)
    parser.add_argument("--min-plcc", type=float, default=0.75)
    parser.add_argument("--plcc", type=float, default=0.9, help="the score this fake 'measures'")
    parser.add_argument("--manifest-out", type=Path)
    return parser


@recorded_run(
    inputs={"features": "features"},
    outputs={"model": "out_json"},
    embed_into="model",
)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = args.features.read_text().splitlines()
    passed = args.plcc >= args.min_plcc
    run = current_run()
    run.record(rows=len(rows), feature_order=["adm2", "motion2"])
    run.gate("plcc", passed, value=args.plcc, threshold=args.min_plcc)
    args.out_json.parent.mkdir(parents=True, exist_ok=True)
    args.out_json.write_text(json.dumps({"weights": [0.5, 0.25], "plcc": args.plcc}))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
