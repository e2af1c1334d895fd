"""Leave-one-source-out over several seeds for mlp_medium (v3) or mlp_large (v4); no export.

Works on any table with ``source`` (Netflix clips, KoNViD folds). The report holds every seed's
folds, each seed's mean, each fold's mean and std over the seeds (ddof 1, 0 for one seed), the
mean and std over the seeds' means, and the run's provenance. Exits 2 when ``source``, a
canonical-6 column or vmaf is missing.
"""

from __future__ import annotations

import sys

from ai.tiny.reports import build_multiseed_parser, multiseed
from provenance import recorded_run


@recorded_run(inputs={"parquet": "parquet"}, outputs={"report": "out_json"}, embed_into="report")
def main(argv: list[str] | None = None) -> int:
    parser = build_multiseed_parser(__doc__)
    return multiseed(parser, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
