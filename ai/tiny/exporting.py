"""What the tiny exporters share: checkpoint to a self-contained ONNX and its model sidecar.

The fork's vmaf_tiny exporters update no registry, and ADR-0661 names only the checkpoint
input and the ONNX and sidecar outputs for them (the registry target it names belongs to the
DNN feature-model exporters), so these write no registry either.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_json
from ai.common.onnx_checks import ExportCheckError, check_export
from ai.tiny.models import INPUT_NAME, OPSET, OUTPUT_NAME, VERSIONS, export, load_checkpoint
from provenance import atomic_write, current_run

PARITY_ATOL = 1e-3  # VMAF points: float32 graph against the float64 model


def build_parser(doc: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--ckpt", type=Path, required=True, help="the .npz checkpoint")
    parser.add_argument("--out-onnx", type=Path, required=True, help="the .onnx to write")
    parser.add_argument("--out-sidecar", type=Path, required=True, help="the model sidecar JSON")
    add_manifest_out(parser, "<out-onnx>")
    return parser


def export_version(version: str, parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    arch = VERSIONS[version]
    model_id = f"vmaf_tiny_{version}"
    try:
        ckpt = load_checkpoint(args.ckpt, arch)
        graph = export(ckpt.model, model_id)
        probe = np.asarray(ckpt.model.mean) + np.outer(np.linspace(-2, 2, 9), ckpt.model.std)
        feeds = {INPUT_NAME: probe.astype(np.float32)}
        data, drift = check_export(
            graph, feeds, lambda f: ckpt.model.predict(f[INPUT_NAME]).reshape(-1), PARITY_ATOL
        )
    except InputError as err:
        return fail(parser.prog, err)
    except ExportCheckError as err:
        return fail(parser.prog, InputError(f"{args.ckpt}: {err}"))
    sidecar: dict[str, Any] = {
        "id": model_id,
        "kind": "fr",
        "onnx": args.out_onnx.name,
        "opset": OPSET,
        "sha256": hashlib.sha256(data).hexdigest(),
        "input_name": INPUT_NAME,
        "input_shape": [-1, 6],
        "output_name": OUTPUT_NAME,
        "output_shape": [-1],
        "features": list(ckpt.meta["features"]),
        "input_mean": [float(v) for v in ckpt.model.mean],
        "input_std": [float(v) for v in ckpt.model.std],
        "notes": f"{arch} (ReLU) on the canonical six; StandardScaler baked into the graph, "
        "so the runtime feeds raw features",
    }
    if version in ("v3", "v4"):
        sidecar |= {"arch": arch, "n_params": int(ckpt.meta.get("n_params", 0))}
    atomic_write(args.out_onnx, data)
    write_json(args.out_sidecar, sidecar)
    current_run().record(model_id=model_id, arch=arch, parity_max_abs=drift)
    return 0
