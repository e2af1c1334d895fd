"""Fill a per-clip table's clip columns (width, height, fps, is_hdr) from metadata (ADR-0668).

Clips match a metadata row when ``clip_name`` equals the basename of its ``src``. Only null
cells are filled unless --overwrite-metadata (the fork's name; --overwrite is accepted too);
motion_fps_weight follows the frame rate. The enriched
table goes to --out, never over its input, so the extracted table and its sidecar stay intact.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, read_parquet, require_columns, write_parquet
from ai.features.tables import ENRICHED_COLUMNS, enrich, read_metadata
from provenance import current_run, recorded_run

UNMATCHED_SHOWN = 50


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", type=Path, required=True, help="the per-clip parquet")
    parser.add_argument("--metadata", type=Path, required=True, help="clip metadata JSONL")
    parser.add_argument(
        "--overwrite-metadata",
        "--overwrite",
        dest="overwrite",
        action="store_true",
        help="replace cells already set (--overwrite is the same flag, kept for older commands)",
    )
    parser.add_argument("--out", type=Path, required=True, help="the enriched parquet")
    add_manifest_out(parser, "<out>")
    return parser


@recorded_run(inputs={"table": "table", "metadata": "metadata"}, outputs={"table": "out"})
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if os.path.abspath(args.out) == os.path.abspath(args.table):
            raise InputError(
                "--out must differ from --table: enriching in place would overwrite "
                "the extracted table that its own sidecar describes"
            )
        table = read_parquet(args.table)
        require_columns(args.table, table, ["clip_name", *ENRICHED_COLUMNS, "motion_fps_weight"])
        metadata, metadata_rows, metadata_keys = read_metadata(args.metadata)
    except InputError as err:
        return fail(parser.prog, err)
    result = enrich(table, metadata, overwrite=args.overwrite)
    write_parquet(args.out, result.table)
    current_run().record(
        counters={**result.counters(), "metadata_rows": metadata_rows},
        updated_by_column=result.updated_by_column,
        metadata_keys=metadata_keys,
        overwrite=args.overwrite,
        policy="overwrite every matched cell" if args.overwrite else "fill null cells only",
        unmatched_clips=result.unmatched_clips[:UNMATCHED_SHOWN],
        unmatched_clips_truncated=len(result.unmatched_clips) > UNMATCHED_SHOWN,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
