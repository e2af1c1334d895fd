"""Quantization-aware training in numpy: the stand-in for the fork's torch FX QAT.

The model trains in fp32 (the warm start), then fine-tunes with its weights fake-quantized:
before each QAT epoch every weight matrix is rounded to symmetric per-output-channel int8 and
back, and the epoch's updates start from there, so the weights settle where rounding costs
least. The fp32 shadow weights are then copied into a fresh model, exported as fp32 ONNX and
quantized to int8 QDQ by onnxruntime's static quantizer, as the fork does after FX conversion.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ai.common.files import InputError
from ai.common.mlp import MLP, zscore
from ai.features.libvmaf import CANONICAL_6
from ai.mos.mos_head import INPUTS

TOP_KEYS = {"model", "model_args", "cache", "batch_size", "val_frac", "test_frac", "qat"}
QAT_KEYS = {"epochs_fp32", "epochs_qat", "lr_qat", "smoke", "input_shape", "input_name",
            "output_name"}  # fmt: skip


@dataclass(frozen=True)
class ModelSpec:
    """A model the QAT driver can build: its layer sizes from the model arguments."""

    build: Callable[[Mapping[str, Any], int], MLP]
    features: Callable[[Mapping[str, Any]], tuple[str, ...]]


def _features(args: Mapping[str, Any]) -> tuple[str, ...]:
    names = args.get("features", list(CANONICAL_6))
    if not isinstance(names, list) or not names or any(n not in INPUTS for n in names):
        raise InputError(f"model_args.features: a list of MOS-head inputs ({', '.join(INPUTS)})")
    return tuple(names)


def _mos_mlp(args: Mapping[str, Any], seed: int) -> MLP:
    hidden = args.get("hidden", 16)
    if not isinstance(hidden, int) or hidden < 1:
        raise InputError("model_args.hidden: a positive number of units")
    return MLP.create([len(_features(args)), hidden, 1], seed)


# The training model registry: the fork's holds its torch modules; this one the numpy models.
MODELS = {"mos_mlp": ModelSpec(_mos_mlp, _features)}


@dataclass(frozen=True)
class QatConfig:
    model: str
    model_args: dict[str, Any]
    cache: Path | None
    batch_size: int
    val_frac: float
    test_frac: float
    qat: dict[str, Any]

    @property
    def lr(self) -> float:
        return float(self.model_args.get("lr", 1e-4))


def load_config(path: Path) -> QatConfig:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such config") from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot be read: {err}") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InputError(f"{path}: not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(doc, dict):
        raise InputError(f"{path}: expected a mapping of settings")
    unknown = sorted(set(doc) - TOP_KEYS)
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(map(str, unknown))}")
    model = doc.get("model")
    if model not in MODELS:
        raise InputError(f"{path}: model {model!r} is not in the registry ({', '.join(MODELS)})")
    args, qat = doc.get("model_args") or {}, doc.get("qat") or {}
    if not isinstance(args, dict) or not isinstance(qat, dict):
        raise InputError(f"{path}: model_args and qat must be mappings")
    bad = sorted(set(qat) - QAT_KEYS)
    if bad:
        raise InputError(f"{path}: unknown qat key(s) {', '.join(map(str, bad))}")
    cache = doc.get("cache")
    if cache is not None and not isinstance(cache, str):
        raise InputError(f"{path}: cache must be a path")
    batch, val, test = (
        doc.get("batch_size", 32),
        doc.get("val_frac", 0.1),
        doc.get("test_frac", 0.1),
    )
    if not isinstance(batch, int) or batch < 1:
        raise InputError(f"{path}: batch_size must be a positive integer")
    if not all(isinstance(f, (int, float)) and 0 <= f < 1 for f in (val, test)) or val + test >= 1:
        raise InputError(f"{path}: val_frac and test_frac must be in [0, 1) and sum below 1")
    return QatConfig(
        model,
        dict(args),
        None if cache is None else (path.parent / cache),
        batch,
        float(val),
        float(test),
        dict(qat),
    )


def fake_quant(w: np.ndarray) -> np.ndarray:
    """Symmetric int8 per output channel (the last axis), rounded and back to float."""
    scale = np.max(np.abs(w), axis=0) / 127.0
    scale = np.where(scale == 0.0, 1.0, scale)
    return np.clip(np.round(w / scale), -127, 127) * scale


def split(n: int, val_frac: float, test_frac: float, seed: int) -> dict[str, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    n_test, n_val = round(n * test_frac), round(n * val_frac)
    return {
        "test": np.sort(order[:n_test]),
        "val": np.sort(order[n_test : n_test + n_val]),
        "train": np.sort(order[n_test + n_val :]),
    }


def train(
    model: MLP,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs_fp32: int,
    epochs_qat: int,
    lr: float,
    lr_qat: float,
    batch_size: int,
    seed: int,
) -> dict[str, list[float]]:
    """The fp32 warm start, then the fake-quantized fine-tune; each epoch's training loss."""
    model.mean, model.std = zscore(x)
    history: dict[str, list[float]] = {"fp32": [], "qat": []}
    if epochs_fp32:
        history["fp32"] = model.fit(x, y, epochs=epochs_fp32, batch_size=batch_size, lr=lr,
                                    seed=seed)  # fmt: skip
    for epoch in range(epochs_qat):
        model.weights = [fake_quant(w) for w in model.weights]
        history["qat"] += model.fit(x, y, epochs=1, batch_size=batch_size, lr=lr_qat,
                                    seed=seed + 1 + epoch)  # fmt: skip
    return history


def copy_weights(source: MLP, target: MLP) -> int:
    """Copy the trained tensors into a fresh model of the same sizes; how many were copied."""
    copied = 0
    for i, (w, b) in enumerate(zip(source.weights, source.biases, strict=True)):
        if target.weights[i].shape == w.shape and target.biases[i].shape == b.shape:
            target.weights[i], target.biases[i] = w.copy(), b.copy()
            copied += 2
    target.mean, target.std = source.mean.copy(), source.std.copy()
    return copied
