"""Calibrate the --fast-nr threshold: the NR model score above which VMAF need not be measured.

Reads the libvmaf JSON of every encode in --corpus-dir (its vmaf_cache/ when it has one: the
actual folder is recorded beside the requested one) at a CRF of --crf-grid, runs the NR model
(--model, an ONNX MOS head, with its model sidecar for the input order) on each encode's mean
features, and picks the lowest score whose encodes meet --vmaf-target at --min-precision. Writes
the threshold JSON (--out-json) and a Markdown report (--report-md). The gate: a threshold
exists and its recall is at least --min-recall. A failed gate exits 1 with both written; an
input error exits 2 with neither.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_json
from ai.mos import onnx_head
from ai.tune.nr_threshold import (
    actual_corpus,
    choose,
    markdown,
    per_crf,
    read_encodes,
    read_model_sidecar,
)
from provenance import atomic_write, current_run, recorded_run


def crf_grid(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated CRFs") from None
    if not values or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected distinct CRFs")
    return sorted(values)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus-dir", type=Path, required=True, help="the encodes' libvmaf JSON")
    parser.add_argument("--model", type=Path, required=True, help="the NR model ONNX")
    parser.add_argument("--model-sidecar", type=Path, help="its sidecar (default: <model>.json)")
    parser.add_argument("--crf-grid", type=crf_grid, default=[22, 27, 32, 37], help="CRFs")
    parser.add_argument("--vmaf-target", type=float, default=70.0, help="VMAF a skip must meet")
    parser.add_argument("--min-precision", type=float, default=0.95, help="of the skipped")
    parser.add_argument("--min-recall", type=float, default=0.5, help="of the good encodes")
    parser.add_argument("--out-json", type=Path, required=True, help="the threshold JSON")
    parser.add_argument("--report-md", type=Path, required=True, help="the Markdown report")
    add_manifest_out(parser, "<out-json>")
    return parser


def model_sidecar_path(args: argparse.Namespace) -> Path:
    given: Path | None = args.model_sidecar
    return given or Path(args.model).with_suffix(".json")


@recorded_run(
    inputs={"corpus": "corpus_dir", "model": "model", "model_sidecar": model_sidecar_path},
    outputs={"thresholds": "out_json", "report": "report_md"},
    embed_into="thresholds",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        actual = actual_corpus(args.corpus_dir)
        current_run().add_input("actual_corpus", actual)
        nr_model = read_model_sidecar(model_sidecar_path(args))
        width = onnx_head.signature(onnx_head.load(args.model))["input_shape"][-1]
        if width != len(nr_model.features):
            raise InputError(
                f"{args.model}: takes {width} inputs, its sidecar names {len(nr_model.features)}"
            )
        encodes = read_encodes(actual, args.crf_grid, nr_model.features)
        scores = onnx_head.run(args.model, encodes.x)
    except InputError as err:
        return fail(parser.prog, err)
    chosen = choose(scores, encodes.vmaf, args.vmaf_target, args.min_precision)
    passed = chosen.threshold is not None and (chosen.recall or 0.0) >= args.min_recall
    model = {
        "path": args.model.name,
        "id": nr_model.model_id,
        "sha256": hashlib.sha256(args.model.read_bytes()).hexdigest(),
        "features": nr_model.features,
        "zero_filled": encodes.zero_filled,
    }
    corpus = {
        "requested": str(args.corpus_dir),
        "actual": str(actual),
        "encodes": len(encodes.names),
        "outside_grid": encodes.skipped,
    }
    figures = {
        "threshold": chosen.threshold,
        "precision": chosen.precision,
        "recall": chosen.recall,
        "skipped_fraction": chosen.skipped_fraction,
    }
    run = current_run()
    run.gate("nr_threshold", passed, **figures, min_precision=args.min_precision,
             min_recall=args.min_recall)  # fmt: skip
    run.record(
        requested_corpus=args.corpus_dir,
        actual_corpus=actual,
        model_id=nr_model.model_id,
        crf_grid=args.crf_grid,
        vmaf_target=args.vmaf_target,
        encodes=len(encodes.names),
        **figures,
    )
    document = {
        "kind": "nr_threshold",
        "model": model,
        "corpus": corpus,
        "crf_grid": args.crf_grid,
        "vmaf_target": args.vmaf_target,
        "min_precision": args.min_precision,
        "min_recall": args.min_recall,
        "per_crf": per_crf(encodes, scores, args.crf_grid),
        **figures,
        "report": args.report_md.name,
        "gate": {"passed": passed},
    }
    atomic_write(args.report_md, markdown(document).encode("utf-8"))
    write_json(args.out_json, document)
    if not passed:
        print(f"{parser.prog}: no threshold meets precision {args.min_precision:g} with recall "
              f"{args.min_recall:g}", file=sys.stderr)  # fmt: skip
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
