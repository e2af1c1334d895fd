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
from ai.common.files import InputError, sha256_file
from ai.common.onnx_checks import ExportCheckError, check_export
from ai.dnn import export, transnet
from provenance import current_run, recorded_run

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


def sidecar_path(args: argparse.Namespace) -> Path | None:
    return None if args.no_registry else Path(args.output).with_suffix(".json")


def verify(model: onnx.ModelProto, state: dict[str, np.ndarray]) -> bytes:
    """Allowlist and parity on 3 random inputs x 255; the worst drift is the gate's."""
    rng = np.random.default_rng(VERIFY_SEED)
    data, worst = b"", 0.0
    try:
        for _ in range(VERIFY_RUNS):
            frames = (rng.random(transnet.SHAPE_IN) * 255.0).astype(np.float32)
            data, drift = check_export(
                model,
                {transnet.INPUT: frames},
                lambda f: transnet.forward(state, f[transnet.INPUT]),
                ATOL,
            )
            worst = max(worst, drift)
    except ExportCheckError as err:
        current_run().gate("transnet_v2_checks", False, detail=str(err), atol=ATOL)
        raise export.FatalCheck(str(err)) from None
    current_run().gate("transnet_v2_checks", True, max_abs_diff=round(worst, 9), atol=ATOL)
    return data


@recorded_run(
    inputs={"weights": weights_path},
    outputs={"onnx": "output", "sidecar": sidecar_path, "registry": export.registry_path},
    embed_into="sidecar",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 13 <= args.opset <= 21:
        parser.error(f"--opset {args.opset}: supported opsets are 13 to 21")
    weights = weights_path(args)
    try:
        if not weights.is_file():
            raise export.FatalCheck(f"{weights}: no such weights file")
        digest = sha256_file(weights)
        if args.weights_sha256 is not None and digest != args.weights_sha256:
            raise export.FatalCheck(
                f"{weights}: sha256 {digest} is not the pinned {args.weights_sha256}"
            )
        checkpoint = export.load_checkpoint(weights)
        if checkpoint.hyper_parameters.get("architecture") != transnet.ARCHITECTURE:
            raise export.FatalCheck(f"{weights}: holds no {transnet.ARCHITECTURE} architecture")
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
    license_url = f"{UPSTREAM_REPO}/blob/{UPSTREAM_COMMIT}/LICENSE"
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
        "smoke": False,
        "name": "vmaf_tiny_transnet_v2_v1",
        "license": "MIT",
        "license_url": license_url,
        "upstream_repo": UPSTREAM_REPO,
        "upstream_commit": UPSTREAM_COMMIT,
        "upstream_weights_sha256": digest,
        "notes": notes,
    }.items()))  # fmt: skip
    row = {
        "id": "transnet_v2",
        "kind": "nr",  # the fork's registry row says nr, its sidecar shot_detector
        "opset": args.opset,
        "sha256": export.sha256_bytes(data),
        "license": "MIT",
        "license_url": license_url,
        "description": "TransNet V2 shot-boundary detector",
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
