"""Train one FR regressor v2 ensemble seed leave-one-source-out and write loso_seed{N}.json.

Each source of the per-frame pair table (--corpus) is held out in turn; a ridge regressor on a
seeded bag of the other sources' frames predicts its per-frame VMAF. The report holds the
corpus, the training arguments, every fold's PLCC and RMSE and their mean (the figure the
ensemble seed gate reads), and the run's provenance. Exits 0, or 2 on an input error with no
report written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, read_parquet, write_json
from ai.features.libvmaf import CANONICAL_6, parse_features
from ai.fr.ensemble import seed_report
from ai.fr.fr_regressor import load_frames, loso
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, required=True, help="the per-frame pair parquet")
    parser.add_argument("--seed", type=int, required=True, help="the member's seed")
    parser.add_argument(
        "--features", type=parse_features, default=CANONICAL_6, help="comma-separated inputs"
    )
    parser.add_argument("--ridge", type=float, default=1.0, help="L2 penalty")
    parser.add_argument("--bag-fraction", type=float, default=0.8, help="frames each fit sees")
    parser.add_argument("--out-dir", type=Path, required=True, help="where loso_seed{N}.json goes")
    add_manifest_out(parser, "<out-dir>/loso_seed{N}.json")
    return parser


def report_path(args: argparse.Namespace) -> Path:
    return seed_report(args.out_dir, args.seed)


@recorded_run(inputs={"corpus": "corpus"}, outputs={"report": report_path}, embed_into="report")
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0.0 < args.bag_fraction <= 1.0:
        parser.error("--bag-fraction must be in (0, 1]")
    try:
        frames = load_frames(args.corpus, read_parquet(args.corpus), args.features)
        folds, summary = loso(frames, args.seed, args.ridge, args.bag_fraction)
    except InputError as err:
        return fail(parser.prog, err)
    training = {"ridge": args.ridge, "bag_fraction": args.bag_fraction, "features": args.features}
    current_run().record(seed=args.seed, sources=len(folds), training=training, **summary)
    write_json(
        report_path(args),
        {
            "corpus": args.corpus.name,
            "seed": args.seed,
            "training": {**training, "features": list(args.features)},
            "frames": len(frames.y),
            "folds": folds,
            **summary,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
