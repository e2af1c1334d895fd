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

from ai.common.cli import add_manifest_out
from ai.dnn import export, transnet
from provenance import recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=Path("model/tiny/transnet_v2.onnx"))
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
    export.check_opset(parser, args.opset)
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
        **transnet.contract(args, data),
        "smoke": True,
        "name": "vmaf_tiny_transnet_v2_placeholder_v0",
        "license": "BSD-3-Clause-Plus-Patent",
        "notes": notes,
    }.items()))  # fmt: skip
    row = {"smoke": True, "license": "BSD-3-Clause-Plus-Patent", "notes": notes}
    return export.write_model(parser.prog, args, data, sidecar, row)


if __name__ == "__main__":
    sys.exit(main())
