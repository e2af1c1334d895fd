"""Gate the PLCC drop from an fp32 ONNX model to its int8 quantization, on held-out rows.

Both models run with onnxruntime (--provider, the CPU by default) on the ``test`` content split
of --split-seed, the rows neither training nor calibration saw; each is scored against the MOS
(PLCC, SROCC, RMSE). The gate: fp32 PLCC - int8 PLCC <= --max-plcc-drop (0.01). Writes the
report (--out-json) either way; exits 0 when the gate passes, 1 when it fails, 2 on an input
error (no report). The int8 model must have been exported with the fp32 model's features.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, read_parquet, write_json
from ai.mos import onnx_head
from ai.mos.mos_head import MOS_SCALES, holdout_mask, load_dataset
from ai.quantization import quant
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--fp32", type=Path, required=True, help="the fp32 ONNX model")
    parser.add_argument("--int8", type=Path, required=True, help="its int8 quantization")
    parser.add_argument("--table", type=Path, required=True, help="the per-clip feature parquet")
    parser.add_argument("--mos-scale", choices=MOS_SCALES, default="1-5", help="the table's MOS")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the held-out split")
    parser.add_argument(
        "--max-plcc-drop", type=float, default=quant.MAX_PLCC_DROP, help="the gate (0.01)"
    )
    parser.add_argument(
        "--provider", default="CPUExecutionProvider", help="onnxruntime execution provider"
    )
    parser.add_argument("--out-json", type=Path, required=True, help="the report to write")
    add_manifest_out(parser, "<out-json>")
    return parser


@recorded_run(
    inputs={"fp32": "fp32", "int8": "int8", "table": "table"},
    outputs={"report": "out_json"},
    embed_into="report",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        fp32_model, int8_model = onnx_head.load(args.fp32), onnx_head.load(args.int8)
        if quant.features_of(fp32_model) != quant.features_of(int8_model):
            raise InputError(f"{args.int8} is not a quantization of {args.fp32}: features differ")
        if args.provider not in quant.available_providers():
            raise InputError(f"--provider {args.provider}: not available in this onnxruntime")
        data = load_dataset(args.table, read_parquet(args.table), args.mos_scale)
        held_out = holdout_mask(data.clips, args.split_seed)
        if held_out.sum() < 3:
            raise InputError(f"{args.table}: only {int(held_out.sum())} held-out rows")
        x, y = data.x[held_out], data.y[held_out]
        by_fp32 = onnx_head.run(args.fp32, x, args.provider)
        by_int8 = onnx_head.run(args.int8, x, args.provider)
    except InputError as err:
        return fail(parser.prog, err)
    measured = quant.drop(by_fp32, by_int8, y)
    passed = measured["plcc_drop"] <= args.max_plcc_drop
    size = quant.sizes(args.fp32.stat().st_size, args.int8.stat().st_size)
    run = current_run()
    run.gate(
        "quant_plcc_drop", passed, plcc_drop=measured["plcc_drop"], max_plcc_drop=args.max_plcc_drop
    )
    run.record(rows=int(held_out.sum()), provider=args.provider, **measured, size=size)
    write_json(
        args.out_json,
        {
            "fp32": {"onnx": args.fp32.name, **measured["fp32"]},
            "int8": {"onnx": args.int8.name, **measured["int8"]},
            "rows": int(held_out.sum()),
            "split_seed": args.split_seed,
            "provider": args.provider,
            "plcc_drop": measured["plcc_drop"],
            "agreement_plcc": measured["agreement_plcc"],
            "max_abs_diff": measured["max_abs_diff"],
            "size": size,
            "gate": {"max_plcc_drop": args.max_plcc_drop, "passed": passed},
            "verdict": "PASS" if passed else "FAIL",
        },
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
