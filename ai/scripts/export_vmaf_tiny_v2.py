"""Export a vmaf_tiny_v2 checkpoint (mlp_small) to ONNX with the scaler baked in, and its sidecar.

Input ``features`` [N,6] (raw canonical-6), output ``vmaf`` [N], opset 17; the graph passes the
ONNX checker, libvmaf's operator allowlist and a CPU parity check before it is written. The
sidecar carries the run's provenance; no registry is written. v5 checkpoints (mlp_small too)
export with it. Exits 2 on a checkpoint that is missing, unreadable, not mlp_small or not on
six features.
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
    return export_version("v2", parser, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
