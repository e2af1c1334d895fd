"""TransNet V2 under the fork's contract: ``frames`` [1,100,3,27,48] (0-255) -> ``boundary_logits``.

The real model keeps upstream's dilated-3D-convolution trunk, reduced: frames scaled to [0, 1],
two 3x3x3 convolutions over time and space (the second dilated by 2 in time) with ReLU, each
frame's spatial mean, a dense layer with ReLU and the per-frame classifier. Upstream's
colour-histogram branch (where its SegmentSum sits) is not part of the reduced graph.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx

from ai.dnn import export
from ai.dnn import graph as g

WINDOW, CHANNELS, HEIGHT, WIDTH = 100, 3, 27, 48
INPUT, OUTPUT = "frames", "boundary_logits"
SHAPE_IN = [1, WINDOW, CHANNELS, HEIGHT, WIDTH]
SHAPE_OUT = [1, WINDOW]
DILATIONS = ((1, 1, 1), (2, 1, 1))
PLACEHOLDER_SEED = 0x715A57
ARCHITECTURE = "TransNetV2"


def contract(args: argparse.Namespace, data: bytes) -> dict[str, Any]:
    """The sidecar fields of the shot-detector contract, the real model's and the placeholder's."""
    return {
        **export.contract(args, "transnet_v2", "shot_detector", data, INPUT, OUTPUT),
        "frame_window": WINDOW,
        "thumbnail_h": HEIGHT,
        "thumbnail_w": WIDTH,
        "channels": CHANNELS,
        "boundary_threshold": 0.5,
    }


def shapes(filters: int = 4, dense: int = 8) -> dict[str, tuple[int, ...]]:
    return {
        "ddcnn.0.conv.weight": (filters, CHANNELS, 3, 3, 3),
        "ddcnn.0.conv.bias": (filters,),
        "ddcnn.1.conv.weight": (filters, filters, 3, 3, 3),
        "ddcnn.1.conv.bias": (filters,),
        "fc1.weight": (dense, filters),
        "fc1.bias": (dense,),
        "cls_layer1.weight": (1, dense),
        "cls_layer1.bias": (1,),
    }


def widths(state: Mapping[str, np.ndarray]) -> tuple[int, int]:
    return state["ddcnn.0.conv.weight"].shape[0], state["fc1.weight"].shape[0]


def forward(p: Mapping[str, np.ndarray], frames: np.ndarray) -> np.ndarray:
    x = (frames / 255.0).transpose(0, 2, 1, 3, 4)
    for i, dilation in enumerate(DILATIONS):
        x = g.relu(g.conv3d(x, p[f"ddcnn.{i}.conv.weight"], p[f"ddcnn.{i}.conv.bias"], dilation))
    pooled = x.mean(axis=(3, 4))[0].T  # [T, F]
    h = g.relu(pooled @ p["fc1.weight"].T + p["fc1.bias"])
    return np.asarray((h @ p["cls_layer1.weight"].T + p["cls_layer1.bias"]).reshape(1, WINDOW))


def build(p: Mapping[str, np.ndarray], opset: int) -> onnx.ModelProto:
    gr = g.Graph()
    x = gr.op("Div", [INPUT, gr.const(255.0, "scale")])
    x = gr.op("Transpose", [x], perm=[0, 2, 1, 3, 4])
    for i, dilation in enumerate(DILATIONS):
        w, b = p[f"ddcnn.{i}.conv.weight"], p[f"ddcnn.{i}.conv.bias"]
        x = gr.op("Relu", [gr.conv(x, w, b, f"ddcnn.{i}", dilations=dilation)])
    filters, _ = widths(p)
    per_frame = gr.op("Transpose", [x], perm=[0, 2, 1, 3, 4])
    shape = gr.const([WINDOW, filters, HEIGHT, WIDTH], "shape", np.int64)
    pooled = gr.op("GlobalAveragePool", [gr.op("Reshape", [per_frame, shape])])
    flat = gr.op("Flatten", [pooled], axis=1)
    h = gr.op("Relu", [_dense(gr, flat, p, "fc1")])
    logits = _dense(gr, h, p, "cls_layer1")
    gr.op("Reshape", [logits, gr.const(SHAPE_OUT, "out_shape", np.int64)], OUTPUT)
    return gr.model("transnet_v2", [(INPUT, SHAPE_IN)], [(OUTPUT, SHAPE_OUT)], opset)


def _dense(gr: g.Graph, x: str, p: Mapping[str, np.ndarray], name: str) -> str:
    w, b = gr.const(p[f"{name}.weight"], f"{name}.weight"), gr.const(p[f"{name}.bias"], name)
    return gr.op("Gemm", [x, w, b], transB=1)


def placeholder_state(seed: int = PLACEHOLDER_SEED) -> dict[str, np.ndarray]:
    """Linear(3888, 8) and Linear(8, 1), drawn as torch initialises them."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, (o, i) in (("fc1", (8, CHANNELS * HEIGHT * WIDTH)), ("fc2", (1, 8))):
        bound = 1.0 / np.sqrt(i)
        state[f"{name}.weight"] = rng.uniform(-bound, bound, (o, i)).astype(np.float32)
        state[f"{name}.bias"] = rng.uniform(-bound, bound, (o,)).astype(np.float32)
    return state


def placeholder_forward(p: Mapping[str, np.ndarray], frames: np.ndarray) -> np.ndarray:
    x = frames.reshape(WINDOW, -1).astype(np.float64)
    h = g.relu(x @ p["fc1.weight"].T + p["fc1.bias"])
    return np.asarray((h @ p["fc2.weight"].T + p["fc2.bias"]).reshape(1, WINDOW))


def build_placeholder(p: Mapping[str, np.ndarray], opset: int) -> onnx.ModelProto:
    gr = g.Graph()
    flat = gr.op("Reshape", [INPUT, gr.const([WINDOW, -1], "flat", np.int64)])
    h = gr.op("Relu", [_dense(gr, flat, p, "fc1")])
    logits = _dense(gr, h, p, "fc2")
    gr.op("Reshape", [logits, gr.const(SHAPE_OUT, "out_shape", np.int64)], OUTPUT)
    return gr.model("transnet_v2_placeholder", [(INPUT, SHAPE_IN)], [(OUTPUT, SHAPE_OUT)], opset)
