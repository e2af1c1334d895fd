"""Measuring int8 models against their fp32 baselines: the PLCC drop, per execution provider."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from ai.common.files import InputError
from ai.mos.mos_head import plcc, rmse, srocc
from ai.release.registry import (
    MAX_MODEL_BYTES,
    MAX_SIDECAR_BYTES,
    SCHEMA_VERSION,
    place,
    read_document,
    sha256_of,
    shown,
)

# No quantization-drop threshold is published for these heads; 0.01 PLCC is the bar: a drop
# that size is already larger than the spread the seed gate tolerates (0.005) twice over.
MAX_PLCC_DROP = 0.01


def features_of(model: onnx.ModelProto) -> list[str]:
    """The feature names a model was exported with (its ``features`` metadata), in order."""
    value = dict((p.key, p.value) for p in model.metadata_props).get("features", "")
    return value.split(",") if value else []


def sizes(fp32: int, int8: int) -> dict[str, Any]:
    return {"fp32_bytes": fp32, "int8_bytes": int8, "ratio": round(int8 / fp32, 6)}


# -- the drop ----------------------------------------------------------------------------------


def scores(predicted: np.ndarray, mos: np.ndarray) -> dict[str, float]:
    return {
        "plcc": round(plcc(predicted, mos), 6),
        "srocc": round(srocc(predicted, mos), 6),
        "rmse": round(rmse(predicted, mos), 6),
    }


def drop(fp32: np.ndarray, int8: np.ndarray, mos: np.ndarray) -> dict[str, Any]:
    """Each model's scores against the MOS, the PLCC drop fp32 -> int8, and their agreement."""
    before, after = scores(fp32, mos), scores(int8, mos)
    return {
        "fp32": before,
        "int8": after,
        "plcc_drop": round(before["plcc"] - after["plcc"], 6),
        "agreement_plcc": round(plcc(fp32, int8), 6),
        "max_abs_diff": round(float(np.max(np.abs(fp32 - int8))), 6),
    }


def onnxruntime_version() -> str:
    version: str = ort.__version__
    return version


def available_providers() -> list[str]:
    """The execution providers this onnxruntime build can run, as it reports them."""
    providers: list[str] = ort.get_available_providers()
    return providers


# -- per execution provider --------------------------------------------------------------------

DEFAULT_PROVIDERS = ("CPUExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider")


class ProviderUnavailable(Exception):
    """An execution provider onnxruntime lists but could not start a session on."""


def run_on(path: Path, x: np.ndarray, provider: str) -> np.ndarray:
    """Predictions of a one-input model on ``provider`` alone; onnxruntime falls back to the
    CPU quietly when a provider fails to start, so that is checked, not assumed."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # deterministic reductions
    options.log_severity_level = 3  # the fallback is reported by the caller, once
    session = ort.InferenceSession(str(path), options, providers=[provider])
    used = session.get_providers()
    if not used or used[0] != provider:
        raise ProviderUnavailable(f"did not start (onnxruntime ran {', '.join(used)} instead)")
    inputs, outputs = session.get_inputs(), session.get_outputs()
    (output,) = session.run([outputs[0].name], {inputs[0].name: x.astype(np.float32)})
    return np.asarray(output, dtype=np.float64).reshape(-1)


@dataclass(frozen=True)
class RegisteredModel:
    id: str
    onnx: Path
    sidecar: Path
    precision: str
    baseline: Path | None  # the fp32 model an int8 one was quantized from


def registered_models(registry: Path, document: Mapping[str, Any]) -> list[RegisteredModel]:
    """The registry's models and their fp32 baselines, every path kept inside its folder and
    every digest checked; anything else is an input error (validate_model_registry says more)."""
    base = registry.parent
    models = document.get("models")
    if document.get("schema_version") != SCHEMA_VERSION or not isinstance(models, list):
        raise InputError(f"{registry}: not a version-{SCHEMA_VERSION} model registry")
    found = []
    for index, entry in enumerate(models):
        where = f"{registry}: model {index}"
        try:
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                raise InputError("not an entry with an id")
            onnx_path = place(base, entry.get("onnx"))
            if sha256_of(onnx_path, MAX_MODEL_BYTES)[0] != entry.get("sha256"):
                raise InputError("its ONNX file's SHA-256 is not the recorded one")
            sidecar_path = place(base, entry.get("sidecar"))
            sidecar = read_document(sidecar_path, "model sidecar", MAX_SIDECAR_BYTES)
            fp32 = sidecar.get("fp32")
            baseline = None
            if isinstance(fp32, dict):
                baseline = baseline_of(base, sidecar_path, fp32.get("onnx"), fp32.get("sha256"))
        except InputError as err:
            raise InputError(f"{where}: {err}") from None
        precision = sidecar.get("precision", "fp32")
        found.append(
            RegisteredModel(entry["id"], onnx_path, sidecar_path, str(precision), baseline)
        )
    if not found:
        raise InputError(f"{registry}: no models to measure")
    return found


def baseline_of(base: Path, sidecar: Path, shown_path: Any, sha256: Any) -> Path:
    """The fp32 model an int8 sidecar names (relative to the sidecar), inside ``base`` and with
    the digest the sidecar recorded."""
    try:
        if not isinstance(shown_path, str) or os.path.isabs(shown_path):
            raise InputError(f"{shown(shown_path)} is not a relative path")
        from_base = os.path.relpath(sidecar.parent, os.path.realpath(base))
        path = place(base, os.path.normpath(os.path.join(from_base, shown_path)))
        try:
            digest = sha256_of(path, MAX_MODEL_BYTES)[0]
        except InputError as err:
            raise InputError(f"{shown(shown_path)}: {err}") from None
        if digest != sha256:
            raise InputError(f"{shown(shown_path)}: its SHA-256 is not the one recorded")
    except InputError as err:
        raise InputError(f"fp32 baseline {err}") from None
    return path


def per_ep_markdown(report: Mapping[str, Any]) -> str:
    """The per-EP report as Markdown: the providers, then one row per model and provider."""
    lines = [
        f"# Quantization drop per execution provider: {report['registry']}",
        "",
        f"- hardware tag: `{report['hardware_tag']}`",
        f"- onnxruntime: {report['onnxruntime']}",
        f"- providers tried: {', '.join(report['providers_tried']) or 'none'}",
        "- providers unavailable: "
        + (", ".join(f"{u['provider']} ({u['reason']})" for u in report["providers_unavailable"])
           or "none"),
        f"- gate: PLCC drop <= {report['gate']['max_plcc_drop']}: {report['verdict']}",
        "",
        "| model | precision | provider | PLCC | fp32 PLCC | PLCC drop | passed |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in report["results"]:
        fp32 = "-" if r["fp32_plcc"] is None else f"{r['fp32_plcc']:.6f}"
        drop_ = "-" if r["plcc_drop"] is None else f"{r['plcc_drop']:.6f}"
        lines.append(
            f"| {r['model']} | {r['precision']} | {r['provider']} | {r['plcc']:.6f} | {fp32} "
            f"| {drop_} | {'yes' if r['passed'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"
