"""Quantize an fp32 ONNX model to int8 with onnxruntime's static post-training quantization.

Weights and activations become int8 ahead of time, their ranges calibrated on a slice of a
feature table: the first --calibration-rows rows of its --calibration-split content split
(--split-seed; ``train`` by default, so the held-out rows stay unseen), fed to onnxruntime's
calibrator through a CalibrationDataReader in batches of --calibration-batch. Writes the int8
model (--out) and its model sidecar (<out>.json unless --model-sidecar), which names the fp32
model by digest, the calibration slice (table digest, split, rows, the slice's own digest), the
quantization config and the sizes; --registry and --report-out as ptq_dynamic.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, read_parquet
from ai.features.tables import SPLITS
from ai.mos import onnx_head
from ai.mos.mos_head import MOS_SCALES, load_dataset
from ai.quantization import ptq, quant
from provenance import current_run, recorded_run

SETTINGS = (
    "weight_type",
    "activation_type",
    "per_channel",
    "reduce_range",
    "format",
    "calibrate_method",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    ptq.add_common_options(parser)
    parser.add_argument("--activation-type", choices=sorted(ptq.TYPES), help="default int8")
    parser.add_argument("--format", choices=sorted(ptq.FORMATS), help="default qdq")
    parser.add_argument(
        "--calibrate-method", choices=sorted(ptq.CALIBRATE_METHODS), help="default minmax"
    )
    parser.add_argument(
        "--calibration-table", type=Path, required=True, help="the per-clip feature parquet"
    )
    parser.add_argument("--mos-scale", choices=MOS_SCALES, default="1-5", help="the table's MOS")
    parser.add_argument(
        "--calibration-split", choices=[s for s, _ in SPLITS], default="train", help="the split"
    )
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the content split")
    parser.add_argument("--calibration-rows", type=int, default=128, help="rows in the slice")
    parser.add_argument("--calibration-batch", type=int, default=16, help="rows per batch")
    add_manifest_out(parser, "<out>")
    return parser


@recorded_run(
    inputs={
        "fp32": "fp32",
        "fp32_sidecar": ptq.fp32_sidecar_path,
        "calibration_table": "calibration_table",
        "config": "config",
    },
    outputs={
        "int8": "out",
        "model_sidecar": ptq.model_sidecar_path,
        "registry": "registry",
        "report": "report_out",
    },
    embed_into=("model_sidecar", "report"),
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.calibration_rows < 1 or args.calibration_batch < 1:
        parser.error("--calibration-rows and --calibration-batch must be at least 1")
    try:
        ptq.check_paths(args)
        config = ptq.resolve_config(ptq.STATIC, ptq.given_settings(args, SETTINGS), args.config)
        fp32_side = ptq.fp32_sidecar(ptq.fp32_sidecar_path(args))
        model = onnx_head.load(args.fp32)
        table = args.calibration_table
        data = load_dataset(table, read_parquet(table), args.mos_scale)
        if quant.features_of(model) != list(fp32_side["features"]):
            raise InputError(f"{args.fp32}: its features differ from its sidecar's")
        piece = ptq.calibration_slice(
            table, data, args.calibration_split, args.split_seed, args.calibration_rows
        )
        input_name = onnx_head.signature(model)["input_name"]
        reader = ptq.SliceReader(input_name, piece.x, args.calibration_batch)
        int8 = ptq.quantize(args.fp32, config, reader)
        calibration = {
            "table": table.name,
            "sha256": hashlib.sha256(table.read_bytes()).hexdigest(),
            "split": piece.split,
            "split_seed": piece.split_seed,
            "rows": len(piece.clips),
            "batch": args.calibration_batch,
            "first_clip": piece.clips[0],
            "last_clip": piece.clips[-1],
            "slice_sha256": piece.sha256,
        }
        sidecar = ptq.write_int8(
            args, list(sys.argv[1:] if argv is None else argv), int8, fp32_side, config,
            calibration,
        )  # fmt: skip
    except InputError as err:
        return fail(parser.prog, err)
    current_run().record(**ptq.manifest_fields(sidecar))
    return 0


if __name__ == "__main__":
    sys.exit(main())
