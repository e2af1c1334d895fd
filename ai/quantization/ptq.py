"""Post-training int8 quantization of the pipeline's ONNX models with onnxruntime's quantizer.

The quantizer writes where it is told and leaves ``onnx.save`` to choose how to serialize; here
it writes into a private folder and the model is read back and serialized with
``deterministic=True``, so the int8 bytes depend only on the fp32 model, the calibration slice,
the config and the onnxruntime release, and reach their path through one atomic write. Importing
``onnxruntime.quantization`` costs seconds, so only the two PTQ scripts import this module.
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
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

from ai.common.files import InputError, read_json_object, write_json
from ai.features.tables import split_of
from ai.mos import onnx_head
from ai.mos.mos_head import Dataset
from ai.quantization.quant import features_of, onnxruntime_version, sizes
from ai.release.registry import register
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


def quantize(
    fp32: Path,
    config: QuantConfig,
    reader: CalibrationDataReader | None = None,
    op_types: list[str] | None = None,
) -> bytes:
    """The int8 model of ``fp32``, serialized deterministically; ``op_types`` limits which
    operators are quantized (all the quantizer can, by default)."""
    with tempfile.TemporaryDirectory(prefix="ptq-") as scratch, _quiet_quantizer():
        target = Path(scratch) / "int8.onnx"
        common: dict[str, Any] = {
            "per_channel": config.per_channel,
            "reduce_range": config.reduce_range,
            "weight_type": TYPES[config.weight_type],
        }
        if op_types is not None:
            common["op_types_to_quantize"] = op_types
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


def fp32_sidecar(path: Path) -> dict[str, Any]:
    """An ONNX model sidecar, checked to carry what an int8 sidecar copies from it."""
    sidecar = read_json_object(path)
    for key in ("id", "kind", "features", "input_mean", "input_std"):
        if key not in sidecar:
            raise InputError(f"{path}: not an ONNX model sidecar: no {key!r}")
    return sidecar


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


def manifest_fields(sidecar: Mapping[str, Any]) -> dict[str, Any]:
    """What both PTQ scripts record in their manifest, read off the int8 sidecar they wrote."""
    return {
        "model_id": sidecar["id"],
        "fp32": sidecar["fp32"],
        "int8_sha256": sidecar["sha256"],
        "quantization": sidecar["quantization"],
        "calibration": sidecar["calibration"],
        "size": sidecar["size"],
    }
