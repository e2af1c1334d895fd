"""Checks of an ONNX model before it ships: its input standardization against a feature table,
its latency, a learned filter's effect on frames, its int8 drift, its agreement across execution
providers, and which of a series of models first lost quality. ``vmaf-train``'s model commands
are thin wrappers over these."""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from ai.common.files import InputError, read_json_object, read_parquet
from ai.mos.mos_head import EXTRAS, plcc, rmse, srocc
from ai.quantization.quant import ProviderUnavailable, available_providers
from ai.quantization.quant import features_of as features_of

CPU = "CPUExecutionProvider"


def load_model(path: Path) -> onnx.ModelProto:
    from ai.mos import onnx_head

    return onnx_head.load(path)


def parse_shape(text: str) -> list[int]:
    """``"1,6"`` or ``"N,C,H,W"`` given as numbers: positive integers separated by commas."""
    try:
        dims = [int(p) for p in text.split(",")]
    except ValueError:
        raise InputError(f"--shape {text!r}: expected numbers separated by commas") from None
    if not dims or any(d < 1 for d in dims):
        raise InputError(f"--shape {text!r}: every dimension must be at least 1")
    return dims


def graph_shape(model: onnx.ModelProto) -> list[int]:
    """The first input's shape, a named or unknown dimension taken as 1."""
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return [d.dim_value if d.dim_value > 0 else 1 for d in dims]


def feature_matrix(path: Path, features: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``features`` columns of a table (``name`` or ``name_mean``) as float64 ``[N, F]``,
    and its ``mos`` column when it has one. An optional MOS-head input a table lacks (saliency,
    shots) is zero, as the trainer reads it."""
    table = read_parquet(path)
    columns = []
    for name in features:
        column = next((c for c in (name, f"{name}_mean") if c in table.column_names), None)
        if column is None and name in EXTRAS:
            columns.append(np.zeros(table.num_rows))
            continue
        if column is None:
            raise InputError(f"{path}: no column {name} or {name}_mean")
        columns.append(_floats(path, table.column(column).to_pylist(), column))
    mos = None
    if "mos" in table.column_names:
        mos = _floats(path, table.column("mos").to_pylist(), "mos", allow_nan=True)
    return np.stack(columns, axis=1) if columns else np.zeros((table.num_rows, 0)), mos


def _floats(path: Path, values: list[Any], column: str, *, allow_nan: bool = False) -> np.ndarray:
    try:
        out = np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path}: column {column} is not numeric") from None
    if not allow_nan and not np.all(np.isfinite(out)):
        raise InputError(f"{path}: column {column} holds a null or non-finite value")
    return out


def session(path: Path, provider: str) -> Any:
    """An onnxruntime session on ``provider`` alone, one thread (deterministic reductions);
    onnxruntime falls back to the CPU quietly when a provider fails to start, so that is checked."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    made = ort.InferenceSession(str(path), options, providers=[provider])
    used = made.get_providers()
    if not used or used[0] != provider:
        raise ProviderUnavailable(f"did not start (onnxruntime ran {', '.join(used)} instead)")
    return made


def run(made: Any, x: np.ndarray, input_name: str | None = None) -> np.ndarray:
    name = input_name or made.get_inputs()[0].name
    (out,) = made.run([made.get_outputs()[0].name], {name: x.astype(np.float32)})
    return np.asarray(out, dtype=np.float64)


# -- validate-norm -----------------------------------------------------------------------------

SHIFT_WARN_SIGMA = 1.0
OUTLIER_WARN_FRACTION = 0.05


def normalization_of(
    sidecar: Mapping[str, Any],
) -> tuple[list[str], list[float], list[float]] | None:
    """The declared standardization: the fork's ``normalization{mean, std}`` block, else the
    ``input_mean``/``input_std`` this pipeline's exporters write; None when there is neither."""
    block = sidecar.get("normalization")
    if isinstance(block, Mapping):
        mean, std = block.get("mean"), block.get("std")
        names = block.get("features", sidecar.get("features"))
    else:
        mean, std, names = (
            sidecar.get("input_mean"),
            sidecar.get("input_std"),
            sidecar.get("features"),
        )
    if not isinstance(mean, list) or not isinstance(std, list):
        return None
    if not isinstance(names, list) or len(names) != len(mean):
        names = [f"f{i}" for i in range(len(mean))]
    if len(mean) != len(std):
        raise InputError(f"normalization: {len(mean)} means but {len(std)} standard deviations")
    try:
        return [str(n) for n in names], [float(v) for v in mean], [float(v) for v in std]
    except (TypeError, ValueError):
        raise InputError("normalization: the means and deviations must be numbers") from None


def sidecar_path(model: Path) -> Path:
    """The model's JSON sidecar: the path itself when it is one, else ``<model>.json``."""
    return model if model.suffix == ".json" else model.with_suffix(".json")


def validate_norm(model: Path, features: Path) -> dict[str, Any]:
    side = sidecar_path(model)
    sidecar = read_json_object(side)
    declared = normalization_of(sidecar)
    warnings: list[str] = []
    drifts: list[dict[str, Any]] = []
    n_samples = 0
    if declared is None:
        warnings.append(f"{side.name}: no normalization block (input_mean/input_std)")
    else:
        names, mean, std = declared
        x, _ = feature_matrix(features, names)
        n_samples = len(x)
        if n_samples == 0:
            raise InputError(f"{features}: no rows")
        for i, name in enumerate(names):
            col = x[:, i]
            scale = max(std[i], 1e-9)
            shift = abs(float(col.mean()) - mean[i]) / scale
            outliers = float(np.mean(np.abs(col - mean[i]) > 3.0 * scale))
            drifts.append(
                {
                    "name": name,
                    "declared_mean": mean[i],
                    "declared_std": std[i],
                    "observed_mean": round(float(col.mean()), 9),
                    "observed_std": round(float(col.std()), 9),
                    "mean_shift_sigma": round(shift, 6),
                    "outlier_fraction": round(outliers, 6),
                }
            )
            if shift > SHIFT_WARN_SIGMA:
                warnings.append(f"{name}: mean shifted by {shift:.3f} sigma (> {SHIFT_WARN_SIGMA})")
            if outliers > OUTLIER_WARN_FRACTION:
                warnings.append(
                    f"{name}: {outliers:.1%} of samples beyond 3 sigma "
                    f"(> {OUTLIER_WARN_FRACTION:.0%})"
                )
    return {
        "sidecar": side.name,
        "n_samples": n_samples,
        "drifts": drifts,
        "warnings": warnings,
        "ok": not warnings,
    }


# -- profile -----------------------------------------------------------------------------------


def profile(
    path: Path, shapes: Sequence[list[int]], providers: Sequence[str], warmup: int, iters: int
) -> dict[str, Any]:
    """Latency per (provider, shape). With ``iters`` 0 nothing is timed: each pair is only
    started and run through its warmup, and the timing fields are null, so the report depends on
    the model alone."""
    results = []
    rng = np.random.default_rng(0)
    offered = available_providers()
    unknown = [p for p in providers if p not in offered]
    if unknown:
        raise InputError(
            f"--provider {unknown[0]}: not offered by this onnxruntime ({', '.join(offered)})"
        )
    for provider in providers:
        for shape in shapes:
            x = rng.standard_normal(shape).astype(np.float32)
            try:
                made = session(path, provider)
                out = run(made, x)
                for _ in range(max(warmup - 1, 0)):
                    run(made, x)
            except ProviderUnavailable as err:
                raise InputError(f"{provider}: {err}") from None
            except Exception as err:  # noqa: BLE001 - onnxruntime raises its own many types
                raise InputError(f"{path}: does not run on shape {shape}: {err}") from None
            row: dict[str, Any] = {
                "provider": provider,
                "shape": shape,
                "output_shape": list(out.shape),
                "warmup": warmup,
                "iters": iters,
                "mean_ms": None,
                "p50_ms": None,
                "p99_ms": None,
                "peak_rss_delta_kb": None,
            }
            if iters:
                before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                times = []
                for _ in range(iters):
                    began = time.perf_counter()
                    run(made, x)
                    times.append((time.perf_counter() - began) * 1e3)
                after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                row |= {
                    "mean_ms": round(float(np.mean(times)), 6),
                    "p50_ms": round(float(np.percentile(times, 50)), 6),
                    "p99_ms": round(float(np.percentile(times, 99)), 6),
                    "peak_rss_delta_kb": max(int(after - before), 0),
                }
            results.append(row)
    return {"model": path.name, "results": results}


def providers_to_use(requested: Sequence[str], *, exclude_cpu: bool = False) -> list[str]:
    available = available_providers()
    if requested:
        return list(dict.fromkeys(requested))  # one not offered: missing, or the caller's error
    return [p for p in available if not (exclude_cpu and p == CPU)]


# -- audit-learned-filter ----------------------------------------------------------------------


def ssim(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    """SSIM of two frames over the whole frame as one window (k1 0.01, k2 0.03)."""
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    ma, mb = float(a.mean()), float(b.mean())
    va, vb = float(a.var()), float(b.var())
    cov = float(((a - ma) * (b - mb)).mean())
    return ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))


def load_frames(path: Path) -> np.ndarray:
    try:
        frames = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: not a numpy .npy array: {err}") from None
    if frames.ndim != 3:
        raise InputError(f"{path}: frames must be (N, H, W), found shape {list(frames.shape)}")
    if not len(frames) or not np.issubdtype(frames.dtype, np.number):
        raise InputError(f"{path}: no frames, or not numbers")
    return np.asarray(frames, dtype=np.float64)


def audit_filter(
    path: Path, frames: np.ndarray, peak: float, input_name: str, limits: Mapping[str, float]
) -> dict[str, Any]:
    made = session(path, CPU)
    names = [i.name for i in made.get_inputs()]
    if input_name not in names:
        raise InputError(f"{path}: no input named {input_name!r} (it has {', '.join(names)})")
    per_frame, warnings = [], []
    for index, frame in enumerate(frames):
        try:
            out = run(made, frame[None, None], input_name).reshape(frame.shape)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own many types
            raise InputError(f"{path}: does not take frame {index}: {err}") from None
        row = {
            "index": index,
            "mean_shift": round(abs(float(out.mean()) - float(frame.mean())), 6),
            "std_ratio": round(float(out.std()) / max(float(frame.std()), 1e-12), 6),
            "clip_fraction": round(float(np.mean((out <= 0.0) | (out >= peak))), 6),
            "ssim": round(ssim(frame, out, peak), 6),
        }
        per_frame.append(row)
        checks = (
            ("ssim", row["ssim"] < limits["ssim_min"], "below", limits["ssim_min"]),
            ("mean_shift", row["mean_shift"] > limits["mean_shift_max"], "above",
             limits["mean_shift_max"]),
            ("std_ratio", row["std_ratio"] > limits["std_ratio_max"], "above",
             limits["std_ratio_max"]),
            ("clip_fraction", row["clip_fraction"] > limits["clip_fraction_max"], "above",
             limits["clip_fraction_max"]),
        )  # fmt: skip
        for key, bad, side, limit in checks:
            if bad:
                warnings.append(f"frame {index}: {key} {row[key]} {side} {limit}")
    return {
        "model": path.name,
        "n_frames": len(frames),
        "frames": per_frame,
        "avg_ssim": round(float(np.mean([r["ssim"] for r in per_frame])), 6),
        "max_mean_shift": max(r["mean_shift"] for r in per_frame),
        "max_std_ratio": max(r["std_ratio"] for r in per_frame),
        "max_clip_fraction": max(r["clip_fraction"] for r in per_frame),
        "warnings": warnings,
        "ok": not warnings,
    }


# -- cross-backend -----------------------------------------------------------------------------


def cross_backend(
    path: Path, x: np.ndarray, providers: Sequence[str], atol: float
) -> dict[str, Any]:
    reference = run(session(path, CPU), x)
    comparisons: list[dict[str, Any]] = []
    missing: list[dict[str, str]] = []
    offered = available_providers()
    for provider in providers:
        if provider not in offered:
            missing.append({"provider": provider, "reason": "not offered by this onnxruntime"})
            continue
        try:
            got = run(session(path, provider), x)
        except ProviderUnavailable as err:
            missing.append({"provider": provider, "reason": str(err)})
            continue
        except Exception as err:  # noqa: BLE001 - a provider not built into onnxruntime
            missing.append({"provider": provider, "reason": " ".join(str(err).split())[:200]})
            continue
        diff = np.abs(got - reference)
        comparisons.append(
            {
                "provider": provider,
                "max_abs_error": float(diff.max()),
                "mean_abs_error": float(diff.mean()),
                "shape": list(x.shape),
            }
        )
    return {
        "model": path.name,
        "atol": atol,
        "reference_provider": CPU,
        "comparisons": comparisons,
        "missing": missing,
        "ok": all(c["max_abs_error"] <= atol for c in comparisons),
    }


# -- bisect-model-quality ----------------------------------------------------------------------


def model_metrics(path: Path, table: Path, input_name: str | None) -> dict[str, float]:
    """PLCC, SROCC and RMSE of a model's predictions on the rows with a MOS."""
    model = load_model(path)
    features = features_of(model)
    if not features:
        raise InputError(f"{path}: names no features (its 'features' metadata)")
    x, mos = feature_matrix(table, features)
    if mos is None:
        raise InputError(f"{table}: no mos column")
    keep = np.isfinite(mos)
    if keep.sum() < 3:
        raise InputError(f"{table}: fewer than 3 rows with a MOS")
    made = session(path, CPU)
    names = [i.name for i in made.get_inputs()]
    name = input_name if input_name in names else names[0]
    predicted = run(made, x[keep], name).reshape(-1)
    y = mos[keep]
    return {
        "plcc": round(plcc(predicted, y), 6),
        "srocc": round(srocc(predicted, y), 6),
        "rmse": round(rmse(predicted, y), 6),
        "rows": int(keep.sum()),
    }


def passes(metrics: Mapping[str, float], gate: Mapping[str, float | None]) -> bool:
    checks = [
        gate.get("min_plcc") is None or metrics["plcc"] >= gate["min_plcc"],  # type: ignore[operator]
        gate.get("min_srocc") is None or metrics["srocc"] >= gate["min_srocc"],  # type: ignore[operator]
        gate.get("max_rmse") is None or metrics["rmse"] <= gate["max_rmse"],  # type: ignore[operator]
    ]
    return all(checks)


def bisect(
    models: Sequence[Path], table: Path, gate: Mapping[str, float | None], input_name: str
) -> dict[str, Any]:
    """Binary search over models ordered good to bad for the first one that fails the gate;
    each model probed is scored once, in the order the search asks for it."""
    probed: dict[int, dict[str, Any]] = {}

    def good(i: int) -> bool:
        if i not in probed:
            metrics = model_metrics(models[i], table, input_name)
            probed[i] = {"index": i, "model": models[i].name, **metrics,
                         "passed": passes(metrics, gate)}  # fmt: skip
        return bool(probed[i]["passed"])

    first_bad = last_good = None
    if not good(0):
        verdict, first_bad = "first model already fails", 0
    elif good(len(models) - 1):
        verdict, last_good = "no regression", len(models) - 1
    else:
        lo, hi = 0, len(models) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if good(mid):
                lo = mid
            else:
                hi = mid
        first_bad, last_good = hi, lo
        verdict = f"first bad: {models[hi].name} (last good: {models[lo].name})"
    return {
        "models": [m.name for m in models],
        "gate": dict(gate),
        "probed": [probed[i] for i in sorted(probed)],
        "first_bad_index": first_bad,
        "first_bad_model": None if first_bad is None else models[first_bad].name,
        "last_good_index": last_good,
        "last_good_model": None if last_good is None else models[last_good].name,
        "verdict": verdict,
    }
