"""The MOS head: a ridge regression on 11 standardised inputs, k-fold evaluation and its gate.

KonViD and CHUG HDR share this trainer; CHUG MOS arrives on 0-100 and is mapped onto 1-5.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ai.common.files import InputError
from ai.features.libvmaf import CANONICAL_6
from ai.features.tables import content_name, split_fraction, split_of

EXTRAS = (
    "saliency_mean",
    "saliency_var",
    "shot_count_norm",
    "shot_mean_len_norm",
    "shot_cut_density",
)
INPUTS: tuple[str, ...] = (*CANONICAL_6, *EXTRAS)
MOS_RANGE = (1.0, 5.0)
MOS_SCALES = ("1-5", "0-100")


@dataclass(frozen=True)
class Gate:
    min_plcc: float
    min_srocc: float | None = None
    max_rmse: float | None = None
    max_plcc_spread: float | None = None

    def check(self, metrics: dict[str, float]) -> dict[str, bool]:
        checks = {"plcc": metrics["mean_plcc"] >= self.min_plcc}
        if self.min_srocc is not None:
            checks["srocc"] = metrics["mean_srocc"] >= self.min_srocc
        if self.max_rmse is not None:
            checks["rmse"] = metrics["mean_rmse"] <= self.max_rmse
        if self.max_plcc_spread is not None:
            checks["plcc_spread"] = metrics["plcc_spread"] <= self.max_plcc_spread
        return checks

    def as_record(self) -> dict[str, float | None]:
        return {
            "min_plcc": self.min_plcc,
            "min_srocc": self.min_srocc,
            "max_rmse": self.max_rmse,
            "max_plcc_spread": self.max_plcc_spread,
        }


GATES = {
    "real": Gate(min_plcc=0.85, min_srocc=0.82, max_rmse=0.45, max_plcc_spread=0.005),
    "synthetic": Gate(min_plcc=0.75),
}


# -- data --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    clips: list[str]
    x: np.ndarray  # (rows, 11)
    y: np.ndarray  # MOS on 1-5
    sources: dict[str, str]  # input -> the column it came from, or "zero"


def to_acr(mos: np.ndarray, scale: str) -> np.ndarray:
    return 1.0 + 4.0 * mos / 100.0 if scale == "0-100" else mos


def load_dataset(path: Path, table: pa.Table, mos_scale: str) -> Dataset:
    """The 11 inputs and the MOS of every row; a null or non-finite cell is an error."""
    if "clip_name" not in table.column_names or "mos" not in table.column_names:
        raise InputError(f"{path}: a MOS head table needs clip_name and mos columns")
    columns, sources = [], {}
    for name in INPUTS:
        column = next((c for c in (name, f"{name}_mean") if c in table.column_names), None)
        if column is None and name in CANONICAL_6:
            raise InputError(f"{path}: missing feature column {name}_mean")
        sources[name] = column or "zero"
        columns.append(_numeric(path, table, column) if column else np.zeros(table.num_rows))
    y = to_acr(_numeric(path, table, "mos"), mos_scale)
    low, high = MOS_RANGE
    off = np.flatnonzero((y < low - 1e-9) | (y > high + 1e-9))
    if off.size:
        clip = table.column("clip_name")[int(off[0])].as_py()
        raise InputError(
            f"{path}: clip {clip!r}: MOS {y[off[0]]:.4g} is outside 1-5 "
            f"(is --mos-scale {mos_scale} right?)"
        )
    return Dataset(table.column("clip_name").to_pylist(), np.stack(columns, axis=1), y, sources)


def _numeric(path: Path, table: pa.Table, column: str) -> np.ndarray:
    values: np.ndarray = table.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        clip = table.column("clip_name")[int(bad[0])].as_py()
        raise InputError(f"{path}: clip {clip!r} has no finite value in column {column}")
    return values


def holdout_mask(clips: list[str], split_seed: int) -> np.ndarray:
    """True for rows of the held-out ``test`` split."""
    return np.array([split_of(split_seed, clip) == "test" for clip in clips], dtype=bool)


def fold_of(clips: list[str], seed: int, folds: int) -> np.ndarray:
    """A fold per row by a hash of (seed, content), so a content is never on both sides."""
    return np.array(
        [min(folds - 1, int(split_fraction(seed, content_name(c)) * folds)) for c in clips]
    )


# -- the model ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    mean: np.ndarray
    std: np.ndarray
    weights: np.ndarray
    bias: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.std
        predicted: np.ndarray = np.clip(z @ self.weights + self.bias, *MOS_RANGE)
        return predicted


def fit(x: np.ndarray, y: np.ndarray, ridge: float) -> Head:
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)  # a constant input contributes nothing
    z = (x - mean) / std
    bias = float(y.mean())
    gram = z.T @ z + ridge * np.eye(z.shape[1])
    weights = np.linalg.solve(gram, z.T @ (y - bias))
    return Head(mean, std, weights, bias)


def rankdata(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def plcc(a: np.ndarray, b: np.ndarray) -> float:
    if np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def srocc(a: np.ndarray, b: np.ndarray) -> float:
    return plcc(rankdata(a), rankdata(b))


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def cross_validate(
    data: Dataset, rows: np.ndarray, seed: int, folds: int, ridge: float
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """k-fold PLCC / SROCC / RMSE over ``rows``; each fold needs at least 3 rows to score."""
    clips = [data.clips[i] for i in rows]
    assignment = fold_of(clips, seed, folds)
    x, y = data.x[rows], data.y[rows]
    results = []
    for fold in range(folds):
        test = assignment == fold
        if test.sum() < 3 or (~test).sum() < 3:
            raise InputError(
                f"{folds} folds over {len(clips)} rows leave fold {fold} with "
                f"{int(test.sum())} rows: too few to score; use fewer folds"
            )
        predicted = fit(x[~test], y[~test], ridge).predict(x[test])
        results.append(
            {
                "fold": fold,
                "rows": int(test.sum()),
                "plcc": round(plcc(predicted, y[test]), 6),
                "srocc": round(srocc(predicted, y[test]), 6),
                "rmse": round(rmse(predicted, y[test]), 6),
            }
        )
    plccs = [r["plcc"] for r in results]
    summary = {
        "mean_plcc": round(float(np.mean(plccs)), 6),
        "mean_srocc": round(float(np.mean([r["srocc"] for r in results])), 6),
        "mean_rmse": round(float(np.mean([r["rmse"] for r in results])), 6),
        "plcc_spread": round(max(plccs) - min(plccs), 6),
    }
    return results, summary


# -- checkpoints -------------------------------------------------------------------------------


def checkpoint_bytes(head: Head, inputs: tuple[str, ...] = INPUTS) -> bytes:
    """An ``.npz`` whose bytes depend only on the arrays: fixed entry times, fixed order."""
    arrays = {
        "features": np.array(inputs),
        "mean": head.mean,
        "std": head.std,
        "weights": head.weights,
        "bias": np.array([head.bias]),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            entry = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            payload = io.BytesIO()
            np.lib.format.write_array(payload, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(entry, payload.getvalue())
    return buffer.getvalue()


def load_checkpoint(path: Path) -> tuple[Head, tuple[str, ...]]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            features = tuple(str(f) for f in archive["features"])
            head = Head(
                archive["mean"], archive["std"], archive["weights"], float(archive["bias"][0])
            )
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as err:
        raise InputError(f"{path}: not a MOS head checkpoint: {err}") from None
    n = len(features)
    if not (head.mean.shape == head.std.shape == head.weights.shape == (n,)):
        raise InputError(f"{path}: checkpoint arrays do not match its {n} features")
    return head, features


def require_hdr(path: Path, table: pa.Table) -> None:
    """Every row marked HDR; an unknown (null) flag means the table was never enriched."""
    if "is_hdr" not in table.column_names:
        raise InputError(f"{path}: no is_hdr column")
    for clip, flag in zip(
        table.column("clip_name").to_pylist(), table.column("is_hdr").to_pylist(), strict=True
    ):
        if flag is None:
            raise InputError(
                f"{path}: clip {clip!r} has no is_hdr: enrich the table with clip "
                "metadata first, or pass --allow-sdr"
            )
        if not flag:
            raise InputError(f"{path}: clip {clip!r} is not HDR (pass --allow-sdr to accept it)")
