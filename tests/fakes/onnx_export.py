"""An export script that writes a real ONNX model: one file, or a folder holding the model and
its external data, as large models are shipped."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from provenance import current_run, recorded_run


def linear_model(weights: np.ndarray) -> onnx.ModelProto:
    """``y = x @ W``: small, and a model onnx.checker accepts."""
    w = numpy_helper.from_array(weights.astype(np.float32), name="W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, weights.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, weights.shape[1]])],
        initializer=[w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@recorded_run(
    inputs={"data": "data"},
    outputs={"model": "out"},
    sign_with=os.environ.get("ONNX_EXPORT_SIGN_WITH") or None,
)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--folder", action="store_true", help="a folder with external data")
    parser.add_argument("--gate", choices=["pass", "fail"])
    parser.add_argument("--fail", action="store_true")
    args = parser.parse_args(argv)
    seed = sum(Path(args.data).read_bytes()) % 1000
    weights = np.random.default_rng(seed).standard_normal((64, 32))
    model = linear_model(weights)
    if args.folder:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        onnx.save_model(
            model,
            str(Path(args.out) / "model.onnx"),
            save_as_external_data=True,
            location="model.onnx.data",
            size_threshold=0,
        )
    else:
        onnx.save_model(model, args.out)
    if args.gate:
        current_run().gate("parity", passed=args.gate == "pass", max_abs_diff=0.0)
    return 1 if args.fail else 0


if __name__ == "__main__":
    sys.exit(main())
