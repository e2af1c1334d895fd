"""Should v5 ship? v2's recipe on the base table against v5's on base + UGC, Netflix LOSO.

Folds are the sorted sources of the rows whose corpus is netflix (the base table needs a
``corpus`` column saying so); each trains on every other row (v5 keeps every UGC row in
training) and scores the held-out Netflix source. ``ship_v5`` when v5's mean PLCC beats v2's
by at least v2's PLCC std, else ``defer``. The report carries both recipes' folds and the run's
provenance; the decision is not a failure (exit 0); an unreadable table is exit 2.
"""

from __future__ import annotations

import sys

from ai.tiny.reports import build_parser, compare_v2_v5
from provenance import recorded_run


@recorded_run(
    inputs={"parquet_base": "parquet_base", "parquet_extra": "parquet_extra"},
    outputs={"report": "out_json"},
    embed_into="report",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser(__doc__, two_tables=True)
    return compare_v2_v5(parser, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
