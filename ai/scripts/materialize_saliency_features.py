"""Materialize saliency features for a feature table's clips from their libvmaf measurements.

For each clip of --table, its cached libvmaf JSON (<clip_name>.json in --cache-dir) gives a
per-frame conspicuity (motion and lost detail, see ai.derived.saliency); the clip's row holds
saliency_mean and saliency_var (the MOS head's inputs), the fraction of peak frames and the
frame count. Writes --out, its sidecar beside it, and the audit report --report-out with the
run's provenance block. The gate: at least --min-coverage of the clips have a measurement. A
failed gate exits 1 with both written; an input error exits 2 with neither.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, read_parquet, write_json, write_parquet
from ai.derived.saliency import MOTION_HALF, materialize
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", type=Path, required=True, help="the feature table (parquet)")
    parser.add_argument("--cache-dir", type=Path, required=True, help="libvmaf JSON per clip")
    parser.add_argument("--min-coverage", type=float, default=0.95, help="measured clips")
    parser.add_argument("--out", type=Path, required=True, help="the feature table (parquet)")
    parser.add_argument("--report-out", type=Path, required=True, help="the audit report JSON")
    add_manifest_out(parser, "<out>")
    return parser


@recorded_run(
    inputs={"table": "table", "cache": "cache_dir"},
    outputs={"table": "out", "report": "report_out"},
    embed_into="report",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0.0 <= args.min_coverage <= 1.0:
        parser.error("--min-coverage must be within 0-1")
    if not args.cache_dir.is_dir():
        return fail(parser.prog, InputError(f"{args.cache_dir}: no such folder"))
    try:
        table = read_parquet(args.table)
        done = materialize(args.table, table, args.cache_dir)
    except InputError as err:
        return fail(parser.prog, err)
    rows = done.table.num_rows
    coverage = round(rows / table.num_rows, 6) if table.num_rows else 0.0
    passed = coverage >= args.min_coverage
    counts = {"table_rows": table.num_rows, "rows": rows, "missing": len(done.missing)}
    run = current_run()
    run.gate("saliency_coverage", passed, coverage=coverage, min_coverage=args.min_coverage)
    run.record(source_table=args.table, joined_cache=args.cache_dir, coverage=coverage, **counts)
    write_parquet(args.out, done.table)
    write_json(
        args.report_out,
        {
            "kind": "saliency_features",
            "source_tables": {"table": args.table.name},
            "joined_inputs": {"cache_dir": args.cache_dir.name, "per_clip": "<clip_name>.json"},
            "method": {
                "frame": "0.5*motion2/(motion2+h) + 0.5*(1-adm2)",
                "h": MOTION_HALF,
                "peak": "frame above the clip's mean plus one standard deviation",
            },
            "thresholds": {"min_coverage": args.min_coverage},
            "counts": {**counts, "coverage": coverage},
            "missing_clips": done.missing[:20],
            "output": {"table": args.out.name, "columns": done.table.column_names},
            "gate": {"passed": passed, "coverage": coverage},
        },
    )
    if not passed:
        print(f"{parser.prog}: {coverage:.3f} of the clips were measured", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
