"""``vmaf-train``'s checks of a model before it ships, one subcommand each.

``validate-norm``, ``profile``, ``audit-learned-filter``, ``quantize-int8``, ``cross-backend`` and
``bisect-model-quality``: each a recorded run of its own that writes its ``--json`` report with
the run's provenance embedded (the model, feature and calibration inputs hashed, the thresholds
parsed from the command line, the int8 model where one is made). They exit as the pipeline's
subcommands do: 0 pass, 1 a gate failed (its report still written), 2 an input error. The fork
exits 2 on a failed gate too; here 2 stays the input error, so a script can tell a model that
failed its check from a command that could not check it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from ai.common.files import InputError, write_json
from ai.quantization import checks
from ai.vmaf_train.cli import Report, _fail, app
from provenance import atomic_write, current_run, recorded_run

Model = Annotated[Path, typer.Option(help="the ONNX model")]
Repeated = Annotated[list[str] | None, typer.Option()]
FailOnWarning = Annotated[bool, typer.Option(help="exit 1 when there are warnings")]


def _report(path: Path, command: str, body: dict[str, Any]) -> None:
    write_json(path, {"command": command, **body})


@app.command("validate-norm")
@recorded_run(
    inputs={"model": "model", "features": "features"},
    outputs={"report": "json_report"},
    embed_into="report",
)
def validate_norm(
    model: Annotated[Path, typer.Option(help="the ONNX model, or its .json sidecar")],
    features: Annotated[Path, typer.Option(help="a feature parquet to compare against")],
    json_report: Report,
    fail_on_warning: FailOnWarning = False,
) -> int:
    """The sidecar's declared input standardization against a feature table's statistics."""
    run = current_run()
    try:
        if not model.exists():
            raise InputError(f"{model}: no such file")
        sidecar = checks.sidecar_path(model)
        run.add_input("sidecar", sidecar)
        report = checks.validate_norm(model, features)
    except InputError as err:
        return _fail("validate-norm", err)
    thresholds = {
        "mean_shift_sigma_max": checks.SHIFT_WARN_SIGMA,
        "outlier_fraction_max": checks.OUTLIER_WARN_FRACTION,
        "fail_on_warning": fail_on_warning,
    }
    run.gate("normalization", report["ok"], warnings=len(report["warnings"]), **thresholds)
    run.record(n_samples=report["n_samples"], warnings=report["warnings"], thresholds=thresholds)
    _report(json_report, "validate-norm", {**report, "thresholds": thresholds})
    return 1 if fail_on_warning and not report["ok"] else 0


@app.command("profile")
@recorded_run(inputs={"model": "model"}, outputs={"report": "json_report"}, embed_into="report")
def profile(
    model: Model,
    json_report: Report,
    shape: Annotated[
        list[str] | None, typer.Option(help="an input shape, N,C,H,W; repeatable")
    ] = None,
    provider: Annotated[
        list[str] | None, typer.Option(help="an execution provider; repeatable (all available)")
    ] = None,
    warmup: Annotated[int, typer.Option(help="untimed runs first")] = 5,
    iters: Annotated[int, typer.Option(help="timed runs; 0 times nothing")] = 100,
) -> int:
    """Latency (mean, p50, p99 ms) and peak-RSS growth per provider and shape; no gate.

    The times change from run to run, so the report does and so does its digest in the record;
    --iters 0 starts and runs each pair without timing it, for a report that depends on the
    model alone.
    """
    try:
        if warmup < 0 or iters < 0:
            raise InputError("--warmup and --iters must be at least 0")
        loaded = checks.load_model(model)
        shapes = [checks.parse_shape(s) for s in shape] if shape else [checks.graph_shape(loaded)]
        providers = checks.providers_to_use(provider or [])
        report = checks.profile(model, shapes, providers, warmup, iters)
    except InputError as err:
        return _fail("profile", err)
    current_run().record(
        providers=providers, shapes=shapes, warmup=warmup, iters=iters, timed=iters > 0
    )
    _report(json_report, "profile", report)
    return 0


@app.command("audit-learned-filter")
@recorded_run(
    inputs={"model": "model", "frames": "frames"},
    outputs={"report": "json_report"},
    embed_into="report",
)
def audit_learned_filter(
    model: Annotated[Path, typer.Option(help="the filter's ONNX model")],
    frames: Annotated[Path, typer.Option(help="frames to filter, a (N, H, W) .npy")],
    json_report: Report,
    peak: Annotated[float, typer.Option(help="the frames' peak value")] = 1.0,
    input_name: Annotated[str, typer.Option(help="the model's frame input")] = "input",
    ssim_min: Annotated[float, typer.Option(help="warn below this SSIM(in, out)")] = 0.6,
    mean_shift_max: Annotated[float, typer.Option(help="warn above this mean shift")] = 0.05,
    std_ratio_max: Annotated[float, typer.Option(help="warn above this std out/in")] = 2.0,
    clip_fraction_max: Annotated[float, typer.Option(help="warn above this clipped share")] = 0.01,
    fail_on_warning: FailOnWarning = False,
) -> int:
    """A learned filter's effect on frames: mean shift, std ratio, clipping and SSIM per frame."""
    limits = {
        "ssim_min": ssim_min,
        "mean_shift_max": mean_shift_max,
        "std_ratio_max": std_ratio_max,
        "clip_fraction_max": clip_fraction_max,
    }
    try:
        if peak <= 0:
            raise InputError(f"--peak {peak}: must be above 0")
        checks.load_model(model)
        report = checks.audit_filter(model, checks.load_frames(frames), peak, input_name, limits)
    except InputError as err:
        return _fail("audit-learned-filter", err)
    run = current_run()
    summary = {k: report[k] for k in ("avg_ssim", "max_mean_shift", "max_std_ratio",
                                       "max_clip_fraction")}  # fmt: skip
    run.gate("learned_filter", report["ok"], **summary, **limits)
    run.record(n_frames=report["n_frames"], peak=peak, warnings=report["warnings"])
    _report(json_report, "audit-learned-filter", {**report, "peak": peak, "limits": limits})
    return 1 if fail_on_warning and not report["ok"] else 0


HELD_OUT = 128


@app.command("quantize-int8")
@recorded_run(
    inputs={"fp32": "fp32", "calibration": "calibration"},
    outputs={"int8": "output", "report": "json_report"},
    embed_into="report",
)
def quantize_int8(
    fp32: Annotated[Path, typer.Option(help="the fp32 ONNX model")],
    output: Annotated[Path, typer.Option(help="the int8 ONNX model to write")],
    calibration: Annotated[Path, typer.Option(help="a feature parquet: n + 128 rows")],
    json_report: Report,
    input_name: Annotated[str, typer.Option(help="the model's feature input")] = "features",
    n_calibration: Annotated[int, typer.Option(help="calibration rows, from the first")] = 512,
    batch_size: Annotated[int, typer.Option(help="calibration rows per batch")] = 32,
    rmse_gate: Annotated[float, typer.Option(help="max RMSE fp32 vs int8 on the held-out")] = 1.0,
) -> int:
    """Static int8 PTQ (QDQ, per-channel, reduce-range; Gemm, MatMul and Conv only), calibrated
    on the first n rows and gated on the fp32-to-int8 drift over the next 128."""
    from ai.quantization import ptq  # onnxruntime's quantizer takes seconds to import

    try:
        if n_calibration < 1 or batch_size < 1:
            raise InputError("--n-calibration and --batch-size must be at least 1")
        if output.resolve() == fp32.resolve():
            raise InputError("--output must differ from --fp32")
        model = checks.load_model(fp32)
        names = [i.name for i in model.graph.input]
        if input_name not in names:
            raise InputError(f"{fp32}: no input named {input_name!r} (it has {', '.join(names)})")
        features = checks.features_of(model)
        if not features:
            raise InputError(f"{fp32}: names no features (its 'features' metadata)")
        x, _ = checks.feature_matrix(calibration, features)
        need = n_calibration + HELD_OUT
        if len(x) < need:
            raise InputError(
                f"{calibration}: {len(x)} rows; --n-calibration {n_calibration} and "
                f"{HELD_OUT} held-out rows need {need}"
            )
        calib, held = x[:n_calibration].astype(np.float32), x[n_calibration:need]
        config = ptq.QuantConfig(ptq.STATIC, per_channel=True, reduce_range=True)
        reader = ptq.SliceReader(input_name, calib, batch_size)
        data = ptq.quantize(fp32, config, reader, ["Gemm", "MatMul", "Conv"])
    except InputError as err:
        return _fail("quantize-int8", err)
    atomic_write(output, data)
    before = checks.run(checks.session(fp32, checks.CPU), held, input_name)
    after = checks.run(checks.session(output, checks.CPU), held, input_name)
    diff = after - before
    drift_rmse = round(float(np.sqrt(np.mean(diff**2))), 9)
    fp32_bytes = fp32.stat().st_size
    report = {
        "fp32_path": fp32.name,
        "int8_path": output.name,
        "n_calibration": n_calibration,
        "n_held_out": HELD_OUT,
        "max_abs_error": round(float(np.max(np.abs(diff))), 9),
        "rmse": drift_rmse,
        "fp32_bytes": fp32_bytes,
        "int8_bytes": len(data),
        "compression_ratio": round(fp32_bytes / len(data), 6),
        "quantization": {**config.as_record(), "op_types": ["Gemm", "MatMul", "Conv"]},
        "rmse_gate": rmse_gate,
    }
    passed = drift_rmse <= rmse_gate
    run = current_run()
    run.gate("int8_drift", passed, rmse=drift_rmse, rmse_gate=rmse_gate,
             max_abs_error=report["max_abs_error"])  # fmt: skip
    run.record(**{k: report[k] for k in ("n_calibration", "n_held_out", "fp32_bytes",
                                         "int8_bytes", "quantization")})  # fmt: skip
    _report(json_report, "quantize-int8", {**report, "verdict": "PASS" if passed else "FAIL"})
    return 0 if passed else 1


@app.command("cross-backend")
@recorded_run(
    inputs={"model": "model", "features": "features"},
    outputs={"report": "json_report"},
    embed_into="report",
)
def cross_backend(
    model: Model,
    json_report: Report,
    features: Annotated[
        Path | None, typer.Option(help="a feature parquet (default: standard-normal input)")
    ] = None,
    provider: Annotated[
        list[str] | None, typer.Option(help="a provider to compare; repeatable (all non-CPU)")
    ] = None,
    shape: Annotated[str | None, typer.Option(help="synthetic input shape, N,C,H,W")] = None,
    n_rows: Annotated[int, typer.Option(help="rows of the feature table to run")] = 256,
    atol: Annotated[float, typer.Option(help="max abs error against the CPU")] = 1e-3,
    fail_on_mismatch: Annotated[bool, typer.Option(help="exit 1 on a mismatch")] = False,
) -> int:
    """Each provider's outputs against the CPU provider's on the same input."""
    try:
        if n_rows < 1:
            raise InputError("--n-rows must be at least 1")
        loaded = checks.load_model(model)
        if features is not None:
            names = checks.features_of(loaded)
            if not names:
                raise InputError(f"{model}: names no features (its 'features' metadata)")
            x = checks.feature_matrix(features, names)[0][:n_rows]
        else:
            dims = checks.parse_shape(shape) if shape else checks.graph_shape(loaded)
            x = np.random.default_rng(0).standard_normal(dims)
        providers = checks.providers_to_use(provider or [], exclude_cpu=True)
        report = checks.cross_backend(model, x, providers, atol)
    except InputError as err:
        return _fail("cross-backend", err)
    run = current_run()
    worst = max((c["max_abs_error"] for c in report["comparisons"]), default=0.0)
    run.gate("cross_backend", report["ok"], atol=atol, max_abs_error=worst,
             fail_on_mismatch=fail_on_mismatch)  # fmt: skip
    run.record(providers=providers, missing=[m["provider"] for m in report["missing"]],
               input_shape=list(x.shape))  # fmt: skip
    _report(json_report, "cross-backend", report)
    return 1 if fail_on_mismatch and not report["ok"] else 0


@app.command("bisect-model-quality")
@recorded_run(
    inputs={"models": "models", "features": "features"},
    outputs={"report": "json_report"},
    embed_into="report",
)
def bisect_model_quality(
    models: Annotated[list[Path], typer.Argument(help="ONNX models, ordered good to bad")],
    features: Annotated[Path, typer.Option(help="a feature parquet with a mos column")],
    json_report: Report,
    min_plcc: Annotated[float | None, typer.Option(help="gate: PLCC at least")] = None,
    min_srocc: Annotated[float | None, typer.Option(help="gate: SROCC at least")] = None,
    max_rmse: Annotated[float | None, typer.Option(help="gate: RMSE at most")] = None,
    input_name: Annotated[str, typer.Option(help="the models' input")] = "input",
    fail_on_first_bad: Annotated[bool, typer.Option(help="exit 1 on a regression")] = False,
) -> int:
    """The first model in a good-to-bad series that fails the quality gate, by binary search."""
    gate = {"min_plcc": min_plcc, "min_srocc": min_srocc, "max_rmse": max_rmse}
    try:
        if all(v is None for v in gate.values()):
            raise InputError("give a gate: --min-plcc, --min-srocc or --max-rmse")
        report = checks.bisect(models, features, gate, input_name)
    except InputError as err:
        return _fail("bisect-model-quality", err)
    regression = report["first_bad_index"] is not None and report["last_good_index"] is not None
    run = current_run()
    run.gate("no_regression", report["first_bad_index"] is None,
             first_bad_index=report["first_bad_index"], **gate)  # fmt: skip
    run.record(verdict=report["verdict"], probed=[p["index"] for p in report["probed"]])
    _report(json_report, "bisect-model-quality", report)
    return 1 if fail_on_first_bad and regression else 0
