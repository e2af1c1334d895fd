"""A smoke-only FastDVDnet stand-in: seeded random weights, the same I/O contract, as ONNX.

Conv(5->8) ReLU, Conv(8->8) ReLU, Conv(8->1), all 3x3 (seed 0xFA57DEAD); the output is
clamp(centre frame + 0.05 * residual, 0, 1). ``frames`` [1,5,H,W] -> ``denoised`` [1,1,H,W],
H and W dynamic. Its sidecar says ``smoke: true``: it is a placeholder, not a denoiser.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.cli import add_manifest_out
from ai.dnn import export, fastdvdnet
from provenance import recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("model/tiny/fastdvdnet_pre.onnx"))
    parser.add_argument("--height", type=int, default=64, help="parity frame height (64)")
    parser.add_argument("--width", type=int, default=64, help="parity frame width (64)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    export.add_registry_options(parser)
    add_manifest_out(parser, "<output>")
    return parser


@recorded_run(
    outputs={"onnx": "output", "sidecar": export.sidecar_path, "registry": export.registry_path},
    embed_into="sidecar",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.height < 1 or args.width < 1:
        parser.error("--height and --width must be at least 1")
    export.check_opset(parser, args.opset)
    state = fastdvdnet.placeholder_state()
    try:
        export.require_registry(args)
        frames = np.random.default_rng(0).random(
            (1, fastdvdnet.FRAMES, args.height, args.width), dtype=np.float32
        )
        data = export.check(
            fastdvdnet.build_placeholder(state, args.opset),
            {fastdvdnet.INPUT: frames},
            lambda f: fastdvdnet.placeholder_forward(state, f[fastdvdnet.INPUT]),
            1e-4,
            "fastdvdnet_pre",
        )
    except export.FatalCheck as err:
        return export.fatal(parser.prog, err)
    notes = (
        "PLACEHOLDER: seeded random weights (0xFA57DEAD), smoke only; pins the FastDVDnet "
        "pre-filter I/O contract until real weights are exported."
    )
    sidecar: dict[str, Any] = {
        **fastdvdnet.contract(args, data),
        "smoke": True,
        "name": "vmaf_tiny_fastdvdnet_pre_placeholder_v0",
        "notes": notes,
    }
    return export.write_model(parser.prog, args, data, sidecar, {"smoke": True, "notes": notes})


if __name__ == "__main__":
    sys.exit(main())
