"""The predictor MLP: a 14-float projected encode row to a VMAF score in 0-100.

The fork's vmaf-tune trainer: input z-score from the training rows (std with ddof=1, a
deviation at or under 1e-6 taken as 1), Linear(14,64) ReLU Linear(64,64) ReLU Linear(64,1),
then 100·sigmoid; Adam, lr 5e-3, batch 32, 200 epochs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ai.common.mlp import MLP

PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)
# The projection: what the encoder was asked for, what it produced, and what it saw.
FEATURES = (
    "crf",
    "log2_bitrate_kbps",
    "log2_encode_size_bytes",
    "bits_per_pixel",
    "width",
    "height",
    "framerate",
    "duration_s",
    "preset_index",
    "motion2_mean",
    "shot_count",
    "enc_internal_qp_mean",
    "enc_internal_intra_ratio",
    "enc_internal_skip_ratio",
)
HIDDEN = (64, 64)
LR = 5e-3
BATCH = 32


def _number(row: Mapping[str, Any], key: str, default: float = 0.0) -> float:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value) if math.isfinite(value) else default


def _preset(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)  # SVT-AV1 and aom number their presets
    return float(PRESETS.index(value)) if value in PRESETS else float(PRESETS.index("medium"))


def project(row: Mapping[str, Any]) -> list[float]:
    """The 14 inputs of one corpus row; an absent or non-finite field counts as 0."""
    width, height = _number(row, "width"), _number(row, "height")
    fps, kbps = _number(row, "framerate"), _number(row, "bitrate_kbps")
    pixels_per_s = width * height * fps
    return [
        _number(row, "crf"),
        math.log2(1.0 + max(kbps, 0.0)),
        math.log2(1.0 + max(_number(row, "encode_size_bytes"), 0.0)),
        kbps * 1000.0 / pixels_per_s if pixels_per_s > 0 else 0.0,
        width,
        height,
        fps,
        _number(row, "duration_s"),
        _preset(row.get("preset")),
        _number(row, "motion2_mean"),
        _number(row, "shot_count"),
        _number(row, "enc_internal_qp_mean"),
        _number(row, "enc_internal_intra_ratio"),
        _number(row, "enc_internal_skip_ratio"),
    ]


class Predictor(MLP):
    """The MLP with its output squashed to 0-100 by ``100·sigmoid``."""

    def _output(self, z: np.ndarray) -> np.ndarray:
        return np.asarray(100.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0))))

    def _output_grad(self, out: np.ndarray, grad: np.ndarray) -> np.ndarray:
        s = out / 100.0
        return np.asarray(grad * 100.0 * s * (1.0 - s))


def input_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The trainer's z-score buffers: mean, and std with ddof=1 (at or under 1e-6: 1)."""
    mean = x.mean(axis=0)
    std = x.std(axis=0, ddof=1) if len(x) > 1 else np.ones(x.shape[1])
    return mean, np.where(std <= 1e-6, 1.0, std)


def train(x: np.ndarray, y: np.ndarray, *, epochs: int, seed: int) -> Predictor:
    """One predictor fit on ``x`` (raw projected rows) and ``y`` (VMAF)."""
    base = MLP.create([len(FEATURES), *HIDDEN, 1], seed)
    model = Predictor(base.weights, base.biases, "relu")
    model.mean, model.std = input_stats(x)
    model.fit(x, y, epochs=epochs, batch_size=BATCH, lr=LR, seed=seed)
    return model
