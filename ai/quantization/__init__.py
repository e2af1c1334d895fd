"""int8 quantization of the pipeline's ONNX models and the measurement of its drop."""
