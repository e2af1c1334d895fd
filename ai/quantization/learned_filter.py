"""A small learned-filter stand-in for ``vmaf-train audit-learned-filter``: one 3x3 convolution
close to the identity (a light blur) and a clip to [0, 1], with the fork's filter interface
(input ``input`` ``[N, 1, H, W]``, output ``output``, opset 17)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INPUT_NAME, OUTPUT_NAME = "input", "output"


def kernel(centre: float = 0.92) -> np.ndarray:
    """A 3x3 kernel summing to 1: ``centre`` in the middle, the rest spread over the ring."""
    k = np.full((3, 3), (1.0 - centre) / 8.0, dtype=np.float32)
    k[1, 1] = centre
    return k.reshape(1, 1, 3, 3)


def build(centre: float = 0.92, opset: int = 17) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Conv", [INPUT_NAME, "weight"], ["filtered"], pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["filtered", "low", "high"], [OUTPUT_NAME]),
    ]
    graph = helper.make_graph(
        nodes,
        "learned_filter_stand_in",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", 1, "H", "W"])],
        initializer=[
            numpy_helper.from_array(kernel(centre), "weight"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "low"),
            numpy_helper.from_array(np.array(1.0, dtype=np.float32), "high"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="ai.quantization"
    )
    model.ir_version = min(model.ir_version, 10)
    onnx.checker.check_model(model, full_check=True)
    return model
