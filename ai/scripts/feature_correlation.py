"""Rank a feature table's columns by their correlation with a target column (a signal-mix audit).

Every numeric feature column of --table (or the --columns named) gets its PLCC and SROCC with
--target; they are ranked by the absolute value of --rank-by, and the top --top-k are checked
for redundancy (pairs whose own PLCC reaches --redundancy-threshold). Each column also gets
its mutual information with --target (--mi-bins equal-count bins, in nats) and its permutation
importance in a ridge fit (--ridge-alpha) of --target on every ranked column: the rise of the
fit's MSE when that column is shuffled (--importance-repeats times, --importance-seed), over
the target's variance. The gate: every top-k
column's |correlation| is at least --min-abs-corr. A failed gate exits 1 with the report
written; an input error exits 2 with none.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, read_parquet, write_json
from ai.features.correlation import RANK_BY, Extras, rank
from provenance import current_run, recorded_run


def parse_columns(text: str) -> list[str]:
    columns = [c.strip() for c in text.split(",") if c.strip()]
    if not columns or len(set(columns)) != len(columns):
        raise argparse.ArgumentTypeError("expected distinct comma-separated column names")
    return columns


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", type=Path, required=True, help="the source feature parquet")
    parser.add_argument("--target", default="mos", help="the column to correlate with")
    parser.add_argument("--columns", type=parse_columns, help="rank only these columns")
    parser.add_argument("--rank-by", choices=RANK_BY, default="plcc", help="the ranking metric")
    parser.add_argument("--top-k", type=int, default=10, help="how many columns the gate judges")
    parser.add_argument("--min-abs-corr", type=float, default=0.5, help="floor of each top-k")
    parser.add_argument(
        "--redundancy-threshold", type=float, default=0.95, help="|PLCC| of a redundant pair"
    )
    parser.add_argument("--mi-bins", type=int, default=10, help="bins of mutual information")
    parser.add_argument(
        "--ridge-alpha", type=float, default=1.0, help="ridge of the importance fit"
    )
    parser.add_argument("--importance-repeats", type=int, default=5, help="shuffles per column")
    parser.add_argument("--importance-seed", type=int, default=0, help="seed of the shuffles")
    parser.add_argument("--out-json", type=Path, required=True, help="the ranking report")
    add_manifest_out(parser, "<out-json>")
    return parser


@recorded_run(inputs={"table": "table"}, outputs={"report": "out_json"}, embed_into="report")
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.top_k < 1:
        parser.error("--top-k must be at least 1")
    if args.mi_bins < 2:
        parser.error("--mi-bins must be at least 2")
    if args.importance_repeats < 1:
        parser.error("--importance-repeats must be at least 1")
    if args.ridge_alpha < 0:
        parser.error("--ridge-alpha must not be negative")
    extras = Extras(args.mi_bins, args.ridge_alpha, args.importance_repeats, args.importance_seed)
    try:
        ranked = rank(
            args.table,
            read_parquet(args.table),
            args.target,
            args.columns,
            args.rank_by,
            args.top_k,
            args.redundancy_threshold,
            extras,
        )
    except InputError as err:
        return fail(parser.prog, err)
    scores = ranked.top_scores()
    passed = all(s >= args.min_abs_corr for s in scores)
    parameters = {
        "target": args.target,
        "rank_by": args.rank_by,
        "top_k": args.top_k,
        "min_abs_corr": args.min_abs_corr,
        "redundancy_threshold": args.redundancy_threshold,
        "mi_bins": args.mi_bins,
        "ridge_alpha": args.ridge_alpha,
        "importance_repeats": args.importance_repeats,
        "importance_seed": args.importance_seed,
    }
    run = current_run()
    run.gate(
        "top_k_correlation",
        passed,
        weakest=min(scores),
        min_abs_corr=args.min_abs_corr,
        failing=[c for c, s in zip(ranked.top_k, scores, strict=True) if s < args.min_abs_corr],
    )
    run.record(
        source=args.table,
        rows=ranked.rows,
        parameters=parameters,
        columns_ranked=len(ranked.ranking),
        constant_columns=ranked.constant_columns,
        top_k_columns=ranked.top_k,
        redundant_pairs=len(ranked.redundant_pairs),
        most_informative=max(ranked.ranking, key=lambda e: e["mutual_information"])["column"],
        most_important=max(ranked.ranking, key=lambda e: e["permutation_importance"])["column"],
    )
    write_json(
        args.out_json,
        {
            "source": args.table.name,
            "rows": ranked.rows,
            **parameters,
            "ranking": ranked.ranking,
            "constant_columns": ranked.constant_columns,
            "top_k_columns": ranked.top_k,
            "redundant_pairs": ranked.redundant_pairs,
            "gate": {"min_abs_corr": args.min_abs_corr, "weakest": min(scores), "passed": passed},
        },
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
