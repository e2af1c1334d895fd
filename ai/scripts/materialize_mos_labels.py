"""Materialize MOS labels for a feature table's clips from the aggregated MOS corpus.

Each clip of --table (by clip_name) gets the label row of --labels whose src has that basename
(of --corpus only, if given): its unified 0-100 MOS, the same on 1-5, the native MOS and scale,
the standard deviation and the rating count, and whether the label is reliable (a standard
deviation at most --max-std-dev, 0 meaning unpublished, and at least --min-ratings ratings).
Writes the label table --out (its sidecar beside it) and the audit report --report-out with the
run's provenance block. The gate: at least --min-match of the table's clips have a label. A
failed gate exits 1 with both written; an input error exits 2 with neither.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, read_parquet, write_json, write_parquet
from ai.derived.labels import materialize
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", type=Path, required=True, help="the feature table (parquet)")
    parser.add_argument("--labels", type=Path, required=True, help="the aggregated MOS JSONL")
    parser.add_argument("--corpus", help="only label rows of this corpus_source")
    parser.add_argument("--max-std-dev", type=float, default=20.0, help="reliable: std at most")
    parser.add_argument("--min-ratings", type=int, default=1, help="reliable: ratings at least")
    parser.add_argument("--min-match", type=float, default=0.95, help="labelled clips, at least")
    parser.add_argument("--out", type=Path, required=True, help="the label table (parquet)")
    parser.add_argument("--report-out", type=Path, required=True, help="the audit report JSON")
    add_manifest_out(parser, "<out>")
    return parser


@recorded_run(
    inputs={"table": "table", "labels": "labels"},
    outputs={"table": "out", "report": "report_out"},
    embed_into="report",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0.0 <= args.min_match <= 1.0:
        parser.error("--min-match must be within 0-1")
    try:
        table = read_parquet(args.table)
        done = materialize(
            args.labels, args.table, table, args.corpus, args.max_std_dev, args.min_ratings
        )
    except InputError as err:
        return fail(parser.prog, err)
    matched = done.table.num_rows
    fraction = round(matched / table.num_rows, 6) if table.num_rows else 0.0
    passed = fraction >= args.min_match
    thresholds = {
        "max_std_dev": args.max_std_dev,
        "min_ratings": args.min_ratings,
        "min_match": args.min_match,
    }
    counts = {
        "table_rows": table.num_rows,
        "label_rows": done.label_rows,
        "matched": matched,
        "match_fraction": fraction,
        "unmatched_clips": len(done.unmatched_clips),
        "unused_labels": done.unused_labels,
        "duplicate_labels": done.duplicate_labels,
        "unreliable": done.unreliable,
    }
    run = current_run()
    run.gate("label_match", passed, match_fraction=fraction, min_match=args.min_match)
    run.record(source_table=args.table, joined_labels=args.labels, corpus=args.corpus, **counts)
    write_parquet(args.out, done.table)
    write_json(
        args.report_out,
        {
            "kind": "mos_labels",
            "source_tables": {"table": args.table.name},
            "joined_inputs": {"labels": args.labels.name, "corpus": args.corpus},
            "join": {"table_key": "clip_name", "label_key": "basename(src)"},
            "thresholds": thresholds,
            "counts": counts,
            "unmatched_clips": done.unmatched_clips[:20],
            "output": {"table": args.out.name, "columns": done.table.column_names},
            "gate": {"passed": passed, "match_fraction": fraction},
        },
    )
    if not passed:
        print(f"{parser.prog}: {fraction:.3f} of the clips have a label", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
