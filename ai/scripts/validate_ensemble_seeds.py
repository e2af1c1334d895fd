"""The ensemble seed gate: PROMOTE.json or HOLD.json from the per-seed loso_seed{N}.json reports.

PROMOTE when the seeds' mean PLCC, every seed's PLCC and their spread all clear the bar; HOLD
otherwise. Exits 0 on PROMOTE, 1 on HOLD, 2 on an input error (no verdict is written). The
verdict file carries the run's provenance; a stale verdict of the other kind is removed, so a
folder never holds both. The sidecar is <out-dir>/verdict.manifest.json unless --manifest-out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_json
from ai.fr.ensemble import HOLD, PROMOTE, SeedGate, common_corpus, read_seed, seed_report
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loso-dir", type=Path, required=True, help="holds loso_seed{N}.json")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="the seeds")
    parser.add_argument("--out-dir", type=Path, required=True, help="where the verdict goes")
    parser.add_argument("--min-mean-plcc", type=float, default=0.95, help="floor of the mean")
    parser.add_argument("--min-seed-plcc", type=float, default=0.95, help="floor of each seed")
    parser.add_argument("--max-spread", type=float, default=0.005, help="max PLCC spread")
    add_manifest_out(parser, "<out-dir>/verdict")
    return parser


def reports(args: argparse.Namespace) -> list[Path]:
    return [seed_report(args.loso_dir, seed) for seed in args.seeds]


def verdict_later(args: argparse.Namespace) -> None:
    """PROMOTE.json or HOLD.json: named from the body (add_output) once the verdict is known."""
    return None


@recorded_run(
    inputs={"seed_reports": reports},
    outputs={"verdict": verdict_later},
    manifest=lambda a: a.manifest_out or a.out_dir / "verdict.manifest.json",
    embed_into="verdict",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        parser.error("--seeds names a seed twice")
    gate = SeedGate(args.min_mean_plcc, args.min_seed_plcc, args.max_spread)
    try:
        read = {seed: read_seed(path) for seed, path in zip(args.seeds, reports(args), strict=True)}
        corpus = common_corpus(read)
    except InputError as err:
        return fail(parser.prog, err)
    judged = {
        **gate.judge({seed: plcc for seed, (plcc, _) in read.items()}),
        "corpus_sha256": corpus,
    }
    verdict = judged["verdict"]
    target = args.out_dir / f"{verdict}.json"
    stale = args.out_dir / f"{HOLD if verdict == PROMOTE else PROMOTE}.json"
    run = current_run()
    run.add_output("verdict", target)
    if stale.exists():
        run.add_output("stale_verdict", stale)  # recorded as gone once it is removed
    run.gate("ensemble_seeds", verdict == PROMOTE, **judged["checks"])
    run.record(**{k: v for k, v in judged.items() if k != "checks"})
    write_json(target, {"seeds": args.seeds, **judged})
    if stale.exists():
        stale.unlink()
        print(f"{parser.prog}: removed the stale {stale.name}", file=sys.stderr)
    return 0 if verdict == PROMOTE else 1


if __name__ == "__main__":
    sys.exit(main())
