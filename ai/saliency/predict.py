"""Saliency maps of a DUTS-style root's images from a student ONNX, at each image's own size."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ai.saliency import duts
from ai.saliency.images import read_image

MULTIPLE = 8  # three 2x2 pools: the net takes sides that are multiples of 8


def saliency_map(session: object, image_path: Path) -> np.ndarray:
    """``[H, W]`` float32 in [0, 1]: the image normalised as in training, its edges repeated
    up to a multiple of 8, the map cropped back."""
    image = read_image(image_path)
    rgb = image[..., :3] if image.shape[2] >= 3 else np.repeat(image[..., :1], 3, axis=2)
    chw = duts.normalise(rgb.transpose(2, 0, 1) / 255.0)
    h, w = chw.shape[1:]
    pad_h, pad_w = -h % MULTIPLE, -w % MULTIPLE
    padded = np.pad(chw, ((0, 0), (0, pad_h), (0, pad_w)), mode="edge")
    (out,) = session.run(None, {"input": padded[None].astype(np.float32)})  # type: ignore[attr-defined]
    return np.asarray(out[0, 0, :h, :w], dtype=np.float32)
