"""Summarise a MOS scores CSV into a JSON report, gated on a minimum spread of scores."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.corpus.scores import ScoreTableError, read_scores, summarise
from provenance import atomic_write, current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("scores", type=Path, help="CSV with clip_name,mos on the 1-5 ACR scale")
    parser.add_argument("--out", type=Path, required=True, help="the JSON report to write")
    parser.add_argument(
        "--min-std", type=float, default=0.5, help="gate: scores must spread at least this much"
    )
    add_manifest_out(parser, "<out>")
    return parser


@recorded_run(inputs={"scores": "scores"}, outputs={"report": "out"}, embed_into="report")
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        summary = summarise(read_scores(args.scores))
    except ScoreTableError as err:
        return fail(parser.prog, err)
    passed = summary.mos_std >= args.min_std
    run = current_run()
    run.record(**summary.as_dict())
    run.gate("mos_spread", passed, mos_std=summary.mos_std, min_std=args.min_std)
    report = {"summary": summary.as_dict(), "gate": {"mos_spread": passed}}
    atomic_write(args.out, (json.dumps(report, indent=2) + "\n").encode())
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
