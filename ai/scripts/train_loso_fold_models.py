"""Train the per-fold tiny VMAF models and the single-split baselines the LOSO evaluations score.

Not a script of the fork: there the fold models and the v1 baselines came from earlier training
runs. This one makes them from a Netflix-style data root (``ref/``, ``dis/``, a libvmaf cache,
as eval_loso_mlp_small reads it), for every architecture of --archs and every one of the nine
clips held out in turn: ``<training-runs-dir>/loso_<arch>/fold_<clip>/<arch>_final.onnx``.
--mlp-small-baseline and --mlp-medium-baseline, when given, are trained once on the ``train``
part of the content split of --baseline-split-seed. The report (--out-json) names every model
by digest with its training facts; exits 0, or 2 on an input error (nothing written).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_json
from ai.evaluation import folds, loso
from provenance import atomic_write, current_run, recorded_run

BASELINES = {"mlp_small_v1": "mlp_small", "mlp_medium_v1": "mlp_medium"}


def parse_archs(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in loso.ARCHS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown architecture(s) {', '.join(unknown) or repr(text)}; "
            f"known: {', '.join(loso.ARCHS)}"
        )
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-root", type=Path, required=True, help="holds ref/ and dis/")
    parser.add_argument(
        "--cache-dir", type=Path, help="libvmaf JSON (default <data-root>/vmaf_cache)"
    )
    parser.add_argument(
        "--archs",
        type=parse_archs,
        default=("mlp_small",),
        help="comma-separated (default mlp_small)",
    )
    parser.add_argument(
        "--training-runs-dir", type=Path, required=True, help="loso_<arch>/ go here"
    )
    parser.add_argument("--mlp-small-baseline", type=Path, help="write the mlp_small baseline here")
    parser.add_argument(
        "--mlp-medium-baseline", type=Path, help="write the mlp_medium baseline here"
    )
    parser.add_argument("--baseline-split-seed", type=int, default=0, help="the baselines' split")
    parser.add_argument("--epochs", type=int, default=90)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-json", type=Path, required=True, help="the training report")
    add_manifest_out(parser, "<out-json>")
    return parser


def fold_models(args: argparse.Namespace) -> list[Path]:
    return [
        loso.fold_model_path(args.training_runs_dir, arch, clip)
        for arch in args.archs
        for clip in loso.CLIPS
    ]


@recorded_run(
    inputs={"data_root": "data_root", "cache": "cache_dir"},
    outputs={
        "report": "out_json",
        "fold_models": fold_models,
        "mlp_small_baseline": "mlp_small_baseline",
        "mlp_medium_baseline": "mlp_medium_baseline",
    },
    embed_into="report",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or not args.lr > 0:
        parser.error("--epochs and --batch-size must be at least 1, --lr above 0")
    try:
        data, ignored = loso.load_clips(
            args.data_root, loso.cache_dir(args.data_root, args.cache_dir)
        )
        baseline_clips = folds.train_clips(loso.CLIPS, args.baseline_split_seed)
        if (args.mlp_small_baseline or args.mlp_medium_baseline) and not baseline_clips:
            raise InputError(f"split seed {args.baseline_split_seed} puts no clip in train")
    except InputError as err:
        return fail(parser.prog, err)
    hyper = folds.Hyper(args.epochs, args.batch_size, args.lr, args.seed)
    trained: dict[str, Any] = {}
    for arch in args.archs:
        trained[arch] = {}
        for clip in loso.CLIPS:
            rest = [c for c in loso.CLIPS if c != clip]
            model = folds.train(arch, rest, data, hyper, f"{arch}_fold_{clip}")
            path = loso.fold_model_path(args.training_runs_dir, arch, clip)
            atomic_write(path, model.onnx)
            trained[arch][clip] = facts(path, model, args.training_runs_dir)
    baselines: dict[str, Any] = {}
    for name, arch in BASELINES.items():
        path = getattr(args, f"{arch}_baseline")
        if path is None:
            continue
        model = folds.train(arch, baseline_clips, data, hyper, name)
        atomic_write(path, model.onnx)
        baselines[name] = {"arch": arch, **facts(path, model, None), "train_clips": baseline_clips}
    report = {
        "data_root": str(args.data_root),
        "clips": list(loso.CLIPS),
        "ignored_pairs": ignored,
        "archs": list(args.archs),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "baseline_split_seed": args.baseline_split_seed,
        "folds": trained,
        "baselines": baselines,
    }
    write_json(args.out_json, report)
    current_run().record(
        archs=list(args.archs),
        fold_models=sum(len(v) for v in trained.values()),
        baselines=sorted(baselines),
        ignored_pairs=len(ignored),
    )
    return 0


def facts(path: Path, model: folds.Trained, relative_to: Path | None) -> dict[str, Any]:
    return {
        "onnx": str(path.relative_to(relative_to)) if relative_to else path.name,
        "sha256": hashlib.sha256(model.onnx).hexdigest(),
        "train_rows": model.train_rows,
        "train_mse": model.train_mse,
        "parity_max_abs_diff": model.parity_drift,
        "in_sample": model.in_sample,
    }


if __name__ == "__main__":
    sys.exit(main())
