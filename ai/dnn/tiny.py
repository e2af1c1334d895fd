"""The KoNViD C2 ``NRMetric`` and C3 ``LearnedFilter``: parameters, numpy forward, ONNX graph."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx

from ai.dnn import graph as g

# The C2 blocks after the stem: (in, out, stride) in units of the width w.
C2_BLOCKS = ((1, 2, 2), (2, 2, 1), (2, 4, 2), (4, 4, 1), (4, 8, 2))
C2_DEFAULTS = {"in_channels": 1, "width": 16}
C3_DEFAULTS = {"channels": 1, "width": 16, "num_blocks": 4}


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{k}": (c,) for k in ("weight", "bias", "running_mean", "running_var")}


def c2_hyper(hyper: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(hyper.get(k, v)) for k, v in C2_DEFAULTS.items()}


def c3_hyper(hyper: Mapping[str, Any]) -> dict[str, int]:
    return {k: int(hyper.get(k, v)) for k, v in C3_DEFAULTS.items()}


def c2_shapes(hyper: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    cin, w = hyper["in_channels"], hyper["width"]
    shapes: dict[str, tuple[int, ...]] = {"stem.conv.weight": (w, cin, 3, 3), **_bn("stem.bn", w)}
    for i, (a, b, _) in enumerate(C2_BLOCKS):
        shapes[f"blocks.{i}.dw.weight"] = (a * w, 1, 3, 3)
        shapes.update(_bn(f"blocks.{i}.dw_bn", a * w))
        shapes[f"blocks.{i}.pw.weight"] = (b * w, a * w, 1, 1)
        shapes.update(_bn(f"blocks.{i}.pw_bn", b * w))
    shapes["head.weight"] = (1, 8 * w)
    shapes["head.bias"] = (1,)
    return shapes


def c3_shapes(hyper: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    c, w = hyper["channels"], hyper["width"]
    shapes: dict[str, tuple[int, ...]] = {"entry.weight": (w, c, 3, 3), "entry.bias": (w,)}
    for i in range(hyper["num_blocks"]):
        for j in (1, 2):
            shapes[f"blocks.{i}.conv{j}.weight"] = (w, w, 3, 3)
            shapes[f"blocks.{i}.conv{j}.bias"] = (w,)
    shapes["exit.weight"] = (c, w, 3, 3)
    shapes["exit.bias"] = (c,)
    return shapes


def c2_forward(p: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    q = dict(p)
    h = g.relu6(g.batch_norm(g.conv(x, q["stem.conv.weight"], stride=2, pad=1), q, "stem.bn"))
    for i, (_, _, stride) in enumerate(C2_BLOCKS):
        dw = q[f"blocks.{i}.dw.weight"]
        h = g.conv(h, dw, stride=stride, pad=1, groups=dw.shape[0])
        h = g.relu6(g.batch_norm(h, q, f"blocks.{i}.dw_bn"))
        h = g.relu6(g.batch_norm(g.conv(h, q[f"blocks.{i}.pw.weight"]), q, f"blocks.{i}.pw_bn"))
    pooled = h.mean(axis=(2, 3))
    return np.asarray(pooled @ q["head.weight"].T + q["head.bias"])


def c3_forward(p: Mapping[str, np.ndarray], x: np.ndarray, num_blocks: int) -> np.ndarray:
    h = g.conv(x, p["entry.weight"], p["entry.bias"], pad=1)
    for i in range(num_blocks):
        r = g.relu(g.conv(h, p[f"blocks.{i}.conv1.weight"], p[f"blocks.{i}.conv1.bias"], pad=1))
        h = h + g.conv(r, p[f"blocks.{i}.conv2.weight"], p[f"blocks.{i}.conv2.bias"], pad=1)
    residual = g.conv(h, p["exit.weight"], p["exit.bias"], pad=1)
    return np.asarray(np.clip(x + residual, 0.0, 1.0))


def c2_onnx(p: Mapping[str, np.ndarray], size: int, opset: int, model_id: str) -> onnx.ModelProto:
    """Batch norm folded into each convolution, ReLU6 as Clip(0, 6), then pool and Gemm."""
    q = dict(p)
    gr = g.Graph()
    w, b = g.fold_bn(q, "stem.conv.weight", "stem.bn")
    h = gr.clip(gr.conv("frame", w, b, "stem", stride=2), 0.0, 6.0)
    for i, (_, _, stride) in enumerate(C2_BLOCKS):
        w, b = g.fold_bn(q, f"blocks.{i}.dw.weight", f"blocks.{i}.dw_bn")
        h = gr.clip(gr.conv(h, w, b, f"blocks.{i}.dw", stride=stride, groups=w.shape[0]), 0, 6)
        w, b = g.fold_bn(q, f"blocks.{i}.pw.weight", f"blocks.{i}.pw_bn")
        h = gr.clip(gr.conv(h, w, b, f"blocks.{i}.pw", pad=0), 0.0, 6.0)
    pooled = gr.op("Flatten", [gr.op("GlobalAveragePool", [h])], axis=1)
    head = [gr.const(q["head.weight"], "head.weight"), gr.const(q["head.bias"], "head.bias")]
    gr.op("Gemm", [pooled, *head], "mos", transB=1)
    cin = q["stem.conv.weight"].shape[1]
    return gr.model(model_id, [("frame", ["N", cin, size, size])], [("mos", ["N", 1])], opset)


def c3_onnx(
    p: Mapping[str, np.ndarray], num_blocks: int, size: int, opset: int, model_id: str
) -> onnx.ModelProto:
    gr = g.Graph()
    h = gr.conv("degraded", p["entry.weight"], p["entry.bias"], "entry")
    for i in range(num_blocks):
        w1, b1 = p[f"blocks.{i}.conv1.weight"], p[f"blocks.{i}.conv1.bias"]
        w2, b2 = p[f"blocks.{i}.conv2.weight"], p[f"blocks.{i}.conv2.bias"]
        r = gr.op("Relu", [gr.conv(h, w1, b1, f"blocks.{i}.conv1")])
        h = gr.op("Add", [h, gr.conv(r, w2, b2, f"blocks.{i}.conv2")])
    residual = gr.conv(h, p["exit.weight"], p["exit.bias"], "exit")
    gr.clip(gr.op("Add", ["degraded", residual]), 0.0, 1.0, "filtered")
    c = p["entry.weight"].shape[1]
    shape: list[int | str] = ["N", c, size, size]
    return gr.model(model_id, [("degraded", shape)], [("filtered", shape)], opset)


def random_state(
    rng: np.random.Generator, shapes: Mapping[str, tuple[int, ...]], scale: float = 1.0
) -> dict[str, np.ndarray]:
    """Small seeded weights: He-scaled convolutions, batch-norm statistics near identity."""
    state = {}
    for name, shape in shapes.items():
        if name.endswith("running_var"):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith("running_mean") or name.endswith(".bias"):
            value = rng.normal(0.0, 0.05, shape)
        elif len(shape) == 1:  # a batch-norm weight
            value = rng.uniform(0.8, 1.2, shape)
        else:
            fan_in = int(np.prod(shape[1:]))
            value = rng.normal(0.0, scale * np.sqrt(2.0 / fan_in), shape)
        state[name] = value.astype(np.float32)
    return state
