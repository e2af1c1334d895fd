"""Export the KoNViD C2 NR metric and C3 learned filter checkpoints to ONNX, sidecars, registry.

Each checkpoint (an .npz: ``hyper_parameters`` as JSON and the state dict) is rebuilt as its
architecture's ONNX graph (opset 17, dynamic batch), checked (checker, libvmaf's operator
allowlist, onnxruntime parity with a numpy forward of the checkpoint, atol 1e-4) and written as
<out-dir>/<id>.onnx with its sidecar <id>.json (id, kind, onnx, opset, sha256, notes) and a row
in the registry. A missing checkpoint is skipped; both missing is fatal (exit 1), as are a
missing registry and a failed check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError
from ai.dnn import export, tiny
from provenance import recorded_run

NOTES = {
    "nr": "KoNViD C2 no-reference metric: luma frame -> MOS (MobileNet-style, ReLU6).",
    "filter": "KoNViD C3 learned filter: degraded luma -> filtered luma (residual, clamped).",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--c2-ckpt", type=Path, default=Path("runs/c2_konvid/last.npz"))
    parser.add_argument("--c3-ckpt", type=Path, default=Path("runs/c3_konvid/last.npz"))
    parser.add_argument("--c2-id", default="nr_metric_v1")
    parser.add_argument("--c3-id", default="learned_filter_v1")
    parser.add_argument("--out-dir", type=Path, default=Path("model/tiny"), help="(model/tiny)")
    parser.add_argument("--frame-size", type=int, default=224, help="frame side (default 224)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    export.add_registry_options(parser)
    add_manifest_out(parser, "<first onnx>")
    return parser


def _present(args: argparse.Namespace) -> list[str]:
    """The ids to export: those whose checkpoint is there (both when neither is, for naming)."""
    ids = [i for i, ckpt in ((args.c2_id, args.c2_ckpt), (args.c3_id, args.c3_ckpt))
           if Path(ckpt).is_file()]  # fmt: skip
    return ids or [args.c2_id, args.c3_id]


def onnx_paths(args: argparse.Namespace) -> list[Path]:
    return [Path(args.out_dir) / f"{i}.onnx" for i in _present(args)]


def sidecar_paths(args: argparse.Namespace) -> list[Path] | None:
    """Where the sidecars go; the first one written holds the run's block."""
    return None if args.no_registry else [Path(args.out_dir) / f"{i}.json" for i in _present(args)]


def export_one(
    args: argparse.Namespace, which: str, ckpt: Path, model_id: str
) -> tuple[Path, bytes, dict[str, Any], Path]:
    """The checked ONNX bytes of one checkpoint and its sidecar; nothing is written yet."""
    checkpoint = export.load_checkpoint(ckpt)
    size, rng = args.frame_size, np.random.default_rng(0)
    state = checkpoint.state
    if which == "c2":
        hyper = tiny.c2_hyper(checkpoint.hyper_parameters)
        export.require(ckpt, state, tiny.c2_shapes(hyper))
        model = tiny.c2_onnx(state, size, args.opset, model_id)
        feeds = {"frame": rng.random((2, hyper["in_channels"], size, size), dtype=np.float32)}
        data = export.check(
            model, feeds, lambda f: tiny.c2_forward(state, f["frame"]), 1e-4, model_id
        )
        kind = "nr"
    else:
        hyper = tiny.c3_hyper(checkpoint.hyper_parameters)
        export.require(ckpt, state, tiny.c3_shapes(hyper))
        blocks = hyper["num_blocks"]
        model = tiny.c3_onnx(state, blocks, size, args.opset, model_id)
        feeds = {"degraded": rng.random((2, hyper["channels"], size, size), dtype=np.float32)}
        data = export.check(
            model, feeds, lambda f: tiny.c3_forward(state, f["degraded"], blocks), 1e-4, model_id
        )
        kind = "filter"
    onnx_path = Path(args.out_dir) / f"{model_id}.onnx"
    sidecar: dict[str, Any] = {
        "id": model_id,
        "kind": kind,
        "onnx": onnx_path.name,
        "opset": args.opset,
        "sha256": export.sha256_bytes(data),
        "notes": NOTES[kind],
    }
    return onnx_path, data, sidecar, Path(args.out_dir) / f"{model_id}.json"


@recorded_run(
    inputs={"c2_checkpoint": "c2_ckpt", "c3_checkpoint": "c3_ckpt"},
    outputs={"onnx": onnx_paths, "sidecar": sidecar_paths, "registry": export.registry_path},
    embed_into="sidecar",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.frame_size < 16:
        parser.error("--frame-size must be at least 16")
    jobs = [(w, Path(c), i) for w, c, i in (("c2", args.c2_ckpt, args.c2_id),
            ("c3", args.c3_ckpt, args.c3_id)) if Path(c).is_file()]  # fmt: skip
    try:
        if not jobs:
            raise export.FatalCheck(f"nothing to export: neither {args.c2_ckpt} nor {args.c3_ckpt}")
        export.require_registry(args)
        built = [export_one(args, *job) for job in jobs]
    except InputError as err:
        return fail(parser.prog, err)
    except export.FatalCheck as err:
        return export.fatal(parser.prog, err)
    try:
        for onnx_path, data, sidecar, sidecar_path in built:
            export.publish(args, onnx_path, data, sidecar, sidecar_path, dict(sidecar))
    except InputError as err:
        return fail(parser.prog, err)
    except export.FatalCheck as err:
        return export.fatal(parser.prog, err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
