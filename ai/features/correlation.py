"""Feature-correlation audits: every feature column ranked by its correlation with a target.

Beside PLCC and SROCC each column gets its mutual information with the target (binned into
equal-count bins, in nats) and its permutation importance in a ridge fit of the target on
every ranked column (the rise of the mean squared error when that column alone is shuffled,
as a fraction of the target's variance), so a column that matters without being linear with
the target, or one whose signal another column already carries, shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ai.common.files import InputError, require_columns
from ai.features.tables import KEY_COLUMNS, PER_CLIP_HEAD
from ai.mos.mos_head import rankdata

RANK_BY = ("plcc", "srocc")
# Keys, labels and clip metadata: not features, so not ranked unless asked for by name.
NOT_FEATURES = frozenset(
    {*KEY_COLUMNS, *(name for name, _ in PER_CLIP_HEAD), "corpus", "frame_index", "vmaf"}
)


def feature_columns_of(table: pa.Table, target: str) -> list[str]:
    """The table's numeric columns that are neither the target nor keys or clip metadata."""
    return [
        field.name
        for field in table.schema
        if field.name != target
        and field.name not in NOT_FEATURES
        and (pa.types.is_floating(field.type) or pa.types.is_integer(field.type))
    ]


def column_values(path: Path, table: pa.Table, column: str) -> np.ndarray:
    """A column as float64; a null or non-finite cell is an input error naming its row."""
    values: np.ndarray = table.column(column).to_numpy(zero_copy_only=False).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise InputError(f"{path}: row {int(bad[0])} has no finite value in column {column}")
    return values


def quantile_bins(values: np.ndarray, bins: int) -> np.ndarray:
    """Each value's bin among ``bins`` of about equal count; equal values share their bin."""
    ranks = rankdata(values)
    return np.minimum(((ranks - 1.0) * bins / len(values)).astype(np.int64), bins - 1)


def mutual_information(a: np.ndarray, b: np.ndarray, bins: int) -> float:
    """I(a; b) in nats, of ``a`` and ``b`` each cut into ``bins`` equal-count bins."""
    joint = np.zeros((bins, bins))
    np.add.at(joint, (quantile_bins(a, bins), quantile_bins(b, bins)), 1.0)
    joint /= joint.sum()
    pa_, pb = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return round(float(np.sum(joint[nz] * np.log(joint[nz] / (pa_ @ pb)[nz]))), 6) + 0.0


def permutation_importance(
    x: np.ndarray, y: np.ndarray, *, alpha: float, repeats: int, seed: int
) -> list[float]:
    """Per column of ``x``: the mean rise of a ridge fit's MSE over ``repeats`` shuffles of
    that column (``numpy.random.default_rng(seed)``), divided by the variance of ``y``."""
    mean, std = x.mean(axis=0), x.std(axis=0)
    std = np.where(std < 1e-12, 1.0, std)
    z = (x - mean) / std
    centred = y - y.mean()
    coef = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ centred)
    base = float(np.mean((z @ coef - centred) ** 2))
    variance = float(np.var(y))
    rng = np.random.default_rng(seed)
    out = []
    for j in range(z.shape[1]):
        rises = []
        for _ in range(repeats):
            shuffled = z.copy()
            shuffled[:, j] = z[rng.permutation(len(z)), j]
            rises.append(float(np.mean((shuffled @ coef - centred) ** 2)) - base)
        out.append(round(float(np.mean(rises)) / variance, 6) + 0.0)  # never -0.0
    return out


@dataclass(frozen=True)
class Extras:
    """How the mutual information and the permutation importance are measured."""

    mi_bins: int = 10
    ridge_alpha: float = 1.0
    importance_repeats: int = 5
    importance_seed: int = 0


def correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson's r, or None when either side is constant (it has no correlation)."""
    if np.std(a) == 0 or np.std(b) == 0:
        return None
    return round(float(np.corrcoef(a, b)[0, 1]), 6)


@dataclass(frozen=True)
class Ranking:
    target: str
    rows: int
    rank_by: str
    ranking: list[dict[str, Any]]  # best first
    constant_columns: list[str]
    top_k: list[str]
    redundant_pairs: list[dict[str, Any]]

    def top_scores(self) -> list[float]:
        by_name = {entry["column"]: abs(entry[self.rank_by]) for entry in self.ranking}
        return [by_name[name] for name in self.top_k]


def rank(
    path: Path,
    table: pa.Table,
    target: str,
    columns: Sequence[str] | None,
    rank_by: str,
    top_k: int,
    redundancy: float,
    extras: Extras = Extras(),
) -> Ranking:
    """PLCC, SROCC, mutual information and permutation importance of each column with
    ``target``, ranked by ``|rank_by|`` (ties by name)."""
    require_columns(path, table, [target, *(columns or ())])
    chosen = list(columns) if columns else feature_columns_of(table, target)
    if not chosen:
        raise InputError(f"{path}: no numeric feature columns to rank against {target}")
    if table.num_rows < 3:
        raise InputError(f"{path}: {table.num_rows} rows: too few to correlate")
    y = column_values(path, table, target)
    y_ranks = rankdata(y)
    values = {name: column_values(path, table, name) for name in chosen}
    scored: list[dict[str, Any]] = []
    constant: list[str] = []
    for name in chosen:
        r = correlation(values[name], y)
        if r is None:
            constant.append(name)
            continue
        scored.append(
            {"column": name, "plcc": r, "srocc": correlation(rankdata(values[name]), y_ranks)}
        )
    if not scored:
        raise InputError(f"{path}: {target} or every column is constant: nothing to rank")
    x = np.column_stack([values[entry["column"]] for entry in scored])
    importance = permutation_importance(
        x,
        y,
        alpha=extras.ridge_alpha,
        repeats=extras.importance_repeats,
        seed=extras.importance_seed,
    )
    for entry, weight in zip(scored, importance, strict=True):
        entry["mutual_information"] = mutual_information(values[entry["column"]], y, extras.mi_bins)
        entry["permutation_importance"] = weight
    scored.sort(key=lambda e: (-abs(e[rank_by]), e["column"]))
    ranking: list[dict[str, Any]] = [
        {"rank": i, **entry} for i, entry in enumerate(scored, start=1)
    ]
    top = [entry["column"] for entry in ranking[:top_k]]
    pairs = []
    for i, a in enumerate(top):
        for b in top[i + 1 :]:
            r = correlation(values[a], values[b])
            if r is not None and abs(r) >= redundancy:
                pairs.append({"a": a, "b": b, "plcc": r})
    return Ranking(target, table.num_rows, rank_by, ranking, constant, top, pairs)
