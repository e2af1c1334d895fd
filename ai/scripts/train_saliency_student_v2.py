"""Train the v2 saliency student (TinyUNetV2: bilinear x2 + Conv3x3 upsampling); export ONNX.

Reads <duts-root>/DUTS-TR-Image/<stem>.jpg|.png with DUTS-TR-Mask/<stem>.png (JPEG decoding
is not available: images must be PNG). Writes the best-IoU state as ONNX (``input``
[1,3,H,W] -> ``saliency_map`` [1,1,H,W], H/W dynamic) and, with --metrics-out, the metrics
JSON carrying the run's provenance. Exits 0; 1 when no epoch gives a finite IoU or the ONNX
differs from the numpy model (metrics and sidecar still written); 2 on an input error.
"""

from __future__ import annotations

import sys

from ai.saliency import training
from provenance import recorded_run


@recorded_run(
    inputs={"duts_root": "duts_root"},
    outputs={"onnx": "output", "metrics": "metrics_out"},
    embed_into="metrics",
)
def main(argv: list[str] | None = None) -> int:
    parser = training.build_parser("v2", __doc__)
    return training.main(parser.parse_args(argv), parser.prog)


if __name__ == "__main__":
    sys.exit(main())
