"""Checkpoints and upstream-like weights for the DNN feature-model exporters.

Seeded random weights stand in for training: the C2/C3 checkpoints as a trainer would save
them, and the FastDVDnet and TransNet V2 weights in folders laid out as their upstream
repositories are (FastDVDnet's saved from DataParallel, its names prefixed ``module.``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ai.dnn import fastdvdnet, tiny, transnet
from ai.dnn.export import npz_bytes


def write_dnn(tree: Any, rng: np.random.Generator) -> None:
    c2 = {"in_channels": 1, "width": 16, "lr": 0.001}
    state = tiny.random_state(rng, tiny.c2_shapes(tiny.c2_hyper(c2)))
    tree.write("dnn/c2_konvid/last.npz", npz_bytes(state, c2))
    c3 = {"channels": 1, "width": 16, "num_blocks": 4, "lr": 0.001}
    state = tiny.random_state(rng, tiny.c3_shapes(tiny.c3_hyper(c3)), scale=0.1)
    tree.write("dnn/c3_konvid/last.npz", npz_bytes(state, c3))
    weights = tiny.random_state(rng, fastdvdnet.shapes(), scale=0.3)
    upstream = {f"module.{k}": v for k, v in weights.items()}
    tree.write(
        "dnn/fastdvdnet/model.npz",
        npz_bytes(upstream, {"architecture": fastdvdnet.ARCHITECTURE, "num_input_frames": 5}),
    )
    weights = tiny.random_state(rng, transnet.shapes())
    tree.write(
        "dnn/transnetv2/weights.npz", npz_bytes(weights, {"architecture": transnet.ARCHITECTURE})
    )
    tree.counts["dnn"] = 4
