"""Export a vmaf_tiny_v3 checkpoint (mlp_medium) to ONNX with the scaler baked in, and its sidecar.

Input ``features`` [N,6] (raw canonical-6), output ``vmaf`` [N], opset 17; the graph passes the
ONNX checker, libvmaf's operator allowlist and a CPU parity check before it is written. The
sidecar carries the run's provenance; no registry is written. Exits 2 on a checkpoint
that is missing, unreadable, not mlp_medium or not on six features.
"""

from __future__ import annotations

import sys

from ai.tiny.exporting import build_parser, export_version
from provenance import recorded_run


@recorded_run(
    inputs={"checkpoint": "ckpt"},
    outputs={"onnx": "out_onnx", "model_sidecar": "out_sidecar"},
    embed_into="model_sidecar",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser(__doc__)
    return export_version("v3", parser, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
