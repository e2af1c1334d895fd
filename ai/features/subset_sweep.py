"""Phase-3 subset sweeps: k-fold PLCC of a ridge regressor on each named feature subset.

Folds are content folds (a hash of seed and content, as the MOS head's), so a content is never
on both sides; the held-out ``test`` split stays out of model selection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ai.common.files import InputError
from ai.features.correlation import column_values
from ai.features.tables import KEY_COLUMNS
from ai.mos.mos_head import fold_of, holdout_mask, plcc, rmse


@dataclass(frozen=True)
class Subset:
    name: str
    features: tuple[str, ...]


def parse_subset(text: str) -> Subset:
    """``NAME=feature,feature,...``."""
    name, sep, rest = text.partition("=")
    features = tuple(f.strip() for f in rest.split(",") if f.strip())
    if not sep or not name.strip() or not features or len(set(features)) != len(features):
        raise ValueError(f"{text!r}: expected NAME=feature,feature,... (distinct features)")
    return Subset(name.strip(), features)


def resolve(path: Path, table: pa.Table, subset: Subset) -> list[str]:
    """Each feature's column: the name itself, else ``<name>_mean``."""
    columns = []
    for feature in subset.features:
        column = next((c for c in (feature, f"{feature}_mean") if c in table.column_names), None)
        if column is None:
            raise InputError(
                f"{path}: subset {subset.name!r}: no column {feature} or {feature}_mean"
            )
        columns.append(column)
    return columns


def key_column(path: Path, table: pa.Table) -> str:
    found = next((c for c in KEY_COLUMNS if c in table.column_names), None)
    if found is None:
        raise InputError(f"{path}: no clip key column (one of {', '.join(KEY_COLUMNS)})")
    return found


def predict(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, ridge: float, standardize: bool
) -> np.ndarray:
    """Ridge with an unpenalised intercept; ``standardize`` also scales inputs to unit variance."""
    mean = x_train.mean(axis=0)
    scale = x_train.std(axis=0) if standardize else np.ones(x_train.shape[1])
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (x_train - mean) / scale
    bias = float(y_train.mean())
    try:
        weights = np.linalg.solve(z.T @ z + ridge * np.eye(z.shape[1]), z.T @ (y_train - bias))
    except np.linalg.LinAlgError:
        raise InputError("the subset's inputs are collinear: use a --ridge above 0") from None
    out: np.ndarray = ((x_test - mean) / scale) @ weights + bias
    return out


@dataclass(frozen=True)
class Sweep:
    rows: int
    held_out: int
    results: list[dict[str, Any]]  # one per subset, in the order given
    best: str


def sweep(
    path: Path,
    table: pa.Table,
    subsets: Sequence[Subset],
    target: str,
    seeds: Sequence[int],
    folds: int,
    ridge: float,
    standardize: bool,
    split_seed: int,
) -> Sweep:
    """Per subset and seed, every fold's PLCC; a subset's mean PLCC is over all of them."""
    key = key_column(path, table)
    clips = [str(c) for c in table.column(key).to_pylist()]
    rows = np.flatnonzero(~holdout_mask(clips, split_seed))
    kept = [clips[i] for i in rows]
    y = column_values(path, table, target)[rows]
    results: list[dict[str, Any]] = []
    for subset in subsets:
        columns = resolve(path, table, subset)
        x = np.stack([column_values(path, table, c)[rows] for c in columns], axis=1)
        per_seed: dict[str, list[float]] = {}
        errors = []
        for seed in seeds:
            assignment = fold_of(kept, seed, folds)
            fold_plccs = []
            for fold in range(folds):
                test = assignment == fold
                if test.sum() < 3 or (~test).sum() < 3:
                    raise InputError(
                        f"{folds} folds over {len(kept)} rows leave fold {fold} of seed {seed} "
                        f"with {int(test.sum())} rows: too few to score; use fewer folds"
                    )
                predicted = predict(x[~test], y[~test], x[test], ridge, standardize)
                fold_plccs.append(round(plcc(predicted, y[test]), 6))
                errors.append(rmse(predicted, y[test]))
            per_seed[str(seed)] = fold_plccs
        every = [p for fold_plccs in per_seed.values() for p in fold_plccs]
        results.append(
            {
                "subset": subset.name,
                "features": list(subset.features),
                "columns": columns,
                "fold_plcc": per_seed,
                "mean_plcc": round(float(np.mean(every)), 6),
                "min_plcc": min(every),
                "mean_rmse": round(float(np.mean(errors)), 6),
            }
        )
    best = max(results, key=lambda r: r["mean_plcc"])["subset"]  # the first of equals wins
    return Sweep(len(kept), len(clips) - len(kept), results, best)
