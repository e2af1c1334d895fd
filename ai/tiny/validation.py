"""What the tiny smoke validators share: PLCC / RMSE of an ONNX on a table's first rows.

A report (and the run's record) is written only when ``--out-json`` or ``--manifest-out`` is
given; without either the validator prints its verdict and exits as the fork's does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, read_parquet, write_json
from ai.mos.mos_head import plcc, rmse
from ai.tiny.data import frames_of
from ai.tiny.models import INPUT_NAME
from provenance import current_run

# The comparison models each version's validator may diff against, and whether that model
# wants its features z-scored on the slice itself (v1 had no scaler in its graph).
COMPARISONS: dict[str, tuple[tuple[str, bool], ...]] = {
    "v2": (("v1", True),),
    "v3": (("v2", False),),
    "v4": (("v2", False), ("v3", False)),
}


def build_parser(doc: str | None, version: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--onnx", type=Path, required=True, help="the exported model")
    parser.add_argument("--parquet", type=Path, required=True, help="the per-frame table")
    parser.add_argument("--rows", type=int, default=100, help="first rows scored (default 100)")
    parser.add_argument("--min-plcc", type=float, default=0.97, help="gate (default 0.97)")
    parser.add_argument("--input-name", default=INPUT_NAME, help="the model's input name")
    for other, _ in COMPARISONS[version]:
        parser.add_argument(
            f"--{other}-onnx", type=Path, help=f"vmaf_tiny_{other} ONNX to diff against"
        )
    parser.add_argument("--out-json", type=Path, help="write the report (and the run's record)")
    add_manifest_out(parser, "<out-json>")
    return parser


def records(args: argparse.Namespace) -> bool:
    """Whether this run keeps evidence: only when it was asked where to put it."""
    return args.out_json is not None or args.manifest_out is not None


def comparison_inputs(version: str) -> dict[str, str]:
    return {f"{other}_onnx": f"{other}_onnx" for other, _ in COMPARISONS[version]}


def _run(path: Path, name: str | None, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort  # seconds to import: only here

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = name if name is not None else session.get_inputs()[0].name
    (out,) = session.run(None, {feed: x.astype(np.float32)})[:1]
    return np.asarray(out, dtype=np.float64).reshape(-1)


def _compare(path: Path, x: np.ndarray, ours: np.ndarray, standardise: bool) -> dict[str, Any]:
    """Mean and largest absolute difference ours - theirs; an error is reported, not fatal."""
    if standardise:
        std = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(std < 1e-8, 1.0, std)
    try:
        theirs = _run(path, None, x)
        delta = ours - theirs
    except Exception as err:  # noqa: BLE001 - the fork keeps going whatever the other model does
        return {"onnx": str(path), "error": str(err).splitlines()[0] if str(err) else repr(err)}
    return {
        "onnx": str(path),
        "delta_mean": round(float(delta.mean()), 6),
        "delta_max_abs": round(float(np.abs(delta).max()), 6),
    }


def validate(version: str, parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.rows < 2:
        parser.error("--rows must be at least 2")
    try:
        frames = frames_of(args.parquet, read_parquet(args.parquet).slice(0, args.rows))
        if not args.onnx.is_file():
            raise InputError(f"{args.onnx}: no such file")
        try:
            predicted = _run(args.onnx, args.input_name, frames.x)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types for bad models
            raise InputError(f"{args.onnx}: cannot run it: {str(err).splitlines()[0]}") from None
    except InputError as err:
        return fail(parser.prog, err)
    truth = frames.y
    measured = {"plcc": round(plcc(predicted, truth), 6), "rmse": round(rmse(predicted, truth), 6)}
    print(f"rows={len(truth)} plcc={measured['plcc']:.4f} rmse={measured['rmse']:.3f}")
    for p, t in zip(predicted[:5], truth[:5], strict=True):
        print(f"  pred={p:.3f} truth={t:.3f}")
    comparisons: dict[str, Any] = {}
    for other, standardise in COMPARISONS[version]:
        path = getattr(args, f"{other}_onnx")
        if path is not None:
            comparisons[other] = found = _compare(path, frames.x, predicted, standardise)
            if "error" in found:
                print(f"  diff vs {other}: skipped ({found['error']})")
            else:
                print(f"  diff vs {other}: mean={found['delta_mean']:+.3f} "
                      f"max_abs={found['delta_max_abs']:.3f}")  # fmt: skip
    passed = measured["plcc"] >= args.min_plcc
    if records(args):
        run = current_run()
        run.gate("plcc", passed, plcc=measured["plcc"], min_plcc=args.min_plcc, rows=len(truth))
        run.record(rmse=measured["rmse"], comparisons=sorted(comparisons))
    if args.out_json is not None:
        write_json(args.out_json, report(version, args, len(truth), measured, predicted, truth,
                                         comparisons, passed))  # fmt: skip
    if not passed:
        print(f"FAIL: plcc {measured['plcc']:.4f} < {args.min_plcc}", file=sys.stderr)
        return 1
    print("PASS")
    return 0


def report(
    version: str,
    args: argparse.Namespace,
    rows: int,
    measured: dict[str, float],
    predicted: np.ndarray,
    truth: np.ndarray,
    comparisons: dict[str, Any],
    passed: bool,
) -> dict[str, Any]:
    return {
        "model": f"vmaf_tiny_{version}",
        "onnx": str(args.onnx),
        "parquet": str(args.parquet),
        "rows": rows,
        "input_name": args.input_name,
        **measured,
        "head": [
            {"pred": round(float(p), 3), "truth": round(float(t), 3)}
            for p, t in zip(predicted[:5], truth[:5], strict=True)
        ],
        "comparisons": comparisons,
        "gate": {"min_plcc": args.min_plcc, "passed": passed},
        "verdict": "PASS" if passed else "FAIL",
    }
