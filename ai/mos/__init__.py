"""The MOS head: its ridge model, its ONNX graph and the vmaf-train fit config."""
