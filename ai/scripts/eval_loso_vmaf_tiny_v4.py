"""Leave-one-source-out evaluation of the vmaf_tiny_v4 recipe (mlp_large); nothing is exported.

Per sorted ``source``: the scaler fitted on the other sources, the model trained on them as
train_vmaf_tiny_v4.py does, scored on the held-out source (n, PLCC, SROCC, RMSE). The report
holds every fold, the mean and std (ddof 1) of each metric, and the run's provenance. Exits 2
when the table lacks ``source``, a canonical-6 column or vmaf.
"""

from __future__ import annotations

import sys

from ai.tiny.reports import build_parser, loso_version
from provenance import recorded_run


@recorded_run(inputs={"parquet": "parquet"}, outputs={"report": "out_json"}, embed_into="report")
def main(argv: list[str] | None = None) -> int:
    parser = build_parser(__doc__)
    return loso_version("v4", parser, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
