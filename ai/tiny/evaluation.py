"""Scoring the tiny models: PLCC / SROCC / RMSE, leave-one-source-out folds, their summaries."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ai.common.files import InputError
from ai.mos.mos_head import plcc, rmse, srocc
from ai.tiny.data import Frames
from ai.tiny.models import predict, train

METRICS = ("plcc", "srocc", "rmse")


def scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {
        "plcc": round(plcc(predicted, truth), 6),
        "srocc": round(srocc(predicted, truth), 6),
        "rmse": round(rmse(predicted, truth), 6),
    }


def fold_scores(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float | int]:
    return {"n": len(truth), **scores(predicted, truth)}


def _std(values: Sequence[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def aggregate(per_fold: Mapping[str, Mapping[str, float | int]]) -> dict[str, float]:
    """``mean_*`` and ``std_*`` (ddof 1; 0 for a single fold) of each metric over the folds."""
    out: dict[str, float] = {}
    for prefix, reduce in (("mean", lambda v: float(np.mean(v))), ("std", _std)):
        for metric in METRICS:
            out[f"{prefix}_{metric}"] = round(
                reduce([float(f[metric]) for f in per_fold.values()]), 6
            )
    return out


def loso(
    frames: Frames,
    arch: str,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    folds: Sequence[str] | None = None,
    held_out_of: Sequence[str] | None = None,
) -> dict[str, dict[str, float | int]]:
    """Per held-out source (sorted), a model trained on the other rows scored on its rows.

    ``held_out_of`` names each row's fold key when it is not its ``source`` (v5 holds out only
    Netflix sources: other corpora's rows carry no key and always train).
    """
    keys = list(held_out_of if held_out_of is not None else frames.source or [])
    if len(keys) != len(frames):
        raise InputError("leave-one-source-out needs a source for every row")
    chosen = sorted(set(keys) - {""}) if folds is None else list(folds)
    if len(chosen) < 2:
        raise InputError(f"{len(chosen)} source(s): leave-one-source-out needs at least 2")
    labels = np.array(keys, dtype=object)
    per_fold: dict[str, dict[str, float | int]] = {}
    for source in chosen:
        test = labels == source
        model = train(
            arch, frames.x[~test], frames.y[~test],
            epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
        )  # fmt: skip
        per_fold[source] = fold_scores(predict(model, frames.x[test]), frames.y[test])
    return per_fold
