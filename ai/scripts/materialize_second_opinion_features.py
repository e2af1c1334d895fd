"""Materialize second-opinion features: a shipped MOS head's score of each clip of a table.

Every clip of --table is scored by the MOS head --model (ONNX, over the head's 11 inputs; an
input the table lacks falls back as in training); the table's own MOS (--mos-scale, mapped to
1-5) is the first opinion. Writes --out (clip_name, mos, second_opinion_mos, disagreement,
agrees: |disagreement| at most --max-disagreement), its sidecar beside it, and the audit
report --report-out with the run's provenance block: PLCC, SROCC and RMSE of the two opinions
and the fraction that agree. The gate: that fraction is at least --min-agreement. A failed gate
exits 1 with both written; an input error exits 2 with neither.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, read_parquet, write_json, write_parquet
from ai.derived.second_opinion import materialize
from ai.mos.mos_head import MOS_SCALES
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", type=Path, required=True, help="the feature table (parquet)")
    parser.add_argument("--mos-scale", choices=MOS_SCALES, default="1-5", help="the table's MOS")
    parser.add_argument("--model", type=Path, required=True, help="the MOS head (ONNX)")
    parser.add_argument("--max-disagreement", type=float, default=0.5, help="agree: MOS apart")
    parser.add_argument("--min-agreement", type=float, default=0.5, help="agreeing, at least")
    parser.add_argument("--out", type=Path, required=True, help="the feature table (parquet)")
    parser.add_argument("--report-out", type=Path, required=True, help="the audit report JSON")
    add_manifest_out(parser, "<out>")
    return parser


@recorded_run(
    inputs={"table": "table", "model": "model"},
    outputs={"table": "out", "report": "report_out"},
    embed_into="report",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0.0 <= args.min_agreement <= 1.0:
        parser.error("--min-agreement must be within 0-1")
    if args.max_disagreement < 0:
        parser.error("--max-disagreement must not be negative")
    try:
        done = materialize(
            args.table, read_parquet(args.table), args.mos_scale, args.model, args.max_disagreement
        )
    except InputError as err:
        return fail(parser.prog, err)
    passed = done.agreement >= args.min_agreement
    thresholds = {"max_disagreement": args.max_disagreement, "min_agreement": args.min_agreement}
    measures = {
        "rows": done.table.num_rows,
        "plcc": done.plcc,
        "srocc": done.srocc,
        "rmse": done.rmse,
        "agreement": done.agreement,
    }
    run = current_run()
    run.gate("second_opinion_agreement", passed, **measures, **thresholds)
    run.record(source_table=args.table, joined_model=args.model, **measures)
    write_parquet(args.out, done.table)
    write_json(
        args.report_out,
        {
            "kind": "second_opinion_features",
            "source_tables": {"table": args.table.name, "mos_scale": args.mos_scale},
            "joined_inputs": {"model": args.model.name, "inputs_from": done.inputs_from},
            "thresholds": thresholds,
            "measures": measures,
            "output": {"table": args.out.name, "columns": done.table.column_names},
            "gate": {"passed": passed, "agreement": done.agreement},
        },
    )
    if not passed:
        print(f"{parser.prog}: {done.agreement:.3f} of the clips agree", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
