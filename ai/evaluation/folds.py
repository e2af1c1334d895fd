"""Training the per-fold models and the single-split baselines the LOSO evaluations score.

Each fold trains one architecture on the frames of eight clips (z-scored on those eight,
ddof 0) with the fork's tiny-model loop (:class:`ai.common.mlp.MLP`), and exports it as the
fork's tiny exporters do: ONNX opset 17, input ``features`` ``[N, 6]`` (raw canonical-6; the
standardisation is baked in), output ``vmaf`` ``[N]``. A baseline trains once, on the clips of
one content split's ``train`` part, and is exported the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ai.common.mlp import MLP, to_onnx
from ai.common.onnx_checks import check_export
from ai.evaluation.loso import ARCHS, ClipData, scores
from ai.features.tables import split_of

PARITY_ATOL = 1e-4


@dataclass(frozen=True)
class Hyper:
    epochs: int
    batch_size: int
    lr: float
    seed: int


@dataclass(frozen=True)
class Trained:
    onnx: bytes
    train_rows: int
    train_mse: float
    parity_drift: float
    in_sample: dict[str, object]


def train(arch: str, clips: Sequence[str], data: Mapping[str, ClipData], hyper: Hyper,
          graph_name: str) -> Trained:  # fmt: skip
    """One model of ``arch`` on the frames of ``clips``, exported and checked."""
    x = np.concatenate([data[c].x for c in clips])
    y = np.concatenate([data[c].y for c in clips])
    model = MLP.create(ARCHS[arch], hyper.seed)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    model.mean, model.std = mean, np.where(std < 1e-8, 1.0, std)
    history = model.fit(
        x, y, epochs=hyper.epochs, batch_size=hyper.batch_size, lr=hyper.lr, seed=hyper.seed
    )
    proto = to_onnx(model, [("features", 6)], "vmaf", graph_name=graph_name, batch_dim="N")
    feeds = {"features": x.astype(np.float32)}
    data_bytes, drift = check_export(
        proto, feeds, lambda f: model.predict(f["features"]).reshape(-1), PARITY_ATOL
    )
    return Trained(
        data_bytes,
        len(y),
        round(history[-1], 6),
        drift,
        scores(model.predict(x).reshape(-1), y),
    )


def train_clips(clips: Sequence[str], split_seed: int) -> list[str]:
    """The clips in the ``train`` part of the content split of ``split_seed``."""
    return [clip for clip in clips if split_of(split_seed, clip) == "train"]
