"""Measure registered models' PLCC, and the drop from their fp32 baselines, per provider.

Every model of --registry (an int8 registry, as ptq_dynamic and ptq_static write) is run on
the held-out ``test`` rows of --table with each of --providers that this onnxruntime build
offers (onnxruntime is asked; the CPU, CUDA and OpenVINO providers by default); an int8 model
whose sidecar names its fp32 baseline has the baseline run on the same provider and the PLCC
drop gated (--max-plcc-drop, 0.01). Providers not available, or that fail to start, are
recorded as unavailable, with why. The JSON (--out-json) and Markdown (--out-md) reports name
the --hardware-tag. Exit 0 when every measured drop passes, 1 when one fails or no provider
could run (the reports written), 2 on an input error (no report).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, read_parquet, write_json
from ai.mos.mos_head import MOS_SCALES, holdout_mask, load_dataset
from ai.quantization import quant
from ai.release.registry import read_registry
from provenance import atomic_write, current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--registry", type=Path, required=True, help="the models' registry")
    parser.add_argument("--table", type=Path, required=True, help="the per-clip feature parquet")
    parser.add_argument("--mos-scale", choices=MOS_SCALES, default="1-5", help="the table's MOS")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the held-out split")
    parser.add_argument(
        "--providers", nargs="+", default=list(quant.DEFAULT_PROVIDERS), help="providers to try"
    )
    parser.add_argument(
        "--hardware-tag", default="unspecified", help="what the providers ran on, for the report"
    )
    parser.add_argument(
        "--max-plcc-drop", type=float, default=quant.MAX_PLCC_DROP, help="the gate (0.01)"
    )
    parser.add_argument("--out-json", type=Path, required=True, help="the JSON report")
    parser.add_argument("--out-md", type=Path, required=True, help="the Markdown report")
    add_manifest_out(parser, "<out-json>")
    return parser


@recorded_run(
    inputs={"registry": "registry", "table": "table"},
    outputs={"report": "out_json", "report_md": "out_md"},
    embed_into="report",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if len(set(args.providers)) != len(args.providers):
        parser.error("--providers names a provider twice")
    run = current_run()
    try:
        models = quant.registered_models(args.registry, read_registry(args.registry))
        data = load_dataset(args.table, read_parquet(args.table), args.mos_scale)
        held_out = holdout_mask(data.clips, args.split_seed)
        if held_out.sum() < 3:
            raise InputError(f"{args.table}: only {int(held_out.sum())} held-out rows")
    except InputError as err:
        return fail(parser.prog, err)
    run.add_input("models", [m.onnx for m in models])
    run.add_input("baselines", sorted({m.baseline for m in models if m.baseline is not None}))
    x, y = data.x[held_out], data.y[held_out]
    available = quant.available_providers()
    tried: list[str] = []
    unavailable: list[dict[str, str]] = []
    results: list[dict[str, Any]] = []
    for provider in args.providers:
        if provider not in available:
            unavailable.append({"provider": provider, "reason": "not in this onnxruntime build"})
            continue
        try:
            measured = [measure(m, x, y, provider, args.max_plcc_drop) for m in models]
        except quant.ProviderUnavailable as err:
            unavailable.append({"provider": provider, "reason": str(err)})
            continue
        tried.append(provider)
        results += measured
    passed = bool(tried) and all(r["passed"] for r in results)
    drops = [r["plcc_drop"] for r in results if r["plcc_drop"] is not None]
    gate = {"max_plcc_drop": args.max_plcc_drop, "worst_plcc_drop": max(drops, default=None)}
    report = {
        "registry": args.registry.name,
        "hardware_tag": args.hardware_tag,
        "onnxruntime": quant.onnxruntime_version(),
        "providers_requested": args.providers,
        "providers_available": available,
        "providers_tried": tried,
        "providers_unavailable": unavailable,
        "rows": int(held_out.sum()),
        "split_seed": args.split_seed,
        "results": results,
        "gate": {**gate, "passed": passed},
        "verdict": "PASS" if passed else "FAIL",
    }
    run.gate("quant_plcc_drop_per_ep", passed, providers_tried=tried, **gate)
    run.record(
        hardware_tag=args.hardware_tag,
        providers_requested=args.providers,
        providers_tried=tried,
        providers_unavailable=unavailable,
        models=[m.id for m in models],
        results=results,
    )
    write_json(args.out_json, report)
    atomic_write(args.out_md, quant.per_ep_markdown(report).encode("utf-8"))
    if not tried:
        print(f"{parser.prog}: none of --providers could run here", file=sys.stderr)
    return 0 if passed else 1


def measure(
    model: quant.RegisteredModel, x: Any, y: Any, provider: str, max_drop: float
) -> dict[str, Any]:
    """One model on one provider: its scores, and its baseline's and the drop when it has one."""
    predicted = quant.run_on(model.onnx, x, provider)
    scored = quant.scores(predicted, y)
    fp32_plcc = drop = None
    if model.baseline is not None:
        measured = quant.drop(quant.run_on(model.baseline, x, provider), predicted, y)
        fp32_plcc, drop = measured["fp32"]["plcc"], measured["plcc_drop"]
    return {
        "model": model.id,
        "precision": model.precision,
        "provider": provider,
        **scored,
        "fp32_plcc": fp32_plcc,
        "plcc_drop": drop,
        "passed": drop is None or drop <= max_drop,
    }


if __name__ == "__main__":
    sys.exit(main())
