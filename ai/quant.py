"""Post-training int8 quantization of the pipeline's ONNX models with onnxruntime, and its gate.

The quantizer writes where it is told and leaves ``onnx.save`` to choose how to serialize; here
it writes into a private folder and the model is read back and serialized with
``deterministic=True``, so the int8 bytes depend only on the fp32 model, the calibration slice,
the config and the onnxruntime release, and reach their path through one atomic write.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

from ai import onnx_head
from ai.files import InputError, read_json_object, write_json
from ai.mos_head import Dataset, plcc, rmse, srocc
from ai.registry import (
    MAX_MODEL_BYTES,
    MAX_SIDECAR_BYTES,
    SCHEMA_VERSION,
    place,
    read_document,
    register,
    sha256_of,
    shown,
)
from ai.tables import split_of
from provenance import atomic_write

DYNAMIC, STATIC = "dynamic", "static"
TYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
FORMATS = {"qdq": QuantFormat.QDQ, "qoperator": QuantFormat.QOperator}
CALIBRATE_METHODS = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
# No quantization-drop threshold is published for these heads; 0.01 PLCC is the bar: a drop
# that size is already larger than the spread the seed gate tolerates (0.005) twice over.
MAX_PLCC_DROP = 0.01


@dataclass(frozen=True)
class QuantConfig:
    """How a model is quantized; ``format`` and ``calibrate_method`` apply to static only."""

    method: str
    weight_type: str = "int8"
    activation_type: str = "int8"
    per_channel: bool = False
    reduce_range: bool = False
    format: str = "qdq"
    calibrate_method: str = "minmax"

    def as_record(self) -> dict[str, Any]:
        record = asdict(self)
        if self.method == DYNAMIC:  # activations are quantized at run time, uncalibrated
            for key in ("activation_type", "format", "calibrate_method"):
                record.pop(key)
        return {**record, "onnxruntime": onnxruntime_version()}


CHOICES: dict[str, tuple[object, ...]] = {
    "weight_type": tuple(TYPES),
    "activation_type": tuple(TYPES),
    "format": tuple(FORMATS),
    "calibrate_method": tuple(CALIBRATE_METHODS),
    "per_channel": (True, False),
    "reduce_range": (True, False),
}


def resolve_config(method: str, given: Mapping[str, Any], config_file: Path | None) -> QuantConfig:
    """Defaults, then the ``--config`` JSON file's keys, then options given on the command line."""
    config = QuantConfig(method)
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config_file is not None:
        layers.append((str(config_file), read_json_object(config_file)))
    layers.append(("the command line", {k: v for k, v in given.items() if v is not None}))
    for where, layer in layers:
        for key, value in layer.items():
            if key not in CHOICES:
                raise InputError(f"{where}: unknown quantization setting {key!r}")
            if not any(value == c and type(value) is type(c) for c in CHOICES[key]):
                raise InputError(f"{where}: {key} must be one of {list(CHOICES[key])}")
        config = replace(config, **dict(layer))
    return config


# -- calibration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationSlice:
    """The first ``rows`` rows of one content split of a feature table, in table order."""

    x: np.ndarray  # float32 (rows, inputs)
    clips: list[str]
    split: str
    split_seed: int

    @property
    def sha256(self) -> str:
        """The digest of the slice's float32 values, C order: what the calibrator saw."""
        return hashlib.sha256(np.ascontiguousarray(self.x).tobytes()).hexdigest()


def calibration_slice(
    path: Path, data: Dataset, split: str, split_seed: int, rows: int
) -> CalibrationSlice:
    chosen = [i for i, clip in enumerate(data.clips) if split_of(split_seed, clip) == split]
    if len(chosen) < rows:
        raise InputError(
            f"{path}: the {split} split (seed {split_seed}) has {len(chosen)} rows; "
            f"--calibration-rows {rows} asks for more"
        )
    chosen = chosen[:rows]
    x = data.x[chosen].astype(np.float32)
    return CalibrationSlice(x, [data.clips[i] for i in chosen], split, split_seed)


class SliceReader(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime is untyped
    """Feeds a calibration slice to the quantizer in batches, once, in order."""

    def __init__(self, input_name: str, x: np.ndarray, batch: int) -> None:
        self._batches = iter([x[i : i + batch] for i in range(0, len(x), batch)])
        self._input_name = input_name

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self._input_name: batch}


# -- quantizing --------------------------------------------------------------------------------


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """The quantizer logs advice on the root logger for every model; the scripts' stderr is
    for what went wrong."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def quantize(fp32: Path, config: QuantConfig, reader: SliceReader | None = None) -> bytes:
    """The int8 model of ``fp32``, serialized deterministically."""
    with tempfile.TemporaryDirectory(prefix="ptq-") as scratch, _quiet_quantizer():
        target = Path(scratch) / "int8.onnx"
        common: dict[str, Any] = {
            "per_channel": config.per_channel,
            "reduce_range": config.reduce_range,
            "weight_type": TYPES[config.weight_type],
        }
        try:
            if config.method == DYNAMIC:
                quantize_dynamic(fp32, target, **common)
            else:
                quantize_static(
                    fp32,
                    target,
                    reader,
                    quant_format=FORMATS[config.format],
                    activation_type=TYPES[config.activation_type],
                    calibrate_method=CALIBRATE_METHODS[config.calibrate_method],
                    **common,
                )
            model = onnx.load(str(target))
            onnx.checker.check_model(model)
        except Exception as err:  # noqa: BLE001 - the quantizer raises many unrelated types
            raise InputError(f"{fp32}: onnxruntime could not quantize it: {err}") from None
    data: bytes = model.SerializeToString(deterministic=True)
    return data


def features_of(model: onnx.ModelProto) -> list[str]:
    """The feature names a model was exported with (its ``features`` metadata), in order."""
    value = dict((p.key, p.value) for p in model.metadata_props).get("features", "")
    return value.split(",") if value else []


def fp32_sidecar(path: Path) -> dict[str, Any]:
    """An ONNX model sidecar, checked to carry what an int8 sidecar copies from it."""
    sidecar = read_json_object(path)
    for key in ("id", "kind", "features", "input_mean", "input_std"):
        if key not in sidecar:
            raise InputError(f"{path}: not an ONNX model sidecar: no {key!r}")
    return sidecar


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


# -- the int8 model's sidecar ------------------------------------------------------------------


def relative(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()


def int8_sidecar(
    model_id: str,
    int8_path: Path,
    data: bytes,
    fp32_path: Path,
    fp32_sidecar_path: Path,
    fp32_side: Mapping[str, Any],
    config: QuantConfig,
    calibration: dict[str, Any] | None,
    sidecar_path: Path,
) -> dict[str, Any]:
    """The ONNX sidecar fields of the int8 model, and what it came from: the fp32 model (paths
    relative to this sidecar), the quantization config, the calibration data and the sizes."""
    model = onnx.load_from_string(data)
    signature = onnx_head.signature(model)
    fp32_bytes = fp32_path.read_bytes()
    return {
        "id": model_id,
        "kind": fp32_side["kind"],
        "onnx": int8_path.name,
        "opset": signature["opset"],
        "sha256": hashlib.sha256(data).hexdigest(),
        "input_name": signature["input_name"],
        "input_shape": signature["input_shape"],
        "output_name": signature["output_name"],
        "output_shape": signature["output_shape"],
        "features": features_of(model),
        "input_mean": fp32_side["input_mean"],
        "input_std": fp32_side["input_std"],
        "precision": "int8",
        "fp32": {
            "id": fp32_side["id"],
            "onnx": relative(fp32_path, sidecar_path.parent),
            "sha256": hashlib.sha256(fp32_bytes).hexdigest(),
            "sidecar": relative(fp32_sidecar_path, sidecar_path.parent),
        },
        "quantization": config.as_record(),
        "calibration": calibration,
        "size": sizes(len(fp32_bytes), len(data)),
    }


# -- what both PTQ scripts share ---------------------------------------------------------------


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """The options of ptq_dynamic and ptq_static: the fp32 model, the int8 outputs, the config."""
    parser.add_argument("--fp32", type=Path, required=True, help="the fp32 ONNX model")
    parser.add_argument(
        "--fp32-sidecar", type=Path, help="its model sidecar (default: <fp32>.json)"
    )
    parser.add_argument("--out", type=Path, required=True, help="the int8 .onnx file to write")
    parser.add_argument(
        "--model-sidecar", type=Path, help="the int8 model sidecar (default: <out>.json)"
    )
    parser.add_argument("--model-id", help="the int8 model's id (default: <fp32 id>_int8_<kind>)")
    parser.add_argument("--config", type=Path, help="a JSON object of quantization settings")
    parser.add_argument("--weight-type", choices=sorted(TYPES), help="int8 (default) or uint8")
    parser.add_argument(
        "--per-channel", action=argparse.BooleanOptionalAction, help="per-channel weights"
    )
    parser.add_argument(
        "--reduce-range", action=argparse.BooleanOptionalAction, help="7-bit weights"
    )
    parser.add_argument("--registry", type=Path, help="a registry.json to add the model to")
    parser.add_argument("--report-out", type=Path, help="also write a JSON report here")


def fp32_sidecar_path(args: argparse.Namespace) -> Path:
    given: Path | None = args.fp32_sidecar
    return given or Path(args.fp32).with_suffix(".json")


def model_sidecar_path(args: argparse.Namespace) -> Path:
    given: Path | None = args.model_sidecar
    return given or Path(args.out).with_suffix(".json")


def given_settings(args: argparse.Namespace, keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: getattr(args, key) for key in keys}


def check_paths(args: argparse.Namespace) -> None:
    """The int8 files must not overwrite the fp32 model or its sidecar."""
    inputs = {Path(args.fp32).resolve(), fp32_sidecar_path(args).resolve()}
    outputs = {Path(args.out).resolve(), model_sidecar_path(args).resolve()}
    if inputs & outputs or len(outputs) < 2:
        raise InputError(
            "--out and --model-sidecar must differ from the fp32 model, its sidecar and each other"
        )


def write_int8(
    args: argparse.Namespace,
    argv: list[str],
    data: bytes,
    fp32_side: Mapping[str, Any],
    config: QuantConfig,
    calibration: dict[str, Any] | None,
) -> dict[str, Any]:
    """Write the int8 model, its sidecar, its registry entry and the report; give the sidecar."""
    sidecar_path = model_sidecar_path(args)
    model_id = args.model_id or f"{fp32_side['id']}_int8_{config.method}"
    atomic_write(args.out, data)
    sidecar = int8_sidecar(
        model_id, args.out, data, args.fp32, fp32_sidecar_path(args), fp32_side, config,
        calibration, sidecar_path,
    )  # fmt: skip
    write_json(sidecar_path, sidecar)
    if args.registry is not None:
        register(args.registry, sidecar, args.out, sidecar_path)
    if args.report_out is not None:
        write_json(args.report_out, {**sidecar, "model_sidecar": sidecar_path.name, "argv": argv})
    return sidecar


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
