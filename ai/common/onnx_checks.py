"""Post-export hygiene every exporter runs: the checker, libvmaf's operator allowlist, parity.

libvmaf's DNN runtime loads only graphs whose operators it allows; an exporter that emits one
outside the list would ship a model that libvmaf refuses at load time, so the check runs before
anything is written. Parity runs the saved bytes through onnxruntime's CPU provider and compares
them with the numpy model they came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import onnx

# The operators libvmaf's DNN loader accepts (its op allowlist): element-wise arithmetic,
# the dense and convolutional layers, activations, pooling, shape plumbing and the few
# reductions the tiny models use. DepthToSpace (PixelShuffle) is not among them.
ALLOWED_OPS = frozenset(
    {
        "Abs", "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat",
        "Constant", "ConstantOfShape", "Conv", "ConvTranspose", "Div", "Erf", "Exp", "Flatten",
        "Gather", "Gemm", "GlobalAveragePool", "Identity", "LeakyRelu", "MatMul", "Max",
        "MaxPool", "Min", "Mul", "Pad", "Pow", "ReduceMean", "ReduceSum", "Relu", "Reshape",
        "Resize", "ScatterND", "Shape", "Sigmoid", "Slice", "Softmax", "Split", "Sqrt",
        "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze", "QuantizeLinear",
        "DequantizeLinear",
    }
)  # fmt: skip


class ExportCheckError(RuntimeError):
    """An exported graph failed a check: it must not be written or shipped."""


def ops_used(model: onnx.ModelProto) -> list[str]:
    """Every operator type in the graph and its subgraphs, sorted and without repeats."""
    found: set[str] = set()
    stack = [model.graph]
    while stack:
        graph = stack.pop()
        for node in graph.node:
            found.add(node.op_type)
            stack += [a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH]
    return sorted(found)


def disallowed_ops(model: onnx.ModelProto) -> list[str]:
    return [op for op in ops_used(model) if op not in ALLOWED_OPS]


def strip_initializer_value_info(model: onnx.ModelProto) -> int:
    """Drop ``value_info`` entries named as an initializer (some exporters emit both)."""
    names = {t.name for t in model.graph.initializer}
    keep = [v for v in model.graph.value_info if v.name not in names]
    dropped = len(model.graph.value_info) - len(keep)
    del model.graph.value_info[:]
    model.graph.value_info.extend(keep)
    return dropped


def run_bytes(data: bytes, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The model's outputs under onnxruntime's CPU provider."""
    import onnxruntime as ort  # seconds to import: only exporters and validators need it

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return [np.asarray(o) for o in session.run(None, dict(feeds))]


def check_export(
    model: onnx.ModelProto,
    feeds: Mapping[str, np.ndarray],
    reference: Callable[[Mapping[str, np.ndarray]], np.ndarray],
    atol: float,
) -> tuple[bytes, float]:
    """Checker, allowlist and CPU parity against ``reference``; the serialized bytes and drift.

    Raises :class:`ExportCheckError` naming what failed.
    """
    strip_initializer_value_info(model)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportCheckError(f"onnx checker: {str(err).splitlines()[0]}") from err
    bad = disallowed_ops(model)
    if bad:
        raise ExportCheckError(f"operators outside libvmaf's allowlist: {', '.join(bad)}")
    data = model.SerializeToString()
    got = run_bytes(data, feeds)[0].astype(np.float64)
    want = np.asarray(reference(feeds), dtype=np.float64).reshape(got.shape)
    drift = float(np.max(np.abs(got - want))) if got.size else 0.0
    if not drift <= atol:
        raise ExportCheckError(f"onnxruntime differs from the model by {drift:.3g} > {atol:g}")
    return data, drift
