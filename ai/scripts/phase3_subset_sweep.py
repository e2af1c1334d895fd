"""Phase-3 model selection: sweep named feature subsets and tabulate each one's k-fold PLCC.

Each --subset NAME=feature,... (a feature is a column, or <feature>_mean) is fit as a ridge
regressor on --target in --folds content folds for every --seeds seed, the held-out test split
(--split-seed) left out; --no-standardize fits on centred but unscaled inputs. The report is the
per-subset PLCC table and the best subset. The gate: the best subset's mean PLCC is at least
--min-plcc. A failed gate exits 1 with the report written; an input error exits 2 with none.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, read_parquet, write_json
from ai.features.subset_sweep import Subset, parse_subset, sweep
from ai.features.tables import SPLIT_HASH
from provenance import current_run, recorded_run


def subset_arg(text: str) -> Subset:
    try:
        return parse_subset(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", type=Path, required=True, help="the source feature parquet")
    parser.add_argument(
        "--subset", type=subset_arg, action="append", required=True, help="NAME=feature,..."
    )
    parser.add_argument("--target", default="mos", help="the column to predict")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="fold-assignment seeds")
    parser.add_argument("--folds", type=int, default=5, help="k of the k-fold evaluation")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the held-out split")
    parser.add_argument("--ridge", type=float, default=1.0, help="L2 penalty")
    parser.add_argument(
        "--standardize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="scale inputs to unit variance on each training fold",
    )
    parser.add_argument("--min-plcc", type=float, default=0.75, help="floor of the best subset")
    parser.add_argument("--out-json", type=Path, required=True, help="the sweep report")
    add_manifest_out(parser, "<out-json>")
    return parser


@recorded_run(inputs={"table": "table"}, outputs={"report": "out_json"}, embed_into="report")
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    names = [s.name for s in args.subset]
    if len(set(names)) != len(names):
        parser.error("--subset names a subset twice")
    if len(set(args.seeds)) != len(args.seeds):
        parser.error("--seeds names a seed twice")
    if args.folds < 2 or args.ridge < 0:
        parser.error("--folds must be at least 2 and --ridge at least 0")
    try:
        done = sweep(
            args.table,
            read_parquet(args.table),
            args.subset,
            args.target,
            args.seeds,
            args.folds,
            args.ridge,
            args.standardize,
            args.split_seed,
        )
    except InputError as err:
        return fail(parser.prog, err)
    best = next(r for r in done.results if r["subset"] == done.best)
    passed = best["mean_plcc"] >= args.min_plcc
    training = {
        "target": args.target,
        "folds": args.folds,
        "ridge": args.ridge,
        "standardize": args.standardize,
        "split_seed": args.split_seed,
    }
    seed_policy = {"seeds": args.seeds, "folds_by": SPLIT_HASH}
    run = current_run()
    run.gate("best_subset", passed, subset=done.best, mean_plcc=best["mean_plcc"],
             min_plcc=args.min_plcc)  # fmt: skip
    run.record(
        source=args.table,
        subsets={s.name: list(s.features) for s in args.subset},
        seed_policy=seed_policy,
        training=training,
        rows={"swept": done.rows, "held_out": done.held_out},
        plcc_table={r["subset"]: r["mean_plcc"] for r in done.results},
        best_subset=done.best,
    )
    write_json(
        args.out_json,
        {
            "source": args.table.name,
            "seed_policy": seed_policy,
            "training": training,
            "rows": {"swept": done.rows, "held_out": done.held_out},
            "subsets": done.results,
            "best_subset": done.best,
            "gate": {"min_plcc": args.min_plcc, "mean_plcc": best["mean_plcc"], "passed": passed},
        },
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
