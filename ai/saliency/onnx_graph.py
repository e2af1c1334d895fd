"""The saliency U-Nets as ONNX graphs: ``input`` [1, 3, H, W] to ``saliency_map`` [1, 1, H, W].

H and W are dynamic (multiples of 8: three 2x2 pools). BatchNorm runs on its running
statistics, as the fork's export in eval mode does. Initializers keep the state-dict names,
so :func:`params_from_onnx` rebuilds the numpy model from a shipped file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ai.saliency.unet import BN_EPS, DECODER, ENCODER, Params, bn_prefixes, shapes

INPUT_NAME = "input"
OUTPUT_NAME = "saliency_map"
PRODUCER = "ai.saliency"


def build(variant: str, params: Params, opset: int, name: str) -> onnx.ModelProto:
    nodes: list[onnx.NodeProto] = []
    keys = [*shapes(variant)] + [
        f"{p}.{b}" for p in bn_prefixes(variant) for b in ("running_mean", "running_var")
    ]
    initializers = [numpy_helper.from_array(params[k].astype(np.float32), k) for k in keys]
    initializers.append(
        numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "upsample_scales")
    )

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def cbr(prefix: str, value: str) -> str:
        value = node("Conv", [value, f"{prefix}.0.weight"], f"{prefix}.conv",
                     kernel_shape=[3, 3], pads=[1, 1, 1, 1])  # fmt: skip
        bn = f"{prefix}.1"
        value = node("BatchNormalization", [value, f"{bn}.weight", f"{bn}.bias",
                     f"{bn}.running_mean", f"{bn}.running_var"], f"{prefix}.bn",
                     epsilon=BN_EPS)  # fmt: skip
        return node("Relu", [value], f"{prefix}.relu")

    value, skips = INPUT_NAME, []
    for block, _, _ in ENCODER:
        value = cbr(f"{block}.1", cbr(f"{block}.0", value))
        skips.append(value)
        value = node("MaxPool", [value], f"{block}.pool", kernel_shape=[2, 2], strides=[2, 2])
    value = cbr("bottleneck", value)
    for (up, dec, _, _, _), skip in zip(DECODER, reversed(skips), strict=True):
        if variant == "v1":
            value = node("ConvTranspose", [value, f"{up}.weight"], f"{up}.out",
                         kernel_shape=[2, 2], strides=[2, 2])  # fmt: skip
        else:
            value = node("Resize", [value, "", "upsample_scales"], f"{up}.resize", mode="linear",
                         coordinate_transformation_mode="pytorch_half_pixel")  # fmt: skip
            value = node("Conv", [value, f"{up}.1.weight"], f"{up}.out",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1])  # fmt: skip
        value = node("Concat", [value, skip], f"{dec}.concat", axis=1)
        value = cbr(dec, value)
    value = node("Conv", [value, "head.weight", "head.bias"], "head.logits", kernel_shape=[1, 1])
    node("Sigmoid", [value], OUTPUT_NAME)
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, "height", "width"])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [1, 1, "height", "width"])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name=PRODUCER
    )
    model.ir_version = min(model.ir_version, 10)  # readable by onnxruntime releases in use
    helper.set_model_props(model, {"variant": variant})
    return model


def params_from_onnx(model: onnx.ModelProto, variant: str) -> tuple[Params, list[str]]:
    """The numpy model's parameters from the graph's initializers matching their names, and
    the names the graph lacked (a rebuild from a foreign graph loads what matches)."""
    found = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer}
    params: Params = {}
    missing = []
    wanted = [*shapes(variant)] + [
        f"{p}.{b}" for p in bn_prefixes(variant) for b in ("running_mean", "running_var")
    ]
    for key in wanted:
        if key in found:
            params[key] = found[key]
        else:
            missing.append(key)
    return params, missing


def variant_of(model: onnx.ModelProto) -> str | None:
    return {p.key: p.value for p in model.metadata_props}.get("variant")
