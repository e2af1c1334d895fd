"""Score the per-fold models of three architectures (mlp_small, mlp_medium, linear) LOSO.

Fold ``<clip>`` of ``<arch>`` is ``<training-runs-dir>/loso_<arch>/fold_<clip>/<arch>_final.onnx``,
scored on every frame of the clip it was trained without, as eval_loso_mlp_small does. A fold
whose model is missing prints MISSING and is left out (``missing`` in the report); an
architecture with no fold has ``aggregate: null``. Writes ``loso_3arch_eval.json`` (the run's
provenance embedded) and ``loso_3arch_eval.md`` under --out. Exits 0, or 2 when the data root
is missing or unusable, or a fold model present cannot be scored (nothing is written then).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ai.common.cli import fail
from ai.common.files import InputError
from ai.evaluation import loso
from provenance import current_run, recorded_run

ARCHS = ("mlp_small", "mlp_medium", "linear")
REPORT = "loso_3arch_eval"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    loso.add_data_options(parser)
    parser.add_argument(
        "--training-runs-dir",
        type=Path,
        default=Path("model/tiny/training_runs"),
        help="loso_<arch>/fold_<clip>/<arch>_final.onnx for each architecture and clip",
    )
    loso.add_out_options(parser, REPORT)
    return parser


def present_models(args: argparse.Namespace) -> list[Path]:
    """The fold models there are: the ones read, so the ones recorded."""
    paths = (
        loso.fold_model_path(args.training_runs_dir, arch, clip)
        for arch in ARCHS
        for clip in loso.CLIPS
    )
    return [p for p in paths if p.is_file()]


@recorded_run(
    inputs={
        "data_root": "data_root",
        "cache": loso.cache_input,
        "fold_models": present_models,
        "external_weights": lambda a: loso.external_data_of(present_models(a)),
    },
    outputs=loso.report_outputs(REPORT),
    embed_into="report",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    archs: dict[str, Any] = {}
    try:
        data, ignored = loso.load(args)
        for arch in ARCHS:
            models, missing = {}, []
            for clip in loso.CLIPS:
                path = loso.fold_model_path(args.training_runs_dir, arch, clip)
                if path.is_file():
                    models[clip] = loso.Model(path)
                else:
                    print(f"MISSING {arch} fold {clip}: {path}")
                    missing.append(clip)
            per_fold = loso.score_folds(data, models)
            archs[arch] = {
                "per_fold": per_fold,
                "aggregate": loso.aggregate(per_fold),
                "missing": missing,
            }
    except InputError as err:
        return fail(parser.prog, err)
    report = {"generated": None, "corpus": str(args.data_root), "archs": archs}
    loso.write_report(args.out, REPORT, report, markdown(report))
    current_run().record(
        ignored_pairs=len(ignored),
        folds={arch: len(result["per_fold"]) for arch, result in archs.items()},
        missing={arch: result["missing"] for arch, result in archs.items()},
        aggregates={arch: result["aggregate"] for arch, result in archs.items()},
    )
    return 0


def markdown(report: dict[str, Any]) -> str:
    archs = report["archs"]
    lines = [
        "# LOSO evaluation: three architectures",
        "",
        f"Corpus: `{report['corpus']}`. Each fold model is scored on the clip it left out.",
        "",
        "| arch | folds | PLCC | SROCC | RMSE |",
        "|---|---:|---:|---:|---:|",
    ]
    for arch, result in archs.items():
        agg = result["aggregate"]
        if agg is None:
            lines.append(f"| {arch} | 0 | — | — | — |")
            continue
        cells = [f"{agg[f'mean_{m}']:.4f} ± {agg[f'std_{m}']:.4f}" for m in loso.METRICS]
        lines.append(f"| {arch} | {len(result['per_fold'])} | " + " | ".join(cells) + " |")
    for arch, result in archs.items():
        lines += ["", f"## {arch}", ""]
        lines += loso.fold_table(result["per_fold"], result["aggregate"])
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
