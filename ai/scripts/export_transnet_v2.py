"""Convert upstream TransNet V2 weights to the shot-detector ONNX contract.

Reads <upstream-dir>/weights.npz (the weights as an .npz, in place of upstream's TF
SavedModel; no TensorFlow is needed), checks its sha256 when --weights-sha256 pins one and that
it holds the TransNetV2 architecture, builds the graph directly (``frames`` [1,100,3,27,48],
0-255, -> ``boundary_logits`` [1,100]) and, unless --skip-verify, checks the operator allowlist
and parity with a numpy forward on 3 random inputs x 255 (seed 0xABCDEF, worst max-abs < 1e-4).
Writes it with its sidecar (<output>.json) and registry row. A missing or mismatched weights
file, a missing registry or a failed check is fatal: exit 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError
from ai.dnn import export, transnet
from provenance import recorded_run

UPSTREAM_REPO = "https://github.com/soCzech/TransNetV2"
UPSTREAM_COMMIT = "77498b8e4a6d61ed7c3d9bd56f4de2b29ab7f4db"
WEIGHTS = "weights.npz"
VERIFY_SEED, VERIFY_RUNS, ATOL = 0xABCDEF, 3, 1e-4


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream-dir", type=Path, required=True, help=f"holds {WEIGHTS}")
    parser.add_argument("--output", type=Path, default=Path("model/tiny/transnet_v2.onnx"))
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    parser.add_argument("--weights-sha256", help="the digest the weights must have")
    parser.add_argument("--skip-verify", action="store_true", help="no allowlist or parity")
    export.add_registry_options(parser)
    add_manifest_out(parser, "<output>")
    return parser


def weights_path(args: argparse.Namespace) -> Path:
    return Path(args.upstream_dir) / WEIGHTS


def verify(model: onnx.ModelProto, state: dict[str, np.ndarray]) -> bytes:
    """Allowlist and parity on 3 random inputs x 255; the worst drift is the gate's."""
    rng = np.random.default_rng(VERIFY_SEED)
    feeds = [
        {transnet.INPUT: (rng.random(transnet.SHAPE_IN) * 255.0).astype(np.float32)}
        for _ in range(VERIFY_RUNS)
    ]
    return export.check(
        model, feeds, lambda f: transnet.forward(state, f[transnet.INPUT]), ATOL, "transnet_v2"
    )


@recorded_run(
    inputs={"weights": weights_path},
    outputs={"onnx": "output", "sidecar": export.sidecar_path, "registry": export.registry_path},
    embed_into="sidecar",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    export.check_opset(parser, args.opset)
    weights = weights_path(args)
    try:
        digest, checkpoint = export.load_pinned(weights, args.weights_sha256, transnet.ARCHITECTURE)
        export.require_registry(args)
        state = checkpoint.state
        names = ("ddcnn.0.conv.weight", "fc1.weight")
        filters, dense = transnet.widths(state) if all(n in state for n in names) else (4, 8)
        export.require(weights, state, transnet.shapes(filters, dense))
        model = transnet.build(state, args.opset)
        if args.skip_verify:
            onnx.checker.check_model(model, full_check=True)
            data = model.SerializeToString()
        else:
            data = verify(model, state)
    except InputError as err:
        return fail(parser.prog, err)
    except export.FatalCheck as err:
        return export.fatal(parser.prog, err)
    notes = (
        "TransNet V2 shot-boundary detector (reduced trunk, no colour-histogram branch): "
        "100-frame window of 27x48 RGB thumbnails (0-255) -> per-frame boundary logits."
    )
    sidecar: dict[str, Any] = dict(sorted({
        **transnet.contract(args, data),
        "smoke": False,
        "name": "vmaf_tiny_transnet_v2_v1",
        **export.upstream(UPSTREAM_REPO, UPSTREAM_COMMIT, digest),
        "notes": notes,
    }.items()))  # fmt: skip
    row = {
        "license": "MIT",
        "license_url": export.license_url(UPSTREAM_REPO, UPSTREAM_COMMIT),
        "description": "TransNet V2 shot-boundary detector",
        "notes": notes,
    }
    # the fork's registry row says nr, its sidecar shot_detector
    return export.write_model(parser.prog, args, data, sidecar, row, kind="nr")


if __name__ == "__main__":
    sys.exit(main())
