"""Render a shipped model's card in Markdown, its evidence section built from the records.

The card gives the model's file, digest and description, then its evidence: every run on its
lineage back to the corpus with each gate's verdict and numbers, the corpus the chain begins
at, the lineage tree, and every artifact with its recorded digest checked against the file now.
--evidence names records of runs that checked the model afterwards (its validation): their
gates join the card, and each must have read the model (by digest). Paths on the card are
relative to --root, where records are looked for; the card holds no time.

Exit 0 when the evidence is complete; 1 when the chain has a problem (a run that did not
succeed, a failed gate, a missing or unreadable record, an artifact changed since it was
recorded), with the card still written and the problems at its top; 2 on an input error (no
model file, --root not a folder, the model outside it), with no card written. An artifact that
was recorded but is absent here (a local corpus not kept where the card is rendered) is
local-only evidence: the card shows its recorded digest and says it is not present, and exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError
from ai.release.model_card import build
from provenance import Checker, atomic_write, current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, required=True, help="the shipped model file")
    parser.add_argument(
        "--root", type=Path, required=True, help="where records are; card paths are relative to it"
    )
    parser.add_argument(
        "--evidence",
        type=Path,
        action="append",
        default=[],
        help="a record (or its artifact) of a run that checked the model (repeatable)",
    )
    parser.add_argument(
        "--corpus",
        type=Path,
        action="append",
        default=[],
        help="a folder of raw inputs no run made, where the chain may begin (repeatable)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the Markdown card to write")
    add_manifest_out(parser, "<out>")
    return parser


def check_inputs(args: argparse.Namespace) -> None:
    if not args.root.is_dir():
        raise InputError(f"{args.root}: --root is not a folder")
    root = os.path.realpath(args.root)
    for given in [args.model, *args.evidence]:
        if not given.is_file():
            raise InputError(f"{given}: no such file")
        if not os.path.realpath(given).startswith(root.rstrip(os.sep) + os.sep):
            raise InputError(f"{given}: not under --root {args.root}")
    if os.path.realpath(args.out) == os.path.realpath(args.model):
        raise InputError(f"{args.out}: --out would overwrite the model")


@recorded_run(inputs={"model": "model", "evidence": "evidence"}, outputs={"card": "out"})
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_inputs(args)
    except InputError as err:
        return fail(parser.prog, err)
    with Checker() as checker:
        card = build(args.model, args.root, args.evidence, args.corpus, checker)
    atomic_write(args.out, card.text.encode("utf-8"))
    run = current_run()
    run.record(
        model_id=card.model_id,
        records_read=card.records,
        problems=len(card.problems),
        local_only=card.local_only,
    )
    run.gate(
        "evidence_complete",
        not card.problems,
        problems=len(card.problems),
        local_only=len(card.local_only),
    )
    if card.problems:
        print(
            f"{parser.prog}: {args.out}: the evidence has {len(card.problems)} problem(s), "
            "listed at the top of the card",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
