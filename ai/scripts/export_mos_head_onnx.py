"""Export a MOS head checkpoint to ONNX, with its model sidecar and optional registry entry.

The model sidecar (<out>.json unless --model-sidecar) holds id, kind, onnx, opset, sha256,
input/output names and shapes, features, input_mean and input_std, and the run's provenance.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_json
from ai.mos import onnx_head
from ai.mos.mos_head import load_checkpoint
from ai.release.registry import register
from provenance import atomic_write, current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", type=Path, required=True, help="the .npz checkpoint")
    parser.add_argument("--out", type=Path, required=True, help="the .onnx file to write")
    parser.add_argument(
        "--model-sidecar", type=Path, help="the model sidecar (default: <out>.json)"
    )
    parser.add_argument("--model-id", help="the model's id (default: the checkpoint's stem)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default: 17)")
    parser.add_argument("--registry", type=Path, help="a registry.json to add the model to")
    add_manifest_out(parser, "<out>")
    return parser


def model_sidecar_path(args: argparse.Namespace) -> Path:
    given: Path | None = args.model_sidecar
    return given or Path(args.out).with_suffix(".json")


@recorded_run(
    inputs={"checkpoint": "checkpoint"},
    outputs={"onnx": "out", "model_sidecar": model_sidecar_path, "registry": "registry"},
    embed_into="model_sidecar",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    model_id = args.model_id or args.checkpoint.stem
    try:
        if not 13 <= args.opset <= 21:
            raise InputError(f"--opset {args.opset}: supported opsets are 13 to 21")
        head, features = load_checkpoint(args.checkpoint)
        model = onnx_head.build(head, features, args.opset, model_id)
    except InputError as err:
        return fail(parser.prog, err)
    data = model.SerializeToString(deterministic=True)
    atomic_write(args.out, data)
    sidecar_path = model_sidecar_path(args)
    signature = onnx_head.signature(model)
    sidecar = onnx_head.model_sidecar(
        model_id, "mos_head", args.out.name, data, model, head, features
    )
    write_json(sidecar_path, sidecar)
    if args.registry is not None:
        try:
            register(args.registry, sidecar, args.out, sidecar_path)
        except InputError as err:
            return fail(parser.prog, err)
    current_run().record(model_id=model_id, **signature, features=list(features))
    return 0


if __name__ == "__main__":
    sys.exit(main())
