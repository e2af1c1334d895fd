"""The saliency student: DUTS-style data, the tiny U-Nets in numpy, their ONNX twins, block IoU."""
