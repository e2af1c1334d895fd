"""Wrap upstream FastDVDnet weights into the luma 5-frame pre-filter contract, as ONNX.

Reads <upstream-dir>/model.npz (the weights, upstream's ``model.pth`` here as an .npz; names
saved from DataParallel lose their ``module.`` prefix), checks its sha256 against the pin
(--weights-sha256, upstream's by default) and that it holds the FastDVDnet architecture, builds
the graph (``frames`` [1,5,H,W] -> ``denoised`` [1,1,H,W], H and W dynamic), checks it against a
numpy forward of the same weights (at --height x --width) and writes it with its sidecar
(<output>.json) and registry row. A missing or mismatched weights file, a missing registry or
a failed check is fatal: exit 1. --no-registry writes the ONNX alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError
from ai.dnn import export, fastdvdnet
from provenance import recorded_run

PINNED_SHA256 = "9d9d8413c33e3d9d961d07c530237befa1197610b9d60602ff42fd77975d2a17"
UPSTREAM_REPO = "https://github.com/m-tassano/fastdvdnet"
UPSTREAM_COMMIT = "c8fdf6182a0340e89dd18f5df25b47337cbede6f"
WEIGHTS = "model.npz"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--upstream-dir", type=Path, default=Path("fastdvdnet"), help=f"holds {WEIGHTS}"
    )
    parser.add_argument("--output", type=Path, default=Path("model/tiny/fastdvdnet_pre.onnx"))
    parser.add_argument("--sigma", type=float, default=25 / 255, help="noise level (25/255)")
    parser.add_argument("--height", type=int, default=64, help="parity frame height (64)")
    parser.add_argument("--width", type=int, default=64, help="parity frame width (64)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    parser.add_argument(
        "--weights-sha256", default=PINNED_SHA256, help="the pinned digest (upstream's)"
    )
    export.add_registry_options(parser)
    add_manifest_out(parser, "<output>")
    return parser


def weights_path(args: argparse.Namespace) -> Path:
    return Path(args.upstream_dir) / WEIGHTS


@recorded_run(
    inputs={"weights": weights_path},
    outputs={"onnx": "output", "sidecar": export.sidecar_path, "registry": export.registry_path},
    embed_into="sidecar",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.height < 2 or args.width < 2 or args.height % 2 or args.width % 2:
        parser.error("--height and --width must be even and at least 2")
    export.check_opset(parser, args.opset)
    weights = weights_path(args)
    try:
        digest, checkpoint = export.load_pinned(
            weights, args.weights_sha256, fastdvdnet.ARCHITECTURE
        )
        export.require_registry(args)
        state = fastdvdnet.strip_module(checkpoint.state)
        c0, c1 = (
            fastdvdnet.widths(state)
            if "temp1.inc.weight" in state and "temp1.downc0.weight" in state
            else (8, 16)
        )
        export.require(weights, state, fastdvdnet.shapes(c0, c1))
        model = fastdvdnet.build(state, args.sigma, args.opset)
        rng = np.random.default_rng(0)
        frames = rng.random((1, fastdvdnet.FRAMES, args.height, args.width), dtype=np.float32)
        data = export.check(
            model,
            {fastdvdnet.INPUT: frames},
            lambda f: fastdvdnet.forward(state, f[fastdvdnet.INPUT], args.sigma),
            1e-4,
            "fastdvdnet_pre",
        )
    except InputError as err:
        return fail(parser.prog, err)
    except export.FatalCheck as err:
        return export.fatal(parser.prog, err)
    notes = (
        "FastDVDnet (reduced widths) wrapped for the luma 5-frame contract: each luma plane "
        "tiled to RGB, constant noise map, RGB clamped to [0, 1] then BT.601 luma. "
        "PixelShuffle decomposed into Reshape/Transpose/Reshape (no DepthToSpace)."
    )
    sidecar: dict[str, Any] = dict(sorted({
        **fastdvdnet.contract(args, data),
        "smoke": False,
        "name": "vmaf_tiny_fastdvdnet_pre_v1",
        **export.upstream(UPSTREAM_REPO, UPSTREAM_COMMIT, digest),
        "notes": notes,
    }.items()))  # fmt: skip
    row = {
        "smoke": False,
        "license": "MIT",
        "license_url": export.license_url(UPSTREAM_REPO, UPSTREAM_COMMIT),
        "description": "FastDVDnet temporal denoiser, luma 5-frame pre-filter",
        "notes": notes,
    }
    return export.write_model(parser.prog, args, data, sidecar, row)


if __name__ == "__main__":
    sys.exit(main())
