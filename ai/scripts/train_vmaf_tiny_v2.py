"""Train vmaf_tiny_v2 (mlp_small, ReLU) on every row of a per-frame canonical-6 table.

Writes the .npz checkpoint (--out-ckpt; the fork's .pt keys) and the stats JSON (--out-stats:
the checkpoint's keys but the weights, plus n_train_rows and the run's provenance). Exits 2
when the table lacks a canonical-6 column or vmaf, or cannot be read.
"""

from __future__ import annotations

import sys

from ai.tiny.training import build_parser, fit_version
from provenance import recorded_run


@recorded_run(
    inputs={"parquet": "parquet"},
    outputs={"checkpoint": "out_ckpt", "stats": "out_stats"},
    embed_into="stats",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser(__doc__)
    return fit_version("v2", parser, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
