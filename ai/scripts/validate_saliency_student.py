"""Validate a saliency-student ONNX in three steps; the exit code is the worst step's.

1. Operator allowlist: the checker passes and every operator is one libvmaf's loader accepts.
2. Parity: the numpy model rebuilt from the graph's initializers (by state-dict name; names
   the graph lacks keep their seeded initial values) against onnxruntime on the seeded
   RandomState(--seed) input [1, 3, S, S]; passes when the max |difference| < --threshold.
3. The registry: validate_model_registry's checks on --registry.
Prints each step and "Result: OK|FAIL"; --out-json writes the report with the run's
provenance (without it the sidecar is <onnx>.validation.manifest.json). Exits 0 when every
step passes, 1 when one fails, 2 on an input error (an unreadable model or registry; nothing
written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_json
from ai.common.onnx_checks import disallowed_ops, ops_used, run_bytes
from ai.mos import onnx_head
from ai.release.registry import read_registry, validate_registry
from ai.saliency import onnx_graph, unet
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--onnx", type=Path, default=Path("model/tiny/saliency_student_v1.onnx"))
    parser.add_argument("--variant", choices=unet.VARIANTS, default="v1", help="net to rebuild")
    parser.add_argument("--seed", type=int, default=0, help="seed of the parity input")
    parser.add_argument("--threshold", type=float, default=1e-5, help="parity max-abs bound")
    parser.add_argument("--parity-size", type=int, default=256, help="side of the parity input")
    parser.add_argument("--registry", type=Path, default=Path("model/tiny/registry.json"))
    parser.add_argument("--out-json", type=Path, help="the report to write")
    add_manifest_out(parser, "<out-json>, or <onnx>.validation without --out-json")
    return parser


def sidecar_path(args: argparse.Namespace) -> Path | None:
    """Without a report the sidecar still has a place, one that is not the trainer's."""
    if args.manifest_out is not None or args.out_json is not None:
        return args.manifest_out  # type: ignore[no-any-return]
    onnx: Path = args.onnx
    return onnx.with_name(f"{onnx.name}.validation.manifest.json")


def allowlist_step(model: Any) -> dict[str, Any]:
    bad = disallowed_ops(model)
    return {"ops_used": ops_used(model), "disallowed": bad, "rc": 1 if bad else 0}


def parity_step(args: argparse.Namespace, model: Any, data: bytes) -> dict[str, Any]:
    loaded, missing = onnx_graph.params_from_onnx(model, args.variant)
    params = unet.init_params(args.variant, np.random.default_rng(args.seed))
    params.update(loaded)
    size = args.parity_size
    x = np.random.RandomState(args.seed).randn(1, 3, size, size)
    want = unet.Net(args.variant, params).predict(x)
    try:
        got = run_bytes(data, {onnx_graph.INPUT_NAME: x.astype(np.float32)})[0]
        drift = float(np.max(np.abs(got.astype(np.float64) - want)))
        error = None
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own types for bad graphs
        drift, error = float("inf"), str(err).splitlines()[0]
    passed = drift < args.threshold
    return {
        "variant": args.variant,
        "input_shape": [1, 3, size, size],
        "seed": args.seed,
        "loaded_initializers": len(loaded),
        "missing_initializers": missing,
        "max_abs_diff": drift if error is None else None,
        "error": error,
        "threshold": args.threshold,
        "rc": 0 if passed else 1,
    }


@recorded_run(
    inputs={"onnx": "onnx", "registry": "registry"},
    outputs={"report": "out_json"},
    manifest=sidecar_path,
    embed_into="report",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.parity_size < 8 or args.parity_size % 8:
            raise InputError(f"--parity-size {args.parity_size}: must be a multiple of 8")
        model = onnx_head.load(args.onnx)
        data = args.onnx.read_bytes()
        registry = read_registry(args.registry)
    except InputError as err:
        return fail(parser.prog, err)
    allowlist = allowlist_step(model)
    parity = parity_step(args, model, data)
    registry_report, files = validate_registry(args.registry, registry)
    registry_rc = 0 if registry_report["verdict"] == "PASS" else 1
    rc = int(max(allowlist["rc"], parity["rc"], registry_rc))
    run = current_run()
    run.add_input("registry_files", sorted(set(files)))
    run.gate("op_allowlist", allowlist["rc"] == 0, disallowed=allowlist["disallowed"])
    run.gate("parity", parity["rc"] == 0, max_abs_diff=parity["max_abs_diff"],
             threshold=args.threshold)  # fmt: skip
    run.gate("registry", registry_rc == 0, failed_models=registry_report["summary"]["failed"])
    print(
        f"[1/3] op allowlist: {'OK' if allowlist['rc'] == 0 else 'FAIL'} "
        f"({len(allowlist['ops_used'])} ops: {', '.join(allowlist['ops_used'])})"
    )
    print(
        f"[2/3] parity: {'OK' if parity['rc'] == 0 else 'FAIL'} "
        f"(max abs diff {parity['max_abs_diff']}, threshold {args.threshold:g})"
    )
    print(f"[3/3] registry: {registry_report['verdict']} ({args.registry})")
    print(f"Result: {'OK' if rc == 0 else 'FAIL'}")
    if args.out_json is not None:
        write_json(args.out_json, {
            "onnx": args.onnx.name,
            "signature": onnx_head.signature(model),
            "steps": {
                "op_allowlist": allowlist,
                "parity": parity,
                "registry": {"rc": registry_rc, **registry_report},
            },
            "result": "OK" if rc == 0 else "FAIL",
            "exit_code": rc,
        })  # fmt: skip
    return rc


if __name__ == "__main__":
    sys.exit(main())
