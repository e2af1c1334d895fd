"""Calibrate the Phase F content recipes (vmaf-tune auto) from an encode-grid corpus JSONL.

Reads at most --max-rows rows of --corpus; rows of a failed encode or without CRF, VMAF or
motion2_mean are skipped and counted. Per encoder and content class (motion2_mean below or at
least --motion-split), VMAF is fit against CRF and inverted at each --targets VMAF. The recipe
JSON records the corpus snapshot: the file's digest, the digest of the rows read and the row
cap. The gate: every recipe has at least --min-rows rows and a fit R^2 of at least --min-r2. A
failed gate exits 1 with the recipes written; an input error exits 2 with none.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_json
from ai.tune.recipes import calibrate, read_capped
from provenance import current_run, recorded_run


def targets(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected comma-separated VMAF values"
        ) from None
    if not values or not all(0.0 <= v <= 100.0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: expected VMAF values in 0-100")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus", type=Path, required=True, help="the encode-grid JSONL")
    parser.add_argument("--max-rows", type=int, default=100000, help="the row cap")
    parser.add_argument("--targets", type=targets, default=[90.0, 80.0, 70.0], help="VMAF")
    parser.add_argument("--motion-split", type=float, default=8.0, help="high-motion floor")
    parser.add_argument("--min-rows", type=int, default=4, help="rows each recipe needs")
    parser.add_argument("--min-r2", type=float, default=0.8, help="fit each recipe needs")
    parser.add_argument("--out", type=Path, required=True, help="the recipe JSON")
    add_manifest_out(parser, "<out>")
    return parser


@recorded_run(inputs={"corpus": "corpus"}, outputs={"recipes": "out"}, embed_into="recipes")
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_rows < 1:
        parser.error("--max-rows must be at least 1")
    try:
        snapshot = read_capped(args.corpus, args.max_rows)
    except InputError as err:
        return fail(parser.prog, err)
    done = calibrate(snapshot.rows, args.targets, args.motion_split)
    weak = [
        f"{r['encoder']}/{r['content_class']}"
        for r in done.recipes
        if r["rows"] < args.min_rows or r["r2"] is None or r["r2"] < args.min_r2
    ]
    passed = bool(done.recipes) and not weak
    corpus = {
        "path": args.corpus.name,
        "sha256": snapshot.file_sha256,
        "rows_sha256": snapshot.rows_sha256,
        "row_cap": args.max_rows,
        "rows_read": len(snapshot.rows),
        "capped": snapshot.capped,
        "rows_used": done.rows_used,
        "rows_skipped": done.rows_skipped,
    }
    gate = {"min_rows": args.min_rows, "min_r2": args.min_r2, "weak_recipes": weak}
    run = current_run()
    run.gate("recipe_fit", passed, recipes=len(done.recipes), **gate)
    run.record(
        corpus_snapshot=corpus,
        targets=args.targets,
        content_classes={"by": "motion2_mean", "split": args.motion_split},
        recipes=len(done.recipes),
    )
    write_json(
        args.out,
        {
            "kind": "phase_f_content_recipes",
            "corpus": corpus,
            "targets": args.targets,
            "content_classes": {"by": "motion2_mean", "split": args.motion_split},
            "recipes": done.recipes,
            "gate": {**gate, "passed": passed},
        },
    )
    if weak:
        print(f"{parser.prog}: too few rows or a weak fit: {', '.join(weak)}", file=sys.stderr)
    elif not done.recipes:
        print(f"{parser.prog}: no row the grid scored: no recipe", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
