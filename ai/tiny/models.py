"""The tiny MLPs, their training loop, their checkpoint and their ONNX graph.

The fork's checkpoint is a ``torch.save`` dict; here it is an ``.npz`` with the same keys:
the ``nn.Sequential`` state dict as ``state_dict.<index>.weight`` / ``.bias`` members (torch's
``[out, in]`` layout, Linear layers at even indices with ReLU between them), ``features``,
``input_mean``, ``input_std``, ``train_metrics`` (a JSON string), the hyperparameters, and for
v3/v4 ``arch`` and ``n_params``.
"""

from __future__ import annotations

import io
import itertools
import json
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ai.common.files import InputError
from ai.common.mlp import MLP, to_onnx, zscore
from ai.features.libvmaf import CANONICAL_6

if TYPE_CHECKING:
    import onnx

ARCHS: dict[str, tuple[int, ...]] = {
    "mlp_small": (6, 16, 8, 1),
    "mlp_medium": (6, 32, 16, 1),
    "mlp_large": (6, 64, 32, 16, 1),
}
# Which architecture each released version uses; v5 is v2's recipe on more data.
VERSIONS = {"v2": "mlp_small", "v3": "mlp_medium", "v4": "mlp_large", "v5": "mlp_small"}
INPUT_NAME = "features"
OUTPUT_NAME = "vmaf"
OPSET = 17


def train(
    arch: str,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    log: Callable[[int, float], None] | None = None,
) -> MLP:
    """The fork's loop: inputs z-scored on ``x`` (ddof 0), Adam without decay, MSE on ``vmaf``."""
    model = MLP.create(ARCHS[arch], seed)
    model.mean, model.std = zscore(x)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, on_epoch=log)
    return model


def epoch_printer(epochs: int) -> Callable[[int, float], None]:
    """Print ``epoch k/E train_mse=…`` at epoch 1 and every tenth, as the fork's trainers."""

    def log(epoch: int, loss: float) -> None:
        if epoch == 1 or epoch % 10 == 0:
            print(f"epoch {epoch}/{epochs} train_mse={loss:.4f}", flush=True)

    return log


def predict(model: MLP, x: np.ndarray) -> np.ndarray:
    return model.predict(x).reshape(-1)


@dataclass(frozen=True)
class Checkpoint:
    model: MLP
    meta: dict[str, Any]  # every key but state_dict, in the fork's order


def _array(value: Any) -> np.ndarray:
    if isinstance(value, str):
        return np.array(value)
    if isinstance(value, dict):
        return np.array(json.dumps(value, sort_keys=True))
    return np.asarray(value)


def checkpoint_bytes(model: MLP, meta: Mapping[str, Any]) -> bytes:
    """The ``.npz``; its bytes depend only on the arrays (fixed entry times and order)."""
    arrays: dict[str, np.ndarray] = {}
    for i, (w, b) in enumerate(zip(model.weights, model.biases, strict=True)):
        arrays[f"state_dict.{2 * i}.weight"] = w.T.astype(np.float32)
        arrays[f"state_dict.{2 * i}.bias"] = b.astype(np.float32)
    arrays.update({key: _array(value) for key, value in meta.items()})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            payload = io.BytesIO()
            # ascontiguousarray would make a 0-d scalar 1-d
            np.lib.format.write_array(
                payload, np.require(array, requirements="C"), allow_pickle=False
            )
            archive.writestr(entry, payload.getvalue())
    return buffer.getvalue()


def _plain(name: str, value: np.ndarray) -> Any:
    if name == "train_metrics":
        return json.loads(str(value.item()))
    return value.tolist()


def load_checkpoint(path: Path, arch: str) -> Checkpoint:
    """A checkpoint of ``arch``; one of another shape or with other than six inputs is refused."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            members = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise InputError(f"{path}: not a vmaf_tiny checkpoint: {err}") from None
    try:
        meta = {k: _plain(k, v) for k, v in members.items() if not k.startswith("state_dict.")}
        features = [str(f) for f in meta["features"]]
        mean = np.asarray(meta["input_mean"], dtype=np.float64)
        std = np.asarray(meta["input_std"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as err:  # JSONDecodeError is a ValueError
        raise InputError(f"{path}: not a vmaf_tiny checkpoint: missing or bad {err}") from None
    if len(features) != 6 or mean.shape != (6,) or std.shape != (6,):
        raise InputError(f"{path}: {len(features)} features; a vmaf_tiny model takes 6")
    sizes = ARCHS[arch]
    weights, biases = [], []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        w = members.get(f"state_dict.{2 * i}.weight")
        b = members.get(f"state_dict.{2 * i}.bias")
        if w is None or b is None or w.shape != (fan_out, fan_in) or b.shape != (fan_out,):
            raise InputError(
                f"{path}: its state_dict is not {arch}'s ({'→'.join(map(str, sizes))})"
            )
        weights.append(w.T.astype(np.float64))
        biases.append(b.astype(np.float64))
    if f"state_dict.{2 * len(weights)}.weight" in members:
        raise InputError(f"{path}: its state_dict has more layers than {arch}")
    return Checkpoint(MLP(weights, biases, "relu", mean, np.where(std < 1e-8, 1.0, std)), meta)


def export(model: MLP, model_id: str) -> onnx.ModelProto:
    """Input ``features`` [N,6] raw, the scaler as graph constants, output ``vmaf`` [N]."""
    graph = to_onnx(
        model, [(INPUT_NAME, len(CANONICAL_6))], OUTPUT_NAME, graph_name=model_id,
        opset=OPSET, batch_dim="N",
    )  # fmt: skip
    from onnx import helper

    helper.set_model_props(graph, {"features": ",".join(CANONICAL_6)})
    return graph
