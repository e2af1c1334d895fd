"""Combine FULL_FEATURES parquet tables from several corpora into one (ADR-0668).

The tables' schemas differ (the clip key's name, which features were extracted), so the output
takes the union of their columns, fills what a table lacks with nulls, tags every row with its
input's label in a ``corpus`` column, and the manifest says what was filled for which input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, read_parquet, write_parquet
from ai.features.tables import Labelled, combine
from provenance import current_run, recorded_run


def labelled(text: str) -> tuple[str, Path]:
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LABEL=PATH")
    return label, Path(path)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "inputs",
        type=labelled,
        nargs="+",
        metavar="LABEL=PATH",
        help="the tables to combine, each with its corpus label",
    )
    parser.add_argument("--key-column", default="clip_name", help="name of the output clip key")
    parser.add_argument("--out", type=Path, required=True, help="the combined parquet")
    add_manifest_out(parser, "<out>")
    return parser


@recorded_run(inputs={"tables": lambda a: [p for _, p in a.inputs]}, outputs={"table": "out"})
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    labels = [label for label, _ in args.inputs]
    if len(set(labels)) != len(labels):
        return fail(parser.prog, InputError(f"each input needs its own label, got {labels}"))
    try:
        items = [Labelled(label, path, read_parquet(path)) for label, path in args.inputs]
        combined = combine(items, args.key_column)
    except InputError as err:
        return fail(parser.prog, err)
    write_parquet(args.out, combined.table)
    current_run().record(
        inputs=combined.inputs,
        row_count=combined.table.num_rows,
        corpus_distribution=combined.corpus_distribution,
        output_columns=combined.table.column_names,
        duplicate_keys=combined.duplicate_keys,
        fill="null",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
