"""Train vmaf_tiny_v5 (v2's mlp_small recipe) on a base table and a UGC table together.

Both tables need the canonical six and vmaf (else a one-line message and exit 1, as the
fork's); ``source`` and ``corpus`` are kept, the extra table's rows get ``corpus="ugc"`` when it
has none, and rows with a missing value are left out. Writes the checkpoint and the stats JSON
(v2's keys plus parquet_base and parquet_extra, and the run's provenance). Export it with
export_vmaf_tiny_v2.py.
"""

from __future__ import annotations

import sys

from ai.tiny.training import build_parser, fit_version
from provenance import recorded_run


@recorded_run(
    inputs={"parquet_base": "parquet_base", "parquet_extra": "parquet_extra"},
    outputs={"checkpoint": "out_ckpt", "stats": "out_stats"},
    embed_into="stats",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser(__doc__, two_tables=True)
    return fit_version("v5", parser, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
