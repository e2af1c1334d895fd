"""The FR regressor (canonical features, and optionally a codec block, to VMAF) and what its
trainers share: the codec vocabularies and blocks, metrics, leave-one-source-out, export.

The fork's ``FRRegressor`` is ``depth`` times [Linear → GELU → Dropout] then Linear to one output,
the codec block concatenated to the features before the first layer. Here it is the same
network in numpy (:class:`ai.common.mlp.MLP` with GELU), trained without dropout: numpy
training has no dropout layer, so the weights differ from a torch run even at equal seeds.
ONNX models take *standardised* features (their sidecar's ``feature_mean``/``feature_std``
say how) and the raw codec block, as the fork's do.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.cli import add_manifest_out
from ai.common.files import finite_or_none, write_json
from ai.common.mlp import MLP, to_onnx
from ai.common.onnx_checks import check_export
from ai.features.libvmaf import CANONICAL_6
from ai.release.registry import read_or_new
from provenance import atomic_write

OPSET = 17
KIND = "fr"
HIDDEN, DEPTH, DROPOUT = 64, 2, 0.1  # the fork's FRRegressor defaults (dropout not applied)

# -- v1 feature subsets --------------------------------------------------------------------------

SUBSETS: dict[str, tuple[str, ...]] = {
    "canonical6": CANONICAL_6,
    "A": (*CANONICAL_6, "ssimulacra2"),
    "B": ("adm2", "adm_scale3", "vif_scale2", "motion2", "ssimulacra2", "psnr_hvs", "float_ssim"),
}

# -- codec vocabularies --------------------------------------------------------------------------

ENCODER_VOCAB_V2: tuple[str, ...] = (
    "libx264", "libx265", "libsvtav1", "libvvenc", "libvpx-vp9", "h264_nvenc", "hevc_nvenc",
    "av1_nvenc", "h264_qsv", "hevc_qsv", "av1_qsv", "unknown",
)  # fmt: skip
ENCODER_ALIASES_V2 = {
    "h264": "libx264",
    "x264": "libx264",
    "hevc": "libx265",
    "x265": "libx265",
    "av1": "libsvtav1",
    "vvc": "libvvenc",
    "vp9": "libvpx-vp9",
}
ENCODER_VOCAB_V3: tuple[str, ...] = (
    "libx264", "libaom-av1", "libx265", "h264_nvenc", "hevc_nvenc", "av1_nvenc", "h264_amf",
    "hevc_amf", "av1_amf", "h264_qsv", "hevc_qsv", "av1_qsv", "libvvenc", "libsvtav1",
    "h264_videotoolbox", "hevc_videotoolbox",
)  # fmt: skip
CODEC_VOCAB_V1: tuple[str, ...] = ("x264", "x265", "libsvtav1", "libvvenc", "libvpx-vp9", "unknown")
CODEC_ALIASES_V1 = {
    "h264": "x264",
    "avc": "x264",
    "hevc": "x265",
    "h265": "x265",
    "av1": "libsvtav1",
    "vp9": "libvpx-vp9",
    "vvc": "libvvenc",
    "h266": "libvvenc",
}

_X26X = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
         "veryslow", "placebo")  # fmt: skip
_PRESETS: dict[str, dict[str, int]] = {
    "x26x": {name: i for i, name in enumerate(_X26X)},
    "vvenc": {"faster": 1, "fast": 3, "medium": 5, "slow": 7, "slower": 8},
    "vp9": {"realtime": 0, "good": 5, "best": 9},
    "nvenc": {"p1": 0, "p2": 2, "p3": 3, "p4": 5, "p5": 6, "p6": 7, "p7": 9},
    "qsv": {"veryfast": 2, "faster": 3, "fast": 4, "medium": 5, "slow": 6, "slower": 7,
            "veryslow": 8},
}  # fmt: skip
PRESET_DEFAULT = 5


def encoder_v2(name: Any) -> str:
    """An encoder name in vocabulary v2: aliases resolved, anything else ``unknown``."""
    if not isinstance(name, str) or not name.strip():
        return "unknown"
    key = name.strip().lower()
    key = ENCODER_ALIASES_V2.get(key, key)
    return key if key in ENCODER_VOCAB_V2 else "unknown"


def preset_ordinal(encoder: str, preset: Any) -> int:
    """The preset's place on the encoder's slow-to-fast scale, 0 to 9 (5 when not known)."""
    if preset is None:
        return PRESET_DEFAULT
    text = str(preset).strip().lower()
    if encoder == "libsvtav1":
        return min(int(text), 9) if text.isdigit() else PRESET_DEFAULT
    family = (
        "x26x"
        if encoder in ("libx264", "libx265")
        else "vvenc"
        if encoder == "libvvenc"
        else "vp9"
        if encoder == "libvpx-vp9"
        else "nvenc"
        if encoder.endswith("_nvenc")
        else "qsv"
        if encoder.endswith("_qsv")
        else None
    )
    return _PRESETS[family].get(text, PRESET_DEFAULT) if family else PRESET_DEFAULT


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def codec_block_v2(encoder: Any, preset: Any, crf: Any) -> list[float]:
    """14 numbers: one-hot over vocabulary v2, preset ordinal / 9, CRF / 63 (CRF 23 if absent)."""
    name = encoder_v2(encoder)
    onehot = [1.0 if v == name else 0.0 for v in ENCODER_VOCAB_V2]
    value = _number(crf)
    return [*onehot, preset_ordinal(name, preset) / 9.0, (23.0 if value is None else value) / 63.0]


def codec_layout(vocab: Sequence[str]) -> list[str]:
    return [*(f"encoder_onehot[{name}]" for name in vocab), "preset_norm", "crf_norm"]


def onehot_v3(encoder: Any) -> list[float]:
    """One-hot over vocabulary v3; an encoder it lacks takes slot 0 (libx264): v3 has no
    ``unknown`` slot."""
    key = encoder.strip().lower() if isinstance(encoder, str) else ""
    slot = ENCODER_VOCAB_V3.index(key) if key in ENCODER_VOCAB_V3 else 0
    return [1.0 if i == slot else 0.0 for i in range(len(ENCODER_VOCAB_V3))]


def codec_v1(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        return "unknown"
    key = name.strip().lower()
    key = CODEC_ALIASES_V1.get(key, key)
    return key if key in CODEC_VOCAB_V1 else "unknown"


def codec_onehot_v1(names: Iterable[Any]) -> np.ndarray:
    slots = [CODEC_VOCAB_V1.index(codec_v1(n)) for n in names]
    out = np.zeros((len(slots), len(CODEC_VOCAB_V1)))
    out[np.arange(len(slots)), slots] = 1.0
    return out


# -- metrics -------------------------------------------------------------------------------------


def plcc(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson; NaN with fewer than two points or no variance."""
    if len(a) < 2 or np.std(a) == 0 or np.std(b) == 0:
        return math.nan
    return float(np.corrcoef(a, b)[0, 1])


def srocc(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson of double-argsort ranks (ties not averaged), as the fork computes it."""
    return plcc(np.argsort(np.argsort(a)).astype(float), np.argsort(np.argsort(b)).astype(float))


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2))) if len(a) else math.nan


def scores(predicted: np.ndarray, target: np.ndarray) -> dict[str, float | None]:
    return {
        "plcc": r6(plcc(predicted, target)),
        "srocc": r6(srocc(predicted, target)),
        "rmse": r6(rmse(predicted, target)),
    }


def r6(value: float) -> float | None:
    """Six decimals, and null for a value JSON cannot hold (NaN)."""
    shown = finite_or_none(value)
    return None if shown is None else round(shown, 6)


# -- the model -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Training:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    seed: int
    hidden: int = HIDDEN
    depth: int = DEPTH
    decoupled_decay: bool = True  # AdamW; v3 trains with Adam (coupled L2)


@dataclass(frozen=True)
class Fitted:
    model: MLP  # takes standardised features then the codec block
    mean: np.ndarray
    std: np.ndarray
    history: list[float]

    def predict(self, x: np.ndarray, codec: np.ndarray | None = None) -> np.ndarray:
        return self.model.predict(joined(standardise(x, self.mean, self.std), codec))[:, 0]


def zscore_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(std < 1e-8, 1.0, std)


def standardise(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    return np.asarray((x - mean) / std)


def joined(x: np.ndarray, codec: np.ndarray | None) -> np.ndarray:
    return x if codec is None else np.concatenate([x, codec], axis=1)


def fr_regressor(n_features: int, n_codec: int, training: Training, seed: int) -> MLP:
    """``depth`` times [Linear → GELU] then Linear(hidden, 1), over features + codec block."""
    sizes = [n_features + n_codec, *([training.hidden] * training.depth), 1]
    return MLP.create(sizes, seed, "gelu")


def train(
    x: np.ndarray,
    y: np.ndarray,
    codec: np.ndarray | None,
    training: Training,
    *,
    seed: int | None = None,
    epochs: int | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    standardised: bool = False,
) -> Fitted:
    """Standardise the features on these rows (unless the caller did), then fit a fresh
    regressor on them."""
    seed = training.seed if seed is None else seed
    mean, std = (np.zeros(x.shape[1]), np.ones(x.shape[1])) if standardised else zscore_stats(x)
    model = fr_regressor(x.shape[1], 0 if codec is None else codec.shape[1], training, seed)
    history = model.fit(
        joined(standardise(x, mean, std), codec),
        y,
        epochs=training.epochs if epochs is None else epochs,
        batch_size=training.batch_size,
        lr=training.lr,
        seed=seed,
        weight_decay=training.weight_decay,
        decoupled_decay=training.decoupled_decay,
        on_epoch=on_epoch,
    )
    return Fitted(model, mean, std, history)


def loso(
    sources: Sequence[str],
    x: np.ndarray,
    y: np.ndarray,
    codec: np.ndarray | None,
    training: Training,
) -> list[tuple[str, int, int, np.ndarray, np.ndarray]]:
    """One fold per source (sorted): ``(source, n_train, n_val, predicted, target)``; a fold
    with no training or no held-out rows is left out."""
    labels = np.asarray(sources)
    folds = []
    for source in sorted(set(sources)):
        held = labels == source
        if held.all() or not held.any():
            continue
        fitted = train(x[~held], y[~held], None if codec is None else codec[~held], training)
        predicted = fitted.predict(x[held], None if codec is None else codec[held])
        folds.append((source, int((~held).sum()), int(held.sum()), predicted, y[held]))
    return folds


def mean_std(values: Sequence[float | None]) -> tuple[float, float]:
    """Mean and sample deviation (ddof 1, 0 for one value) of the finite values."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return math.nan, math.nan
    return float(np.mean(finite)), float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0


# -- export --------------------------------------------------------------------------------------


def export(
    fitted: Fitted,
    inputs: Sequence[tuple[str, int]],
    output: str,
    graph_name: str,
    probe: Mapping[str, np.ndarray],
    atol: float = 1e-4,
) -> tuple[bytes, float]:
    """The ONNX bytes (opset 17, batch axis dynamic) after the checker, libvmaf's operator
    allowlist and CPU parity on ``probe`` (standardised features, raw codec block)."""
    model = to_onnx(fitted.model, inputs, output, graph_name=graph_name, opset=OPSET)
    feeds = {name: np.asarray(probe[name], dtype=np.float32) for name, _ in inputs}

    def reference(given: Mapping[str, np.ndarray]) -> np.ndarray:
        x = np.concatenate([np.asarray(given[n], dtype=np.float64) for n, _ in inputs], axis=1)
        return fitted.model.predict(x)[:, 0]

    return check_export(model, feeds, reference, atol)


def probe_rows(*arrays: np.ndarray, rows: int = 16) -> list[np.ndarray]:
    """A zero row (the fork's dummy) and the first ``rows`` real rows of each input."""
    return [np.concatenate([np.zeros((1, a.shape[1])), a[:rows]]) for a in arrays]


def sidecar_base(
    model_id: str,
    onnx_name: str,
    sha256: str,
    notes: str,
    inputs: Sequence[str],
    outputs: Sequence[str],
    fitted: Fitted,
    features: Sequence[str],
) -> dict[str, Any]:
    return {
        "id": model_id,
        "kind": KIND,
        "onnx": onnx_name,
        "opset": OPSET,
        "sha256": sha256,
        "notes": notes,
        "input_names": list(inputs),
        "output_names": list(outputs),
        "feature_order": list(features),
        "feature_mean": [round(float(v), 9) for v in fitted.mean],
        "feature_std": [round(float(v), 9) for v in fitted.std],
    }


def register_rows(
    registry: Path,
    rows: Sequence[Mapping[str, Any]],
    drop: Callable[[str], bool] = lambda _: False,
) -> None:
    """Replace the registry rows of ``rows``' ids (and of ids ``drop`` picks), in one write.

    Each row's ``onnx`` (and ``sidecar``, if given) is a path, written relative to the registry.
    """
    document = read_or_new(registry)
    base = registry.parent.resolve()
    entries = []
    for row in rows:
        entry = dict(row)
        for key in ("onnx", "sidecar"):
            if key in entry:
                entry[key] = Path(os.path.relpath(Path(entry[key]).resolve(), base)).as_posix()
        entries.append(entry)
    ids = {e["id"] for e in entries}
    kept = [
        m
        for m in document["models"]
        if not (isinstance(m, dict) and (m.get("id") in ids or drop(str(m.get("id")))))
    ]
    document["models"] = sorted([*kept, *entries], key=lambda m: str(m.get("id")))
    registry.parent.mkdir(parents=True, exist_ok=True)
    write_json(registry, document)


# -- what the trainers' command lines and shipping share ------------------------------------------

# What a trainer that ships one model writes besides its report.
SHIPPED = {"onnx": "out_onnx", "model_sidecar": "out_sidecar", "registry": "registry"}


def add_training_options(
    parser: argparse.ArgumentParser, epochs: int, batch_size: int, lr: float
) -> None:
    """--epochs, --batch-size, --lr (each version's defaults) and --weight-decay (1e-5)."""
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=batch_size)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--weight-decay", type=float, default=1e-5)


def add_ship_options(
    parser: argparse.ArgumentParser, model_id: str, no_export: str, metrics: bool = True
) -> None:
    """Where the model, its sidecar, registry row (and metrics) go; --no-export; --manifest-out."""
    parser.add_argument("--out-onnx", type=Path, default=Path(f"model/tiny/{model_id}.onnx"))
    parser.add_argument("--out-sidecar", type=Path, default=Path(f"model/tiny/{model_id}.json"))
    parser.add_argument("--registry", type=Path, default=Path("model/tiny/registry.json"))
    if metrics:
        parser.add_argument(
            "--metrics-out", type=Path, default=Path(f"runs/{model_id}_metrics.json")
        )
    parser.add_argument("--no-export", action="store_true", help=no_export)
    add_manifest_out(parser, "<metrics-out>" if metrics else "<out-onnx>")


def ship(
    args: argparse.Namespace,
    model_id: str,
    fitted: Fitted,
    inputs: Sequence[tuple[str, int]],
    probe: Mapping[str, np.ndarray],
    output: str,
    notes: str,
    features: Sequence[str],
    fields: Mapping[str, Any],
    row: Mapping[str, Any],
) -> None:
    """Export ``fitted`` (checked on ``probe``) to --out-onnx, write its sidecar (the common
    fields, then ``fields``) to --out-sidecar and its registry row (the sidecar's id, kind,
    opset, sha256 and notes, then ``row``) into --registry; raises ``InputError``."""
    data, _ = export(fitted, inputs, output, model_id, probe)
    atomic_write(args.out_onnx, data)
    sidecar = sidecar_base(
        model_id, args.out_onnx.name, hashlib.sha256(data).hexdigest(), notes,
        [name for name, _ in inputs], [output], fitted, features,
    )  # fmt: skip
    sidecar.update(fields)
    write_json(args.out_sidecar, sidecar)
    common = {k: sidecar[k] for k in ("id", "kind", "opset", "sha256", "notes")}
    register_rows(
        args.registry, [{**common, **row, "onnx": args.out_onnx, "sidecar": args.out_sidecar}]
    )
