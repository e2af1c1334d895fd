"""A smoke-only TransNet V2 stand-in: seeded random weights, the same I/O contract, as ONNX.

``frames`` [1,100,3,27,48] reshaped to [100, 3888], Linear(3888, 8), ReLU, Linear(8, 1),
reshaped to ``boundary_logits`` [1,100] (seed 0x715A57; no dynamic axes). Its sidecar says
``smoke: true``: it is a placeholder, not a shot detector.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError
from ai.dnn import export, transnet
from provenance import recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("model/tiny/transnet_v2.onnx"))
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    export.add_registry_options(parser)
    add_manifest_out(parser, "<output>")
    return parser


def sidecar_path(args: argparse.Namespace) -> Path | None:
    return None if args.no_registry else Path(args.output).with_suffix(".json")


@recorded_run(
    outputs={"onnx": "output", "sidecar": sidecar_path, "registry": export.registry_path},
    embed_into="sidecar",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 13 <= args.opset <= 21:
        parser.error(f"--opset {args.opset}: supported opsets are 13 to 21")
    state = transnet.placeholder_state()
    try:
        export.require_registry(args)
        frames = np.random.default_rng(0).random(transnet.SHAPE_IN).astype(np.float32)
        data = export.check(
            transnet.build_placeholder(state, args.opset),
            {transnet.INPUT: frames},
            lambda f: transnet.placeholder_forward(state, f[transnet.INPUT]),
            1e-4,
            "transnet_v2",
        )
    except export.FatalCheck as err:
        return export.fatal(parser.prog, err)
    notes = (
        "PLACEHOLDER: seeded random weights (0x715A57), smoke only; pins the TransNet V2 "
        "I/O contract until real weights are exported."
    )
    sidecar: dict[str, Any] = dict(sorted({
        "id": "transnet_v2",
        "kind": "shot_detector",
        "onnx": Path(args.output).name,
        "opset": args.opset,
        "sha256": export.sha256_bytes(data),  # the registry validator matches it
        "input_name": transnet.INPUT,
        "output_name": transnet.OUTPUT,
        "frame_window": transnet.WINDOW,
        "thumbnail_h": transnet.HEIGHT,
        "thumbnail_w": transnet.WIDTH,
        "channels": transnet.CHANNELS,
        "boundary_threshold": 0.5,
        "smoke": True,
        "name": "vmaf_tiny_transnet_v2_placeholder_v0",
        "license": "BSD-3-Clause-Plus-Patent",
        "notes": notes,
    }.items()))  # fmt: skip
    row = {
        "id": "transnet_v2",
        "kind": "shot_detector",
        "opset": args.opset,
        "sha256": export.sha256_bytes(data),
        "smoke": True,
        "license": "BSD-3-Clause-Plus-Patent",
        "notes": notes,
    }
    try:
        export.publish(
            args, Path(args.output), data, sidecar, Path(args.output).with_suffix(".json"), row
        )
    except InputError as err:
        return fail(parser.prog, err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
