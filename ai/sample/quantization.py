"""The model checks' sample inputs: frames for a learned filter, and the filter itself."""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from ai.quantization import learned_filter

FRAMES, SIZE = 4, 32


def write_quantization(tree: Any, rng: np.random.Generator) -> None:
    """``filter/frames.npy``: smooth gradients with grain, inside (0, 1), as ``(N, H, W)``;
    ``filter/learned_filter.onnx``: a near-identity 3x3 filter over them."""
    y, x = np.mgrid[0:SIZE, 0:SIZE] / (SIZE - 1)
    frames = []
    for _ in range(FRAMES):
        a, b, c = rng.uniform(0.2, 0.6, 3)
        base = 0.15 + a * x + b * y * (1 - x) + 0.1 * np.sin(6.0 * c * (x + y))
        frames.append(np.clip(base + rng.normal(0.0, 0.02, base.shape), 0.05, 0.95))
    buffer = io.BytesIO()
    np.save(buffer, np.stack(frames).astype(np.float32), allow_pickle=False)
    tree.write("filter/frames.npy", buffer.getvalue())
    model = learned_filter.build()
    tree.write("filter/learned_filter.onnx", model.SerializeToString(deterministic=True))
