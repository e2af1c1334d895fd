"""Train FR regressor v2: canonical-6 plus a 14-wide codec block (encoder vocabulary v2) to VMAF.

Reads a vmaf-tune encode-grid JSONL (--corpus: ``<feature>_mean``, ``encoder``, ``preset``,
``crf``, ``vmaf_score``) or makes 100 synthetic rows (--smoke, one epoch). Exports ONNX with
inputs ``features`` [batch, 6] (standardised) and ``codec`` [batch, 14], output ``score``
[batch]; writes its model sidecar, a registry row and the metrics JSON, both JSON files carrying
the run's provenance. Exit 2 on bad input (both or neither of --smoke/--corpus, no rows).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import fail
from ai.common.files import InputError, write_json
from ai.features.libvmaf import CANONICAL_6
from ai.fr.data import grid_rows_v2, smoke_rows_v2
from ai.fr.regressor import (
    ENCODER_VOCAB_V2,
    SHIPPED,
    Training,
    add_ship_options,
    add_training_options,
    codec_layout,
    probe_rows,
    scores,
    ship,
    standardise,
    train,
)
from provenance import current_run, recorded_run

MODEL_ID = "fr_regressor_v2"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, help="encode-grid JSONL (schema v3 rows)")
    parser.add_argument("--smoke", action="store_true", help="100 synthetic rows, one epoch")
    add_training_options(parser, epochs=30, batch_size=64, lr=1e-3)
    parser.add_argument("--hidden", type=int, default=16)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    add_ship_options(parser, MODEL_ID, "fit and report, ship nothing")
    return parser


@recorded_run(
    inputs={"corpus": "corpus"},
    outputs={"metrics": "metrics_out", **SHIPPED},
    embed_into=("model_sidecar", "metrics"),
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke == (args.corpus is not None):
        return fail(parser.prog, InputError("give exactly one of --smoke and --corpus"))
    if min(args.epochs, args.batch_size, args.hidden, args.depth) < 1:
        parser.error("--epochs, --batch-size, --hidden and --depth must be at least 1")
    try:
        rows = smoke_rows_v2(args.seed) if args.smoke else grid_rows_v2(args.corpus)
    except InputError as err:
        return fail(parser.prog, err)
    assert rows.codec is not None
    epochs = 1 if args.smoke else args.epochs
    every = max(1, epochs // 5)
    training = Training(
        epochs, args.batch_size, args.lr, args.weight_decay, args.seed, args.hidden, args.depth
    )

    def progress(epoch: int, loss: float) -> None:
        if epoch == 1 or epoch % every == 0:
            print(f"epoch {epoch}/{epochs} loss={loss:.4f}")

    fitted = train(rows.x, rows.y, rows.codec, training, on_epoch=progress)
    in_sample = scores(fitted.predict(rows.x, rows.codec), rows.y)
    dataset = "synthetic-smoke" if args.smoke else "vmaf-tune-corpus"
    if not args.no_export:
        probe, codec_probe = probe_rows(standardise(rows.x, fitted.mean, fitted.std), rows.codec)
        inputs = [("features", len(CANONICAL_6)), ("codec", rows.codec.shape[1])]
        fields = dict(
            codec_aware=True,
            encoder_vocab=list(ENCODER_VOCAB_V2),
            encoder_vocab_version=2,
            codec_block_layout=codec_layout(ENCODER_VOCAB_V2),
            training={
                "dataset": dataset,
                "n_rows": len(rows.y),
                "in_sample_plcc": in_sample["plcc"],
                "in_sample_srocc": in_sample["srocc"],
                "in_sample_rmse": in_sample["rmse"],
                "smoke": args.smoke,
            },
        )
        try:
            ship(
                args,
                MODEL_ID,
                fitted,
                inputs,
                {"features": probe, "codec": codec_probe},
                "score",
                "FR regressor v2: canonical-6 + codec block (vocabulary v2), GELU MLP",
                CANONICAL_6,
                fields,
                {"smoke": args.smoke},
            )
        except InputError as err:
            return fail(parser.prog, err)
    current_run().record(model_id=MODEL_ID, dataset=dataset, n_rows=len(rows.y), **in_sample)
    write_json(
        args.metrics_out,
        {
            "feature_subset": "canonical6+codec",
            "canonical6": list(CANONICAL_6),
            "encoder_vocab": list(ENCODER_VOCAB_V2),
            "n_rows": len(rows.y),
            "in_sample": in_sample,
            "epochs": epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "seed": args.seed,
            "smoke": args.smoke,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
