"""Aggregate per-corpus MOS JSONL onto one 0-100 axis, deduplicated on src_sha256 (ADR-0669)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_jsonl
from ai.corpus.corpora import MOS_ROW_KEYS, SCALE_TOLERANCE, aggregate, parse_override
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("inputs", type=Path, nargs="+", help="per-corpus MOS JSONL shards")
    parser.add_argument("--output", type=Path, required=True, help="the aggregated JSONL")
    parser.add_argument(
        "--corpus-source-override",
        action="append",
        default=[],
        metavar="PATH=LABEL",
        help="relabel every row of one input (repeatable)",
    )
    parser.add_argument(
        "--allow-missing", action="store_true", help="skip inputs that do not exist (counted)"
    )
    add_manifest_out(parser, "<output>")
    return parser


def resolve_overrides(inputs: list[Path], given: list[str]) -> dict[str, str]:
    """``PATH=LABEL`` pairs keyed by the input they name; naming no input is an error."""
    by_real = {os.path.realpath(p): str(p) for p in inputs}
    overrides: dict[str, str] = {}
    for text in given:
        path, label = parse_override(text)
        named = by_real.get(os.path.realpath(path))
        if named is None:
            raise InputError(f"--corpus-source-override {text!r}: {path} is not one of the inputs")
        overrides[named] = label
    return overrides


@recorded_run(inputs={"corpora": "inputs"}, outputs={"output": "output"})
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        overrides = resolve_overrides(args.inputs, args.corpus_source_override)
        result = aggregate(args.inputs, overrides, allow_missing=args.allow_missing)
    except InputError as err:
        return fail(parser.prog, err)
    write_jsonl(args.output, result.rows)
    current_run().record(
        counters=result.counters(),
        scale_conversions={
            corpus: scale.as_record() for corpus, scale in sorted(result.scales_used.items())
        },
        scale_tolerance=SCALE_TOLERANCE,
        corpus_source_overrides={Path(path): label for path, label in overrides.items()},
        unknown_corpora=result.unknown_corpora,
        dedup={
            "key": "src_sha256",
            "same_corpus": "first row",
            "cross_corpus": "smallest positive finite mos_std_dev, ties keep the first",
        },
        sort_key=["corpus_source", "src_sha256"],
        input_row_keys=list(MOS_ROW_KEYS),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
