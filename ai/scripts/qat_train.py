"""Quantization-aware training to an int8 QDQ ONNX model, from a YAML config.

Builds the config's model (from the training model registry), warm-starts it in fp32 on the
config's feature table (``cache``), fine-tunes it with fake-quantized weights, copies the
weights into a fresh fp32 model, exports it beside the output as ``<stem>.qat.fp32.onnx`` (opset
17) and quantizes that with onnxruntime's static quantizer (QDQ, int8 weights and activations,
per-channel), calibrated on --n-calibration uniform [0, 1) tensors of the example shape. Smoke
mode (--smoke, ``qat.smoke``, no ``cache``, or a cache file that is missing) skips both trainings.
--report-out writes the evidence with the run's provenance embedded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_json
from ai.common.mlp import MLP, to_onnx
from ai.quantization import qat
from ai.quantization.checks import feature_matrix
from provenance import atomic_write, current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", type=Path, required=True, help="the QAT config (YAML)")
    parser.add_argument("--output", type=Path, required=True, help="the *.int8.onnx to write")
    parser.add_argument("--epochs-fp32", type=int, help="default: qat.epochs_fp32, else 20")
    parser.add_argument("--epochs-qat", type=int, help="default: qat.epochs_qat, else 10")
    parser.add_argument("--lr-qat", type=float, help="default: qat.lr_qat, else the lr / 10")
    parser.add_argument("--n-calibration", type=int, default=64, help="calibration tensors")
    parser.add_argument("--smoke", action="store_true", help="no training, only the conversion")
    parser.add_argument("--seed", type=int, default=0, help="seed of everything random")
    parser.add_argument("--report-out", type=Path, help="also write a JSON report here")
    add_manifest_out(parser, "<output>")
    return parser


def fp32_path(args: argparse.Namespace) -> Path:
    """``<stem minus .int8>.qat.fp32.onnx`` beside the output."""
    output = Path(args.output)
    stem = output.name.removesuffix(".onnx").removesuffix(".int8")
    return output.with_name(f"{stem}.qat.fp32.onnx")


def _setting(given: Any, qat_block: dict[str, Any], key: str, default: Any) -> Any:
    return given if given is not None else qat_block.get(key, default)


@recorded_run(
    config="config",
    outputs={"int8": "output", "fp32": fp32_path, "report": "report_out"},
    embed_into="report",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    run = current_run()
    try:
        from ai.quantization import ptq  # onnxruntime's quantizer takes seconds to import

        if args.n_calibration < 1:
            raise InputError("--n-calibration must be at least 1")
        cfg = qat.load_config(args.config)
        block = cfg.qat
        epochs_fp32 = int(_setting(args.epochs_fp32, block, "epochs_fp32", 20))
        epochs_qat = int(_setting(args.epochs_qat, block, "epochs_qat", 10))
        lr_qat = float(_setting(args.lr_qat, block, "lr_qat", cfg.lr / 10))
        if epochs_fp32 < 0 or epochs_qat < 0 or lr_qat <= 0:
            raise InputError("epochs must be at least 0 and lr_qat above 0")
        spec = qat.MODELS[cfg.model]
        features = spec.features(cfg.model_args)
        input_name = str(block.get("input_name", "input"))
        output_name = str(block.get("output_name", "output"))
        shape = block.get("input_shape", [1, len(features)])
        if shape != [1, len(features)]:
            raise InputError(f"qat.input_shape {shape}: {cfg.model} takes [1, {len(features)}]")
        smoke = bool(args.smoke or block.get("smoke", False) or cfg.cache is None)
        if cfg.cache is not None and not cfg.cache.exists():
            print(f"qat_train: {cfg.cache} is missing: smoke run, no training", file=sys.stderr)
            smoke = True
        model = spec.build(cfg.model_args, args.seed)
        rows: dict[str, int] = {}
        history: dict[str, list[float]] = {"fp32": [], "qat": []}
        if not smoke:
            assert cfg.cache is not None
            run.add_input("cache", cfg.cache)
            x, mos = feature_matrix(cfg.cache, features)
            if mos is None:
                raise InputError(f"{cfg.cache}: no mos column to train on")
            keep = np.isfinite(mos)
            x, y = x[keep], mos[keep]
            parts = qat.split(len(x), cfg.val_frac, cfg.test_frac, args.seed)
            rows = {k: len(v) for k, v in parts.items()}
            train = parts["train"]
            history = qat.train(
                model, x[train], y[train], epochs_fp32=epochs_fp32, epochs_qat=epochs_qat,
                lr=cfg.lr, lr_qat=lr_qat, batch_size=cfg.batch_size, seed=args.seed,
            )  # fmt: skip
        fresh = MLP.create(model.sizes, args.seed)
        copied = qat.copy_weights(model, fresh)
        if copied == 0:
            raise RuntimeError("no QAT weights were copied into the fp32 model")
        onnx_model = to_onnx(fresh, [(input_name, len(features))], output_name,
                             graph_name=cfg.model, squeeze=False, batch_dim="N")  # fmt: skip
        fp32_out = fp32_path(args)
        fp32_out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(fp32_out, onnx_model.SerializeToString(deterministic=True))
        calib = np.random.default_rng(args.seed).uniform(size=(args.n_calibration, len(features)))
        reader = ptq.SliceReader(input_name, calib.astype(np.float32), 1)
        config = ptq.QuantConfig(ptq.STATIC, per_channel=True)
        int8 = ptq.quantize(fp32_out, config, reader)
    except InputError as err:
        return fail(parser.prog, err)
    atomic_write(args.output, int8)
    metrics: dict[str, Any] = {}
    if not smoke:
        for part in ("val", "test"):
            idx = parts[part]
            if len(idx):
                err_ = fresh.predict(x[idx]).reshape(-1) - y[idx]
                metrics[f"{part}_rmse"] = round(float(np.sqrt(np.mean(err_**2))), 6)
    summary = {
        "model": cfg.model,
        "model_args": cfg.model_args,
        "features": list(features),
        "smoke": smoke,
        "epochs_fp32": epochs_fp32,
        "epochs_qat": epochs_qat,
        "lr": cfg.lr,
        "lr_qat": lr_qat,
        "batch_size": cfg.batch_size,
        "n_calibration": args.n_calibration,
        "seed": args.seed,
    }
    run.resolved_config(summary)
    run.record(params=fresh.n_params, rows=rows, **metrics)
    print(f"qat_train: {cfg.model} ({fresh.n_params} parameters) -> {fp32_out}, {args.output}")
    if args.report_out is not None:
        write_json(
            args.report_out,
            {
                **summary,
                "rows": rows,
                "loss": {k: [round(v, 6) for v in h] for k, h in history.items()},
                **metrics,
                "params": fresh.n_params,
                "tensors_copied": copied,
                "fp32_onnx": fp32_out.name,
                "int8_onnx": args.output.name,
                "fp32_bytes": fp32_out.stat().st_size,
                "int8_bytes": len(int8),
                "quantization": config.as_record(),
                "input_name": input_name,
                "output_name": output_name,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
