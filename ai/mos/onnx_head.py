"""The MOS head as an ONNX graph, and running it with onnxruntime."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ai.common.files import InputError
from ai.mos.mos_head import MOS_RANGE, Head

INPUT_NAME = "features"
OUTPUT_NAME = "mos"
PRODUCER = "ai.mos.onnx_head"


def build(head: Head, features: tuple[str, ...], opset: int, model_id: str) -> onnx.ModelProto:
    """``clip(((x - mean) / std) @ w + b, 1, 5)`` for a batch of ``[N, len(features)]``."""
    return build_linear(head, features, opset, model_id, OUTPUT_NAME, MOS_RANGE)


def build_linear(
    head: Head,
    features: tuple[str, ...],
    opset: int,
    model_id: str,
    output_name: str,
    output_range: tuple[float, float],
) -> onnx.ModelProto:
    """``clip(((x - mean) / std) @ w + b, low, high)`` for a batch of ``[N, len(features)]``."""
    n = len(features)
    f32 = np.float32
    initializers = [
        numpy_helper.from_array(head.mean.astype(f32), "input_mean"),
        numpy_helper.from_array(head.std.astype(f32), "input_std"),
        numpy_helper.from_array(head.weights.astype(f32).reshape(n, 1), "weights"),
        numpy_helper.from_array(np.array([head.bias], dtype=f32), "bias"),
        numpy_helper.from_array(np.array(output_range[0], dtype=f32), "out_min"),
        numpy_helper.from_array(np.array(output_range[1], dtype=f32), "out_max"),
    ]
    nodes = [
        helper.make_node("Sub", [INPUT_NAME, "input_mean"], ["centred"]),
        helper.make_node("Div", ["centred", "input_std"], ["standardised"]),
        helper.make_node("MatMul", ["standardised", "weights"], ["linear"]),
        helper.make_node("Add", ["linear", "bias"], ["raw"]),
        helper.make_node("Clip", ["raw", "out_min", "out_max"], [output_name]),
    ]
    graph = helper.make_graph(
        nodes,
        model_id,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", n])],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, ["N", 1])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name=PRODUCER
    )
    model.ir_version = min(model.ir_version, 10)  # readable by onnxruntime releases in use
    helper.set_model_props(model, {"features": ",".join(features)})
    onnx.checker.check_model(model, full_check=True)
    return model


def shape_of(value_info: onnx.ValueInfoProto) -> list[Any]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_param if d.dim_param else d.dim_value for d in dims]


def signature(model: onnx.ModelProto) -> dict[str, Any]:
    graph = model.graph
    return {
        "input_name": graph.input[0].name,
        "input_shape": shape_of(graph.input[0]),
        "output_name": graph.output[0].name,
        "output_shape": shape_of(graph.output[0]),
        "opset": next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
    }


def model_sidecar(
    model_id: str,
    kind: str,
    onnx_name: str,
    data: bytes,
    model: onnx.ModelProto,
    head: Head,
    features: Sequence[str],
) -> dict[str, Any]:
    """The fields every ONNX model sidecar carries (id, kind, file, opset, digest, signature,
    features and the input standardization)."""
    signature_ = signature(model)
    return {
        "id": model_id,
        "kind": kind,
        "onnx": onnx_name,
        "opset": signature_["opset"],
        "sha256": hashlib.sha256(data).hexdigest(),
        "input_name": signature_["input_name"],
        "input_shape": signature_["input_shape"],
        "output_name": signature_["output_name"],
        "output_shape": signature_["output_shape"],
        "features": list(features),
        "input_mean": [round(float(v), 9) for v in head.mean],
        "input_std": [round(float(v), 9) for v in head.std],
    }


def load(path: Path) -> onnx.ModelProto:
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except Exception as err:  # noqa: BLE001 - onnx raises many unrelated types for bad files
        raise InputError(f"{path}: not a valid ONNX model: {err}") from None
    return model


def run(path: Path, x: np.ndarray, provider: str = "CPUExecutionProvider") -> np.ndarray:
    """Predictions of the ONNX model at ``path`` (one input, one output) as float64 ``[N]``."""
    import onnxruntime as ort  # heavy; only the validators need it

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # deterministic reductions
    session = ort.InferenceSession(str(path), options, providers=[provider])
    inputs, outputs = session.get_inputs(), session.get_outputs()
    (output,) = session.run([outputs[0].name], {inputs[0].name: x.astype(np.float32)})
    return np.asarray(output, dtype=np.float64).reshape(-1)
