"""Block-level (macroblock / CTU) IoU between predicted and ground-truth saliency masks.

Pairs <pred-dir>/<stem>.npy|.pgm with <gt-dir>/<stem>.npy|.pgm, marks a block salient when
its mean reaches --threshold, and reports per-pair IoU, their mean (macro) and the pooled
Σ intersection / Σ union (micro): sorted-key JSON to --out-json (with the run's provenance)
or to stdout (the sidecar then goes to <pred-dir>.eval.manifest.json). Exits 0; 2 on an
input error (no pairs, mismatched shapes, a bad block size or threshold; nothing written).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_json
from ai.saliency.blocks import evaluate, pairs
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pred-dir", type=Path, required=True, help="predicted masks")
    parser.add_argument("--gt-dir", type=Path, required=True, help="ground-truth masks")
    parser.add_argument("--block-size", type=int, default=16, help="block side in pixels")
    parser.add_argument("--threshold", type=float, default=0.5, help="salient block mean")
    parser.add_argument("--out-json", type=Path, help="the report (default: stdout)")
    add_manifest_out(parser, "<out-json>, or <pred-dir>.eval without --out-json")
    return parser


def sidecar_path(args: argparse.Namespace) -> Path | None:
    if args.manifest_out is not None or args.out_json is not None:
        return args.manifest_out  # type: ignore[no-any-return]
    pred: Path = args.pred_dir
    return pred.with_name(f"{pred.name}.eval.manifest.json")


@recorded_run(
    inputs={"pred_dir": "pred_dir", "gt_dir": "gt_dir"},
    outputs={"report": "out_json"},
    manifest=sidecar_path,
    embed_into="report",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        report = evaluate(pairs(args.pred_dir, args.gt_dir), args.block_size, args.threshold)
    except InputError as err:
        return fail(parser.prog, err)
    report["rows"] = [dict(sorted(row.items())) for row in report["rows"]]
    report = dict(sorted(report.items()))
    current_run().record(n_pairs=report["n_pairs"], macro_iou=report["macro_iou"],
                         micro_iou=report["micro_iou"])  # fmt: skip
    if args.out_json is not None:
        write_json(args.out_json, report)
    else:
        print(json.dumps(report, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
