"""Building the DNN feature models twice: as ONNX graphs, and as numpy forwards to check them.

The numpy side runs in float64 and keeps batch norm unfolded, so parity also checks the folding
the ONNX side does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

BN_EPS = 1e-5
IR_VERSION = 10  # readable by the onnxruntime releases in use


# -- numpy -------------------------------------------------------------------------------------


def conv(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    stride: int = 1,
    pad: int = 0,
    groups: int = 1,
) -> np.ndarray:
    """A 2-D convolution of ``[N, C, H, W]`` by ``[O, C/groups, kh, kw]``, as torch's Conv2d."""
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))
    win = win[:, :, ::stride, ::stride]
    ho, wo = win.shape[2], win.shape[3]
    win = win.reshape(n, groups, cg, ho, wo, kh, kw)
    wg = w.reshape(groups, o // groups, cg, kh, kw)
    out = np.einsum("ngchwij,gocij->ngohw", win, wg, optimize=True).reshape(n, o, ho, wo)
    return np.asarray(out if b is None else out + b.reshape(1, -1, 1, 1))


def conv3d(
    x: np.ndarray, w: np.ndarray, b: np.ndarray, dilation: tuple[int, int, int]
) -> np.ndarray:
    """A 3-D convolution of ``[N, C, T, H, W]`` with 'same' padding and the given dilation."""
    o, _, kt, kh, kw = w.shape
    dt, dh, dw = dilation
    pt, ph, pw = dt * (kt - 1) // 2, dh * (kh - 1) // 2, dw * (kw - 1) // 2
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pt), (ph, ph), (pw, pw)))
    _, _, t, h, wd = x.shape
    out = np.zeros((x.shape[0], o, t, h, wd))
    for i in range(kt):
        for j in range(kh):
            for k in range(kw):
                part = xp[:, :, i * dt : i * dt + t, j * dh : j * dh + h, k * dw : k * dw + wd]
                out += np.einsum("ncthw,oc->nothw", part, w[:, :, i, j, k])
    return np.asarray(out + b.reshape(1, -1, 1, 1, 1))


def batch_norm(x: np.ndarray, p: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    shape = (1, -1, 1, 1)
    scale = p[f"{prefix}.weight"] / np.sqrt(p[f"{prefix}.running_var"] + BN_EPS)
    centred = x - p[f"{prefix}.running_mean"].reshape(shape)
    return np.asarray(centred * scale.reshape(shape) + p[f"{prefix}.bias"].reshape(shape))


def relu(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.maximum(x, 0.0))


def relu6(x: np.ndarray) -> np.ndarray:
    return np.asarray(np.clip(x, 0.0, 6.0))


def pixel_shuffle(x: np.ndarray, r: int) -> np.ndarray:
    n, c, h, w = x.shape
    return (
        x.reshape(n, c // (r * r), r, r, h, w)
        .transpose(0, 1, 4, 2, 5, 3)
        .reshape(n, c // (r * r), h * r, w * r)
    )


def fold_bn(p: dict[str, np.ndarray], conv_weight: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """A bias-free convolution followed by batch norm, as one convolution's weight and bias."""
    scale = p[f"{bn}.weight"] / np.sqrt(p[f"{bn}.running_var"] + BN_EPS)
    w = p[conv_weight] * scale.reshape(-1, 1, 1, 1)
    b = p[f"{bn}.bias"] - p[f"{bn}.running_mean"] * scale
    return w, b


# -- ONNX --------------------------------------------------------------------------------------


class Graph:
    """Nodes and float32 initializers under unique names, made into an opset-pinned model."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: Any, hint: str = "c", dtype: Any = np.float32) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], out: str | None = None, **attrs: Any) -> str:
        result = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [result], **attrs))
        return result

    def conv(
        self,
        x: str,
        w: np.ndarray,
        b: np.ndarray | None,
        hint: str,
        stride: int = 1,
        pad: int = 1,
        groups: int = 1,
        dilations: Sequence[int] | None = None,
    ) -> str:
        rank = w.ndim - 2
        inputs = [x, self.const(w, f"{hint}.weight")]
        if b is not None:
            inputs.append(self.const(b, f"{hint}.bias"))
        attrs: dict[str, Any] = {
            "kernel_shape": list(w.shape[2:]),
            "strides": [stride] * rank,
            "group": groups,
        }
        if dilations is not None:
            attrs["dilations"] = list(dilations)
            pads = [d * (k - 1) // 2 for d, k in zip(dilations, w.shape[2:], strict=True)]
            attrs["pads"] = pads + pads
        else:
            attrs["pads"] = [pad] * (2 * rank)
        return self.op("Conv", inputs, **attrs)

    def clip(self, x: str, low: float, high: float, out: str | None = None) -> str:
        return self.op("Clip", [x, self.const(low, "low"), self.const(high, "high")], out)

    def model(
        self,
        graph_name: str,
        inputs: Sequence[tuple[str, Sequence[int | str]]],
        outputs: Sequence[tuple[str, Sequence[int | str]]],
        opset: int,
    ) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes,
            graph_name,
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs],
            [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in outputs],
            initializer=self.initializers,
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="ai.dnn"
        )
        model.ir_version = min(model.ir_version, IR_VERSION)
        return model
