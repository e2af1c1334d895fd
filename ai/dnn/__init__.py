"""DNN feature models: the KoNViD C2/C3 tiny models, FastDVDnet and TransNet V2, as ONNX."""
