"""Merge vmaf-tune encode-grid corpora (schema v3), first row per natural key wins (ADR-0669)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_jsonl
from ai.corpus.corpora import CORPUS_ROW_KEYS, NATURAL_KEY, SCHEMA_VERSION, merge
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("inputs", type=Path, nargs="+", help="two or more corpus JSONL files")
    parser.add_argument("--output", type=Path, required=True, help="the merged JSONL")
    add_manifest_out(parser, "<output>")
    return parser


@recorded_run(inputs={"corpora": "inputs"}, outputs={"output": "output"})
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(args.inputs) < 2:
        parser.error("merging needs at least two inputs")
    try:
        result = merge(args.inputs)
    except InputError as err:
        return fail(parser.prog, err)
    write_jsonl(args.output, result.rows)
    current_run().record(
        counters=result.counters(),
        per_input=result.per_input,
        schema_version=SCHEMA_VERSION,
        required_keys=list(CORPUS_ROW_KEYS),
        dedup_fields=list(NATURAL_KEY),
        dedup_policy="first row wins, in input order",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
