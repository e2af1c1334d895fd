"""Validate an exported MOS head: onnxruntime against numpy, and a PLCC gate on held-out rows.

Held-out rows are the ``test`` content split of --split-seed, the rows the trainer left out.
Exits 0 when parity and the gate pass, 1 when either fails (the report is written either way),
2 on an input error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, read_parquet, write_json
from ai.mos import onnx_head
from ai.mos.mos_head import (
    MOS_SCALES,
    holdout_mask,
    load_checkpoint,
    load_dataset,
    plcc,
    rmse,
    srocc,
)
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--onnx", type=Path, required=True, help="the exported model")
    parser.add_argument("--checkpoint", type=Path, required=True, help="the .npz it came from")
    parser.add_argument("--table", type=Path, required=True, help="the per-clip feature parquet")
    parser.add_argument("--mos-scale", choices=MOS_SCALES, default="1-5", help="the table's MOS")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the held-out split")
    parser.add_argument("--min-plcc", type=float, default=0.75, help="gate on held-out PLCC")
    parser.add_argument("--parity-tol", type=float, default=1e-4, help="max |onnx - numpy| MOS")
    parser.add_argument("--out-json", type=Path, required=True, help="the report to write")
    add_manifest_out(parser, "<out-json>")
    return parser


@recorded_run(
    inputs={"onnx": "onnx", "checkpoint": "checkpoint", "table": "table"},
    outputs={"report": "out_json"},
    embed_into="report",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        head, features = load_checkpoint(args.checkpoint)
        model = onnx_head.load(args.onnx)
        exported = dict((p.key, p.value) for p in model.metadata_props).get("features", "")
        if exported.split(",") != list(features):
            raise InputError(
                f"{args.onnx} was not exported from {args.checkpoint}: its features differ"
            )
        data = load_dataset(args.table, read_parquet(args.table), args.mos_scale)
        held_out = holdout_mask(data.clips, args.split_seed)
        if held_out.sum() < 3:
            raise InputError(f"{args.table}: only {int(held_out.sum())} held-out rows")
        x, y = data.x[held_out], data.y[held_out]
        by_onnx = onnx_head.run(args.onnx, x)
    except InputError as err:
        return fail(parser.prog, err)
    by_numpy = head.predict(x)
    max_diff = float(np.max(np.abs(by_onnx - by_numpy)))
    metrics = {
        "plcc": round(plcc(by_onnx, y), 6),
        "srocc": round(srocc(by_onnx, y), 6),
        "rmse": round(rmse(by_onnx, y), 6),
    }
    parity = max_diff <= args.parity_tol
    gate = metrics["plcc"] >= args.min_plcc
    run = current_run()
    run.gate("parity", parity, max_abs_diff=max_diff, tolerance=args.parity_tol)
    run.gate("held_out_plcc", gate, plcc=metrics["plcc"], min_plcc=args.min_plcc)
    run.record(held_out_rows=int(held_out.sum()), **metrics)
    write_json(
        args.out_json,
        {
            "onnx": args.onnx.name,
            "checkpoint": args.checkpoint.name,
            "held_out_rows": int(held_out.sum()),
            "split_seed": args.split_seed,
            "parity": {"max_abs_diff": max_diff, "tolerance": args.parity_tol, "passed": parity},
            **metrics,
            "gate": {"min_plcc": args.min_plcc, "passed": gate},
            "verdict": "PASS" if parity and gate else "FAIL",
        },
    )
    return 0 if parity and gate else 1


if __name__ == "__main__":
    sys.exit(main())
