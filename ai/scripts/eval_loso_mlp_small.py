"""Score the nine per-fold mlp_small models on their held-out Netflix clips, and two baselines.

Fold ``<clip>`` is ``<loso-dir>/fold_<clip>/mlp_small_final.onnx``, trained without that clip;
it is scored on every frame of the clip (canonical-6 features and libvmaf's VMAF from the data
root's libvmaf cache). The two single-split baselines (--mlp-small-baseline,
--mlp-medium-baseline) are scored on every clip and on all clips' frames together. Writes
``loso_mlp_small_eval.json`` (the run's provenance embedded) and ``loso_mlp_small_eval.md``
under --out. Exits 0, or 2 when the data root, a fold model or a baseline is missing or
unusable (nothing is written then).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ai.common.cli import fail
from ai.common.files import InputError
from ai.evaluation import loso
from provenance import current_run, recorded_run

ARCH = "mlp_small"
BASELINES = ("mlp_small_v1", "mlp_medium_v1")
REPORT = "loso_mlp_small_eval"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    loso.add_data_options(parser)
    parser.add_argument(
        "--loso-dir",
        type=Path,
        default=Path("model/tiny/training_runs/loso_mlp_small"),
        help="fold_<clip>/mlp_small_final.onnx for each clip",
    )
    parser.add_argument(
        "--mlp-small-baseline", type=Path, default=Path("model/tiny/vmaf_tiny_v1.onnx")
    )
    parser.add_argument(
        "--mlp-medium-baseline", type=Path, default=Path("model/tiny/vmaf_tiny_v1_medium.onnx")
    )
    loso.add_out_options(parser, REPORT)
    return parser


def fold_models(args: argparse.Namespace) -> list[Path]:
    return [args.loso_dir / f"fold_{clip}" / f"{ARCH}_final.onnx" for clip in loso.CLIPS]


def baselines(args: argparse.Namespace) -> dict[str, Path]:
    return {"mlp_small_v1": args.mlp_small_baseline, "mlp_medium_v1": args.mlp_medium_baseline}


@recorded_run(
    inputs={
        "data_root": "data_root",
        "cache": loso.cache_input,
        "fold_models": fold_models,
        "external_weights": lambda a: loso.external_data_of(
            [*fold_models(a), *baselines(a).values()]
        ),
        "mlp_small_baseline": "mlp_small_baseline",
        "mlp_medium_baseline": "mlp_medium_baseline",
    },
    outputs=loso.report_outputs(REPORT),
    embed_into="report",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        data, ignored = loso.load(args)
        missing = [p for p in fold_models(args) if not p.is_file()]
        if missing:
            raise InputError(f"{len(missing)} fold model(s) missing, first {missing[0]}")
        models = {
            clip: loso.Model(p) for clip, p in zip(loso.CLIPS, fold_models(args), strict=True)
        }
        per_fold = loso.score_folds(data, models)
        scored = {}
        for name, path in baselines(args).items():
            if not path.is_file():
                raise InputError(f"{path}: no such baseline model ({name})")
            scored[name] = {
                "model_path": str(path),
                **loso.score_everywhere(data, loso.Model(path)),
            }
    except InputError as err:
        return fail(parser.prog, err)
    aggregate = loso.aggregate(per_fold)
    report = {
        "generated": None,
        "corpus": str(args.data_root),
        "loso_per_fold": per_fold,
        "loso_aggregate": aggregate,
        "baselines": scored,
    }
    loso.write_report(args.out, REPORT, report, markdown(report))
    current_run().record(
        folds=len(per_fold), ignored_pairs=len(ignored), loso_aggregate=aggregate,
        baselines={n: s["all_clips_concat"] for n, s in scored.items()},
    )  # fmt: skip
    return 0


def markdown(report: Mapping[str, Any]) -> str:
    per_fold = report["loso_per_fold"]
    lines = [
        "# LOSO evaluation: mlp_small",
        "",
        f"Corpus: `{report['corpus']}`. Each fold model is scored on the clip it left out.",
        "",
        *loso.fold_table(per_fold, report["loso_aggregate"]),
    ]
    for name, result in report["baselines"].items():
        lines += ["", f"## Baseline {name} (`{result['model_path']}`)", ""]
        lines += loso.baseline_table(result)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
