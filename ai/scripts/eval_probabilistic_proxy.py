"""Measure the empirical coverage and width of the FR v2 deep ensemble's intervals.

Runs every member ONNX of the ensemble manifest (--manifest) on a parquet of canonical-6,
``vmaf`` and ``codec`` (--parquet), or on 100 synthetic rows (--smoke, or no --parquet):
mu and sigma across members, Gaussian intervals mu +- z*sigma at 50/80/95 %, and the conformal
interval mu +- q*sigma when the manifest has q. The report is printed as JSON and, with
--metrics-out, written with the run's provenance in it. Exit 2 on bad input; no coverage gate.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, read_json_object, write_json
from ai.common.onnx_checks import run_bytes
from ai.fr.data import codec_table, smoke_rows_ensemble
from ai.fr.regressor import plcc, r6, rmse, standardise
from provenance import current_run, recorded_run

Z = {"50": 0.6744897501960817, "80": 1.2815515655446004, "95": 1.959963984540054}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--manifest", type=Path, default=Path("model/tiny/fr_regressor_v2_ensemble_v1.json")
    )
    parser.add_argument("--parquet", type=Path, help="canonical-6, vmaf and codec per row")
    parser.add_argument("--smoke", action="store_true", help="100 synthetic rows (seed 4321)")
    parser.add_argument("--metrics-out", type=Path, help="write the report here too")
    add_manifest_out(parser, "<metrics-out>")
    return parser


def member_onnx(args: argparse.Namespace) -> list[Path]:
    """The members the manifest names (none when it cannot be read: the run says why)."""
    try:
        members = read_json_object(args.manifest).get("members")
    except InputError:
        return []
    if not isinstance(members, list):
        return []
    return [
        args.manifest.parent / m["onnx"]
        for m in members
        if isinstance(m, dict) and isinstance(m.get("onnx"), str)
    ]


def _numbers(manifest: Path, document: dict[str, Any], key: str) -> np.ndarray:
    value = document.get(key)
    if not isinstance(value, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        raise InputError(f"{manifest}: {key} is not a list of numbers")
    return np.array(value, dtype=np.float64)


def coverage(y: np.ndarray, mu: np.ndarray, sigma: np.ndarray, k: float) -> dict[str, Any]:
    lower, upper = mu - k * sigma, mu + k * sigma
    inside = (lower <= y) & (y <= upper)
    return {
        "empirical_coverage": r6(float(inside.mean())),
        "mean_width": r6(float((upper - lower).mean())),
    }


@recorded_run(
    inputs={"manifest": "manifest", "members": member_onnx, "parquet": "parquet"},
    outputs={"metrics": "metrics_out"},
    embed_into="metrics",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if not args.manifest.is_file():
            raise InputError(
                f"{args.manifest}: no such manifest (train_fr_regressor_v2_ensemble.py writes it)"
            )
        manifest = read_json_object(args.manifest)
        mean = _numbers(args.manifest, manifest, "feature_mean")
        std = _numbers(args.manifest, manifest, "feature_std")
        paths = member_onnx(args)
        if not paths:
            raise InputError(f"{args.manifest}: lists no member ONNX")
        members = []
        for path in paths:
            try:
                members.append(path.read_bytes())
            except OSError as err:
                raise InputError(f"{path}: cannot read the member: {err.strerror}") from None
        if args.smoke or args.parquet is None:
            rows = smoke_rows_ensemble(4321)
        else:
            rows = codec_table(args.parquet)
    except InputError as err:
        return fail(parser.prog, err)
    assert rows.codec is not None
    if len(mean) != rows.x.shape[1] or len(std) != rows.x.shape[1]:
        return fail(parser.prog, InputError(f"{args.manifest}: feature_mean/std are not 6 wide"))
    z = standardise(rows.x, mean, np.where(std < 1e-8, 1.0, std)).astype(np.float32)
    feeds = {"features": z, "codec_onehot": rows.codec.astype(np.float32)}
    predictions = np.stack([run_bytes(data, feeds)[0].astype(np.float64) for data in members])
    mu = predictions.mean(axis=0)
    sigma = predictions.std(axis=0, ddof=1) if len(members) > 1 else np.zeros(len(mu))
    report: dict[str, Any] = {
        "manifest": args.manifest.name,
        "ensemble_size": len(members),
        "n_rows": len(rows.y),
        "plcc": r6(plcc(mu, rows.y)),
        "rmse": r6(rmse(mu, rows.y)),
        "mean_sigma": r6(float(sigma.mean())),
        "coverage": {
            "gaussian": {
                level: {"z": z_value, **coverage(rows.y, mu, sigma, z_value)}
                for level, z_value in Z.items()
            }
        },
    }
    confidence = manifest.get("confidence")
    q = confidence.get("conformal_q_residual") if isinstance(confidence, dict) else None
    if isinstance(q, (int, float)) and not isinstance(q, bool):
        report["coverage"]["conformal"] = {"q": q, **coverage(rows.y, mu, sigma, float(q))}
    current_run().record(**{k: v for k, v in report.items() if k != "manifest"})
    print(json.dumps(report, indent=2))
    if args.metrics_out is not None:
        write_json(args.metrics_out, report)
    covered = report["coverage"]["gaussian"]["95"]["empirical_coverage"]
    return 0 if covered is not None and 0.0 <= covered <= 1.0 and math.isfinite(covered) else 1


if __name__ == "__main__":
    sys.exit(main())
