"""Smoke-check an exported vmaf_tiny_v4 ONNX on the first --rows rows of a per-frame table.

Feeds the raw canonical six, scores PLCC and RMSE against vmaf and gates PLCC >= --min-plcc;
--v2-onnx and --v3-onnx (optional) print how far the older models' predictions are. With
--out-json the report is written and the run recorded (the validated ONNX, the table, the
comparison models, the gate threshold); without it nothing is written. Exits 0 PASS, 1 FAIL
(the report written either way), 2 when the table lacks a canonical-6 column or vmaf, or an
input cannot be read.
"""

from __future__ import annotations

import sys

from ai.tiny.validation import build_parser, records, validate
from provenance import recorded_run


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(__doc__, "v4")
    args = parser.parse_args(argv)
    if not records(args):
        return validate("v4", parser, args)
    return recorded_main(argv)


@recorded_run(
    inputs={"onnx": "onnx", "parquet": "parquet", "v2_onnx": "v2_onnx", "v3_onnx": "v3_onnx"},
    outputs={"report": "out_json"},
    embed_into="report",
)
def recorded_main(argv: list[str] | None = None) -> int:
    """The same validation, recorded: only when --out-json or --manifest-out says where."""
    parser = build_parser(__doc__, "v4")
    return validate("v4", parser, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
