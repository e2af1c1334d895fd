"""The FR regressor v2 ensemble: a ridge VMAF regressor per seed, judged leave-one-source-out.

A member is fit on a seeded bag of the training frames (``bag_fraction`` of them), so seeds
differ as deep-ensemble members do. A frame's source is the content of its pair key (the part
before ``__``): a fold holds out every frame of one source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pyarrow as pa

from ai.common.files import InputError, read_json_object, require_columns
from ai.features.tables import content_name
from ai.fr.ensemble import HOLD, PROMOTE
from ai.mos import onnx_head
from ai.mos.mos_head import Head, fit, plcc, rmse

VMAF_RANGE = (0.0, 100.0)
KIND = "fr_regressor_v2"
ENSEMBLE_ID = "fr_regressor_v2_ensemble_v1"


@dataclass(frozen=True)
class Frames:
    sources: list[str]
    x: np.ndarray  # (frames, features)
    y: np.ndarray  # per-frame VMAF


def load_frames(path: Path, table: pa.Table, features: Sequence[str]) -> Frames:
    """The features and VMAF of every frame of a per-frame pair table; nulls are errors."""
    require_columns(path, table, ["key", *features, "vmaf"])
    columns = []
    for name in [*features, "vmaf"]:
        values = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            key = table.column("key")[int(bad[0])].as_py()
            raise InputError(f"{path}: pair {key!r} has no finite {name}")
        columns.append(values)
    sources = [content_name(k) for k in table.column("key").to_pylist()]
    return Frames(sources, np.stack(columns[:-1], axis=1), columns[-1])


def fit_member(x: np.ndarray, y: np.ndarray, seed: int, ridge: float, bag: float) -> Head:
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(y), size=max(2, round(bag * len(y))), replace=False))
    return fit(x[rows], y[rows], ridge)


def predict(head: Head, x: np.ndarray) -> np.ndarray:
    z = (x - head.mean) / head.std
    out: np.ndarray = np.clip(z @ head.weights + head.bias, *VMAF_RANGE)
    return out


def loso(
    frames: Frames, seed: int, ridge: float, bag: float
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """One fold per source: fit on the others, PLCC and RMSE on the held-out source's frames."""
    sources = sorted(set(frames.sources))
    if len(sources) < 3:
        raise InputError(f"leave-one-source-out needs at least 3 sources, found {len(sources)}")
    labels = np.array(frames.sources)
    folds: list[dict[str, Any]] = []
    for source in sources:
        test = labels == source
        if test.sum() < 3:
            raise InputError(f"source {source!r} has {int(test.sum())} frames: too few to score")
        head = fit_member(frames.x[~test], frames.y[~test], seed, ridge, bag)
        predicted = predict(head, frames.x[test])
        folds.append(
            {
                "source": source,
                "frames": int(test.sum()),
                "plcc": round(plcc(predicted, frames.y[test]), 6),
                "rmse": round(rmse(predicted, frames.y[test]), 6),
            }
        )
    plccs: list[float] = [f["plcc"] for f in folds]
    summary = {
        "mean_plcc": round(float(np.mean(plccs)), 6),
        "min_plcc": min(plccs),
        "mean_rmse": round(float(np.mean([f["rmse"] for f in folds])), 6),
    }
    return folds, summary


@dataclass(frozen=True)
class Verdict:
    verdict: str
    seeds: list[int]
    sha256: str
    corpus_sha256: str


def read_verdict(path: Path, corpus: Path) -> Verdict:
    """A seed gate verdict (PROMOTE or HOLD), checked to have judged ``corpus``."""
    document = read_json_object(path)
    verdict, seeds = document.get("verdict"), document.get("seeds")
    if verdict not in (PROMOTE, HOLD) or not isinstance(seeds, list) or not seeds:
        raise InputError(
            f"{path}: not a seed gate verdict (no verdict PROMOTE or HOLD, or no seeds)"
        )
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise InputError(f"{path}: seeds must be whole numbers")
    try:
        actual = hashlib.sha256(corpus.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise InputError(f"{corpus}: no such file") from None
    if document.get("corpus_sha256") != actual:
        raise InputError(
            f"{path}: the verdict judged another corpus than {corpus} "
            f"({document.get('corpus_sha256')} is not {actual})"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Verdict(verdict, seeds, digest, actual)


def member_sidecar(
    model_id: str,
    seed: int,
    onnx_path: Path,
    data: bytes,
    model: onnx.ModelProto,
    head: Head,
    features: Sequence[str],
) -> dict[str, Any]:
    """The model sidecar of one member, in the fields every ONNX sidecar carries."""
    sidecar = onnx_head.model_sidecar(model_id, KIND, onnx_path.name, data, model, head, features)
    return {**sidecar, "seed": seed}
