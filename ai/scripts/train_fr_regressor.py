"""Train FR regressor v1 (canonical features to VMAF), judged leave-one-source-out before it ships.

Each source of the per-frame table (--parquet; ``source`` column, or the content part of ``key``)
is held out in turn, features standardised on the other sources' frames. When the mean fold
PLCC clears --ship-threshold, a final model is fit on every frame and exported as ONNX
(``features`` [batch, n] standardised, to ``score`` [batch]) with its model sidecar and a
registry row. Otherwise the metrics JSON says ``shipped: false`` and the run exits 3 (REFUSE TO
SHIP). The model sidecar and the metrics JSON both carry the run's provenance; exit 2 on bad input.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from ai.common.cli import fail
from ai.common.files import InputError, write_json
from ai.fr.data import frame_table
from ai.fr.regressor import (
    KIND,
    OPSET,
    SHIPPED,
    SUBSETS,
    Training,
    add_ship_options,
    add_training_options,
    loso,
    mean_std,
    probe_rows,
    r6,
    scores,
    ship,
    standardise,
    train,
)
from provenance import current_run, recorded_run

MODEL_ID = "fr_regressor_v1"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--parquet", type=Path, default=Path("runs/full_features_netflix.parquet"),
        help="per-frame features, vmaf and source",
    )  # fmt: skip
    parser.add_argument("--features", choices=sorted(SUBSETS), default="canonical6")
    add_training_options(parser, epochs=30, batch_size=256, lr=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ship-threshold", type=float, default=0.95, help="mean LOSO PLCC floor")
    add_ship_options(parser, MODEL_ID, "judge and fit, ship nothing")
    return parser


@recorded_run(
    inputs={"parquet": "parquet"},
    outputs={"metrics": "metrics_out", **SHIPPED},
    embed_into=("model_sidecar", "metrics"),
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1:
        parser.error("--epochs and --batch-size must be at least 1")
    features = SUBSETS[args.features]
    training = Training(args.epochs, args.batch_size, args.lr, args.weight_decay, args.seed)
    try:
        rows, pairs = frame_table(args.parquet, features)
    except InputError as err:
        return fail(parser.prog, err)
    per_fold: dict[str, Any] = {}
    for source, _, _, predicted, target in loso(rows.sources, rows.x, rows.y, None, training):
        per_fold[source] = scores(predicted, target)
    if not per_fold:
        return fail(parser.prog, InputError(f"{args.parquet}: fewer than two sources"))
    summary: dict[str, Any] = {"n_folds": len(per_fold)}
    for metric in ("plcc", "srocc", "rmse"):
        mean, std = mean_std([f[metric] for f in per_fold.values()])
        summary[f"mean_{metric}"], summary[f"std_{metric}"] = r6(mean), r6(std)
    loso_report = {"per_fold": per_fold, "summary": summary}
    mean_plcc = summary["mean_plcc"]
    passed = mean_plcc is not None and mean_plcc >= args.ship_threshold
    run = current_run()
    run.gate(
        "ship", passed, mean_plcc=mean_plcc if mean_plcc is not None else math.nan,
        ship_threshold=args.ship_threshold, n_folds=len(per_fold),
    )  # fmt: skip
    if not passed:
        write_json(
            args.metrics_out,
            {"loso": loso_report, "ship_threshold": args.ship_threshold, "shipped": False},
        )
        print(
            f"REFUSE TO SHIP: mean LOSO PLCC {mean_plcc} < {args.ship_threshold}", file=sys.stderr
        )
        return 3
    fitted = train(rows.x, rows.y, None, training)
    in_sample = scores(fitted.predict(rows.x), rows.y)
    if not args.no_export:
        (probe,) = probe_rows(standardise(rows.x, fitted.mean, fitted.std))
        training_fields = {
            "dataset": "netflix-public",
            "n_sources": len(set(rows.sources)),
            "n_pairs": pairs,
            "loso_mean_plcc": summary["mean_plcc"],
            "loso_std_plcc": summary["std_plcc"],
            "loso_mean_srocc": summary["mean_srocc"],
            "loso_mean_rmse": summary["mean_rmse"],
            "in_sample_plcc": in_sample["plcc"],
        }
        try:
            ship(
                args,
                MODEL_ID,
                fitted,
                [("features", len(features))],
                {"features": probe},
                "score",
                f"FR regressor v1 on {args.features}: GELU MLP, leave-one-source-out gated",
                features,
                {"training": training_fields},
                {},
            )
        except InputError as err:
            return fail(parser.prog, err)
    run.record(model_id=MODEL_ID, kind=KIND, opset=OPSET, in_sample=in_sample, **summary)
    write_json(
        args.metrics_out,
        {
            "feature_subset": args.features,
            "feature_cols": list(features),
            "loso": loso_report,
            "in_sample": in_sample,
            "ship_threshold": args.ship_threshold,
            "shipped": not args.no_export,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "seed": args.seed,
            "n_rows": len(rows.y),
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
