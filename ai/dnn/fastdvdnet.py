"""FastDVDnet under the fork's luma 5-frame contract: ``frames`` [1,5,H,W] -> ``denoised``.

The real model keeps upstream's shape of computation, reduced in size: two stages of the same
denoising block (the first applied to frames 0-2, 1-3 and 2-4 with shared weights, the second
to their three outputs), each block an encoder-decoder (entry conv, stride-2 conv, conv and a
pixel shuffle back up, exit conv) whose output is subtracted from its centre input. The adapter
around it tiles each luma plane into RGB, adds the constant noise map, clamps the RGB result to
[0, 1] and takes its BT.601 luma. PixelShuffle is written as Reshape, Transpose, Reshape:
DepthToSpace is not on libvmaf's operator allowlist.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnx

from ai.dnn import export
from ai.dnn import graph as g

FRAMES, CENTRE = 5, 2
STAGES = ("temp1", "temp2")
LAYERS = ("inc", "downc0", "upc1", "outc")
BT601 = (0.299, 0.587, 0.114)
ARCHITECTURE = "FastDVDnet"
PLACEHOLDER_SEED = 0xFA57DEAD


def contract(args: argparse.Namespace, data: bytes) -> dict[str, Any]:
    """The sidecar fields of the pre-filter contract, the real model's and the placeholder's."""
    return {
        **export.contract(args, "fastdvdnet_pre", "filter", data, INPUT, OUTPUT),
        "frame_window": FRAMES,
        "centre_index": CENTRE,
    }


def shapes(c0: int = 8, c1: int = 16) -> dict[str, tuple[int, ...]]:
    """Upstream's parameter names (without DataParallel's ``module.``), reduced widths."""
    layer = {"inc": (c0, 12), "downc0": (c1, c0), "upc1": (4 * c0, c1), "outc": (3, c0)}
    out: dict[str, tuple[int, ...]] = {}
    for stage in STAGES:
        for name, (o, i) in layer.items():
            out[f"{stage}.{name}.weight"] = (o, i, 3, 3)
            out[f"{stage}.{name}.bias"] = (o,)
    return out


def widths(state: Mapping[str, np.ndarray]) -> tuple[int, int]:
    return state["temp1.inc.weight"].shape[0], state["temp1.downc0.weight"].shape[0]


def strip_module(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Parameter names as a model saved from ``DataParallel`` has them, without ``module.``."""
    return {k.removeprefix("module."): v for k, v in state.items()}


# -- numpy -------------------------------------------------------------------------------------


def _block(
    p: Mapping[str, np.ndarray], s: str, ins: list[np.ndarray], noise: np.ndarray
) -> np.ndarray:
    x = np.concatenate([part for f in ins for part in (f, noise)], axis=1)
    x0 = g.relu(g.conv(x, p[f"{s}.inc.weight"], p[f"{s}.inc.bias"], pad=1))
    x1 = g.relu(g.conv(x0, p[f"{s}.downc0.weight"], p[f"{s}.downc0.bias"], stride=2, pad=1))
    x2 = g.pixel_shuffle(g.conv(x1, p[f"{s}.upc1.weight"], p[f"{s}.upc1.bias"], pad=1), 2)
    return np.asarray(ins[1] - g.conv(x0 + x2, p[f"{s}.outc.weight"], p[f"{s}.outc.bias"], pad=1))


def forward(p: Mapping[str, np.ndarray], frames: np.ndarray, sigma: float) -> np.ndarray:
    rgb = [np.repeat(frames[:, i : i + 1], 3, axis=1) for i in range(FRAMES)]
    noise = np.full_like(frames[:, :1], sigma)
    mid = [_block(p, "temp1", rgb[i : i + 3], noise) for i in range(3)]
    out = np.clip(_block(p, "temp2", mid, noise), 0.0, 1.0)
    return np.asarray(np.einsum("nchw,c->nhw", out, np.array(BT601))[:, None])


def placeholder_forward(p: Mapping[str, np.ndarray], frames: np.ndarray) -> np.ndarray:
    h = g.relu(g.conv(frames, p["conv1.weight"], p["conv1.bias"], pad=1))
    h = g.relu(g.conv(h, p["conv2.weight"], p["conv2.bias"], pad=1))
    residual = g.conv(h, p["conv3.weight"], p["conv3.bias"], pad=1)
    return np.clip(frames[:, CENTRE : CENTRE + 1] + 0.05 * residual, 0.0, 1.0)


# -- ONNX --------------------------------------------------------------------------------------

INPUT, OUTPUT = "frames", "denoised"
SHAPE_IN: list[int | str] = [1, FRAMES, "H", "W"]
SHAPE_OUT: list[int | str] = [1, 1, "H", "W"]


def _conv(gr: g.Graph, x: str, names: Mapping[str, str], layer: str, stride: int = 1) -> str:
    attrs: dict[str, Any] = {
        "kernel_shape": [3, 3],
        "pads": [1, 1, 1, 1],
        "strides": [stride, stride],
    }
    return gr.op("Conv", [x, names[f"{layer}.weight"], names[f"{layer}.bias"]], **attrs)


def _pixel_shuffle(gr: g.Graph, x: str, channels: int) -> str:
    """``[N, 4C, H, W]`` -> ``[N, C, 2H, 2W]`` without DepthToSpace; H and W stay dynamic."""
    hw = gr.op(
        "Slice",
        [gr.op("Shape", [x]), gr.const([2], "s", np.int64), gr.const([4], "e", np.int64)],
    )
    first = gr.op("Concat", [gr.const([0, channels, 2, 2], "d", np.int64), hw], axis=0)
    split = gr.op("Transpose", [gr.op("Reshape", [x, first])], perm=[0, 1, 4, 2, 5, 3])
    doubled = gr.op("Mul", [hw, gr.const([2, 2], "two", np.int64)])
    second = gr.op("Concat", [gr.const([0, channels], "d", np.int64), doubled], axis=0)
    return gr.op("Reshape", [split, second])


def _block_onnx(
    gr: g.Graph, names: Mapping[str, str], s: str, ins: list[str], noise: str, c0: int
) -> str:
    x = gr.op("Concat", [part for f in ins for part in (f, noise)], axis=1)
    x0 = gr.op("Relu", [_conv(gr, x, names, f"{s}.inc")])
    x1 = gr.op("Relu", [_conv(gr, x0, names, f"{s}.downc0", stride=2)])
    x2 = _pixel_shuffle(gr, _conv(gr, x1, names, f"{s}.upc1"), c0)
    return gr.op("Sub", [ins[1], _conv(gr, gr.op("Add", [x0, x2]), names, f"{s}.outc")])


def build(p: Mapping[str, np.ndarray], sigma: float, opset: int) -> onnx.ModelProto:
    gr = g.Graph()
    names = {k: gr.const(v, k) for k, v in sorted(p.items())}  # stage one's weights, once
    planes = [gr.name("frame") for _ in range(FRAMES)]
    gr.nodes.append(
        onnx.helper.make_node(
            "Split", [INPUT, gr.const([1] * FRAMES, "split", np.int64)], planes, axis=1
        )
    )
    rgb = [gr.op("Concat", [f, f, f], axis=1) for f in planes]
    noise = gr.op("Add", [gr.op("Mul", [planes[CENTRE], gr.const(0.0)]), gr.const(sigma, "sigma")])
    c0, _ = widths(p)
    mid = [_block_onnx(gr, names, "temp1", rgb[i : i + 3], noise, c0) for i in range(3)]
    out = gr.clip(_block_onnx(gr, names, "temp2", mid, noise, c0), 0.0, 1.0)
    luma = np.array(BT601, dtype=np.float32).reshape(1, 3, 1, 1)
    gr.op("Conv", [out, gr.const(luma, "bt601")], OUTPUT, kernel_shape=[1, 1])
    return gr.model("fastdvdnet_pre", [(INPUT, SHAPE_IN)], [(OUTPUT, SHAPE_OUT)], opset)


def placeholder_state(seed: int = PLACEHOLDER_SEED) -> dict[str, np.ndarray]:
    """Conv(5->8) -> Conv(8->8) -> Conv(8->1), 3x3, drawn as torch initialises them."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, (o, i) in (("conv1", (8, FRAMES)), ("conv2", (8, 8)), ("conv3", (1, 8))):
        bound = 1.0 / np.sqrt(i * 9)
        state[f"{name}.weight"] = rng.uniform(-bound, bound, (o, i, 3, 3)).astype(np.float32)
        state[f"{name}.bias"] = rng.uniform(-bound, bound, (o,)).astype(np.float32)
    return state


def build_placeholder(p: Mapping[str, np.ndarray], opset: int) -> onnx.ModelProto:
    gr = g.Graph()
    h = gr.op("Relu", [gr.conv(INPUT, p["conv1.weight"], p["conv1.bias"], "conv1")])
    h = gr.op("Relu", [gr.conv(h, p["conv2.weight"], p["conv2.bias"], "conv2")])
    residual = gr.conv(h, p["conv3.weight"], p["conv3.bias"], "conv3")
    centre = gr.op(
        "Slice",
        [INPUT, *(gr.const([v], "i", np.int64) for v in (CENTRE, CENTRE + 1, 1))],
    )
    raw = gr.op("Add", [centre, gr.op("Mul", [residual, gr.const(0.05, "scale")])])
    gr.clip(raw, 0.0, 1.0, OUTPUT)
    return gr.model("fastdvdnet_pre_placeholder", [(INPUT, SHAPE_IN)], [(OUTPUT, SHAPE_OUT)], opset)
