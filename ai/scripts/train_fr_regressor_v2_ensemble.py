"""Train the FR regressor v2 deep ensemble: N seeds of the codec-aware regressor, with optional
split-conformal calibration of its (mu, sigma) intervals.

--corpus is a parquet of canonical-6, ``vmaf`` and ``codec`` (6-entry vocabulary v1); --smoke
makes 100 synthetic rows and trains one epoch per member (it wins over --corpus). Member k is
seeded --base-seed + k and exported as ``<ensemble-id>_seed<k>.onnx`` (inputs ``features``
[batch, 6] standardised and ``codec_onehot`` [batch, 6], output ``score`` [batch]); the manifest
``<ensemble-id>.json`` lists them with the standardisation, the confidence method and the
conformal residual quantile, and carries the run's provenance. Registry rows of the ensemble's
earlier members are replaced. Exit 2 on bad input; --no-export writes nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_json
from ai.features.libvmaf import CANONICAL_6
from ai.fr.data import codec_table, smoke_rows_ensemble
from ai.fr.regressor import (
    CODEC_VOCAB_V1,
    KIND,
    OPSET,
    Training,
    add_training_options,
    export,
    plcc,
    probe_rows,
    r6,
    register_rows,
    rmse,
    standardise,
    train,
    zscore_stats,
)
from provenance import atomic_write, current_run, recorded_run

GAUSSIAN_Z95 = 1.959963984540054


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, help="parquet: canonical-6, vmaf, codec")
    parser.add_argument("--smoke", action="store_true", help="100 synthetic rows, one epoch")
    parser.add_argument("--ensemble-size", type=int, default=5)
    add_training_options(parser, epochs=30, batch_size=256, lr=1e-3)
    parser.add_argument("--base-seed", type=int, default=0)
    parser.add_argument(
        "--conformal-calibration-frac", type=float, default=0.0, help="0 disables calibration"
    )
    parser.add_argument("--nominal-coverage", type=float, default=0.95)
    parser.add_argument("--ensemble-id", default="fr_regressor_v2_ensemble_v1")
    parser.add_argument("--out-dir", type=Path, default=Path("model/tiny"))
    parser.add_argument("--registry", type=Path, default=Path("model/tiny/registry.json"))
    parser.add_argument("--no-export", action="store_true", help="train and print, write nothing")
    add_manifest_out(parser, "<out-dir>/<ensemble-id>.json")
    return parser


def manifest_path(args: argparse.Namespace) -> Path:
    return Path(args.out_dir) / f"{args.ensemble_id}.json"


def member_paths(args: argparse.Namespace) -> list[Path]:
    return [
        Path(args.out_dir) / f"{args.ensemble_id}_seed{args.base_seed + k}.onnx"
        for k in range(max(0, args.ensemble_size))
    ]


def conformal_q(residual: np.ndarray, coverage: float) -> tuple[float, float]:
    """The split-conformal quantile of the residuals for ``coverage``, and its alpha."""
    alpha = max(1e-6, 1.0 - coverage)
    n = len(residual)
    rank = min(max(math.ceil((n + 1) * (1.0 - alpha)) - 1, 0), n - 1)
    return float(np.sort(residual)[rank]), alpha


@recorded_run(
    inputs={"corpus": "corpus"},
    outputs={"manifest": manifest_path, "members": member_paths, "registry": "registry"},
    embed_into="manifest",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ensemble_size < 1:
        return fail(parser.prog, InputError("--ensemble-size must be at least 1"))
    if args.smoke and args.corpus is not None:
        print("warning: --smoke given with --corpus: the smoke rows are used", file=sys.stderr)
        args.corpus = None
    try:
        if args.smoke:
            rows = smoke_rows_ensemble(args.base_seed + 1234)
        elif args.corpus is None:
            raise InputError("give --corpus (a parquet) or --smoke")
        else:
            rows = codec_table(args.corpus)
    except InputError as err:
        return fail(parser.prog, err)
    assert rows.codec is not None
    n = len(rows.y)
    mean, std = zscore_stats(rows.x)
    z = standardise(rows.x, mean, std)
    frac = args.conformal_calibration_frac
    cal = np.zeros(n, dtype=bool)
    if frac > 0 and n >= 10:
        order = np.random.default_rng(args.base_seed + 9999).permutation(n)
        cal[order[: max(1, round(n * frac))]] = True
    elif frac > 0:
        print(f"warning: {n} rows are too few to calibrate: conformal disabled", file=sys.stderr)
        frac = 0.0
    epochs = 1 if args.smoke else args.epochs
    training = Training(epochs, args.batch_size, args.lr, args.weight_decay, args.base_seed)
    seeds = [args.base_seed + k for k in range(args.ensemble_size)]
    members = []
    for seed in seeds:
        # Every member sees the rows standardised on the whole corpus, as the manifest says.
        fitted = train(
            z[~cal], rows.y[~cal], rows.codec[~cal], training, seed=seed, standardised=True
        )
        members.append(fitted)
    predictions = np.stack([m.predict(z, rows.codec) for m in members])
    mu = predictions.mean(axis=0)
    sigma = predictions.std(axis=0, ddof=1) if len(members) > 1 else np.zeros(n)
    train_rows = ~cal
    evaluation: dict[str, Any] = {
        "in_sample_plcc": r6(plcc(mu[train_rows], rows.y[train_rows])),
        "in_sample_rmse": r6(rmse(mu[train_rows], rows.y[train_rows])),
        "mean_sigma_train": r6(float(sigma[train_rows].mean())),
    }
    q = None
    if cal.any():
        residual = np.abs(rows.y[cal] - mu[cal])
        if (sigma[cal] >= 1e-6).any():
            residual = residual / np.maximum(sigma[cal], 1e-6)
        q, alpha = conformal_q(residual, args.nominal_coverage)
        evaluation["calibration"] = {
            "n_calibration": int(cal.sum()),
            "alpha": r6(alpha),
            "nominal_coverage": args.nominal_coverage,
            "conformal_q_residual": r6(q),
            "mean_sigma_cal": r6(float(sigma[cal].mean())),
        }
    print(f"ensemble of {len(members)}: {evaluation}")
    current_run().record(
        ensemble_id=args.ensemble_id, seeds=seeds, smoke=args.smoke, n_rows=n, **evaluation
    )
    if args.no_export:
        return 0
    entries, rows_out = [], []
    probe, codec_probe = probe_rows(z, rows.codec)
    inputs = [("features", len(CANONICAL_6)), ("codec_onehot", len(CODEC_VOCAB_V1))]
    for seed, fitted, path in zip(seeds, members, member_paths(args), strict=True):
        model_id = f"{args.ensemble_id}_seed{seed}"
        data, _ = export(
            fitted, inputs, "score", model_id, {"features": probe, "codec_onehot": codec_probe}
        )
        atomic_write(path, data)
        digest = hashlib.sha256(data).hexdigest()
        entries.append({"id": model_id, "onnx": path.name, "seed": seed, "sha256": digest})
        rows_out.append(
            {
                "id": model_id,
                "kind": KIND,
                "onnx": path,
                "opset": OPSET,
                "sha256": digest,
                "smoke": args.smoke,
                "notes": f"member seed {seed} of the {args.ensemble_id} deep ensemble",
            }
        )
    write_json(
        manifest_path(args),
        {
            "id": args.ensemble_id,
            "kind": "fr_ensemble",
            "ensemble_size": len(members),
            "members": entries,
            "feature_order": list(CANONICAL_6),
            "feature_mean": [round(float(v), 9) for v in mean],
            "feature_std": [round(float(v), 9) for v in std],
            "codec_vocab": list(CODEC_VOCAB_V1),
            "codec_vocab_version": 1,
            "confidence": {
                "method": "ensemble+conformal" if q is not None else "ensemble",
                "nominal_coverage": args.nominal_coverage,
                "gaussian_z": GAUSSIAN_Z95,
                "conformal_q_residual": None if q is None else r6(q),
            },
            "smoke": args.smoke,
            "eval": evaluation,
        },
    )
    prefix = f"{args.ensemble_id}_seed"
    try:
        register_rows(
            args.registry,
            rows_out,
            drop=lambda i: i.startswith(prefix) or i == args.ensemble_id,
        )
    except InputError as err:
        return fail(parser.prog, err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
