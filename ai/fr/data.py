"""What the FR regressor trainers read: per-frame tables, encode-grid JSONL, codec parquets, and
the synthetic smoke rows each trainer makes when asked for ``--smoke``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ai.common.files import InputError, iter_jsonl, read_parquet, require_columns
from ai.features.libvmaf import CANONICAL_6
from ai.features.tables import content_name
from ai.fr.regressor import (
    CODEC_VOCAB_V1,
    codec_block_v2,
    codec_onehot_v1,
    onehot_v3,
)


@dataclass(frozen=True)
class Rows:
    sources: list[str]
    x: np.ndarray  # canonical features, raw
    y: np.ndarray  # VMAF
    codec: np.ndarray | None = None  # the codec block, raw
    extra: dict[str, Any] | None = None  # what normalising the block took (v3's CRF range)


def _float_column(path: Path, table: pa.Table, name: str) -> np.ndarray:
    values: np.ndarray = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
    if not np.isfinite(values).all():
        raise InputError(f"{path}: column {name} has missing or non-finite values")
    return values


def frame_table(path: Path, features: tuple[str, ...]) -> tuple[Rows, int]:
    """A per-frame feature table: its features, ``vmaf`` and each frame's ``source``.

    The source is the ``source`` column; a table without one (the pipeline's own per-frame
    tables) takes it from the content part of ``key`` (before ``__``). Also the number of
    distinct pairs (``key``s), or of rows when there is no key.
    """
    table = read_parquet(path)
    require_columns(path, table, [*features, "vmaf"])
    if "source" in table.column_names:
        sources = [str(s) for s in table.column("source").to_pylist()]
    elif "key" in table.column_names:
        sources = [content_name(str(k)) for k in table.column("key").to_pylist()]
    else:
        raise InputError(f"{path}: missing column source (or a key to take it from)")
    if not table.num_rows:
        raise InputError(f"{path}: no rows")
    x = np.stack([_float_column(path, table, f) for f in features], axis=1)
    pairs = len(set(table.column("key").to_pylist())) if "key" in table.column_names else len(x)
    return Rows(sources, x, _float_column(path, table, "vmaf")), pairs


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _row_features(row: dict[str, Any]) -> list[float]:
    """Canonical-6 from ``<feature>_mean``; if none is there, from ``per_frame_features``
    (a number, or a list averaged); a feature found nowhere is 0."""
    found = [_finite(row.get(f"{name}_mean")) for name in CANONICAL_6]
    if all(v is None for v in found):
        frames = row.get("per_frame_features")
        if isinstance(frames, dict):
            for i, name in enumerate(CANONICAL_6):
                value = frames.get(name)
                if isinstance(value, list):
                    numbers = [v for v in map(_finite, value) if v is not None]
                    found[i] = float(np.mean(numbers)) if numbers else None
                else:
                    found[i] = _finite(value)
    return [0.0 if v is None else v for v in found]


def grid_rows_v2(path: Path) -> Rows:
    """Encode-grid JSONL rows as v2 reads them: canonical-6, the 14-wide codec block and
    ``vmaf_score`` (0 when absent)."""
    sources, x, y, codec = [], [], [], []
    for _, row in iter_jsonl(path):
        sources.append(str(row.get("src", "")))
        x.append(_row_features(row))
        y.append(_finite(row.get("vmaf_score")) or 0.0)
        codec.append(codec_block_v2(row.get("encoder"), row.get("preset"), row.get("crf")))
    if not x:
        raise InputError(f"{path}: no rows")
    return Rows(sources, np.array(x), np.array(y), np.array(codec))


def smoke_rows_v2(seed: int) -> Rows:
    """100 synthetic rows over the five software encoders; VMAF falls with CRF."""
    rng = np.random.default_rng(seed)
    encoders = ("libx264", "libx265", "libsvtav1", "libvvenc", "libvpx-vp9")
    n = 100
    crf = rng.integers(18, 45, n)
    enc = np.arange(n) % len(encoders)
    y = np.clip(95 - 1.7 * (crf - 18) - 1.5 * enc + rng.normal(0, 1.5, n), 0, 100)
    quality = (y / 100.0)[:, None]
    x = 0.3 + 0.6 * quality + rng.normal(0, 0.02, (n, len(CANONICAL_6)))
    codec = np.array(
        [codec_block_v2(encoders[e], "medium", int(c)) for e, c in zip(enc, crf, strict=True)]
    )
    return Rows([f"smoke_{i % 5}" for i in range(n)], x, y, codec)


# -- v3: two shapes of JSONL, the 18-wide block ------------------------------------------------

SHAPE_A = (*(f"{f}_mean" for f in CANONICAL_6), "vmaf_score", "src", "encoder", "crf")
SHAPE_B = (*CANONICAL_6, "vmaf", "src", "encoder", "cq")


def grid_rows_v3(path: Path) -> Rows:
    """Schema-v3 rows (``<feature>_mean``, ``vmaf_score``, ``crf``) or the legacy hardware-encoder
    rows (bare features, ``vmaf``, ``cq``); rows with a non-finite feature or target dropped."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    parsed = [row for _, row in iter_jsonl(path)]
    if not parsed:
        raise InputError(f"{path}: no rows")
    keys = set().union(*parsed)
    if set(SHAPE_A) <= keys:
        feats, target, quality = SHAPE_A[:6], "vmaf_score", "crf"
    elif set(SHAPE_B) <= keys:
        feats, target, quality = SHAPE_B[:6], "vmaf", "cq"
    else:
        missing = [k for k in SHAPE_A if k not in keys]
        raise InputError(
            f"{path}: neither the schema-v3 nor the legacy shape (missing {', '.join(missing)})"
        )
    sources, x, y, crf, onehot = [], [], [], [], []
    for row in parsed:
        values = [_finite(row.get(f)) for f in feats]
        vmaf = _finite(row.get(target))
        if vmaf is None or any(v is None for v in values):
            continue
        sources.append(str(row.get("src")))
        x.append(values)
        y.append(vmaf)
        crf.append(_finite(row.get(quality)) or 0.0)
        onehot.append(onehot_v3(row.get("encoder")))
    if not x:
        raise InputError(f"{path}: no row with finite features and target")
    return v3_rows(sources, np.array(x, dtype=np.float64), np.array(y), np.array(crf), onehot)


def v3_rows(
    sources: list[str], x: np.ndarray, y: np.ndarray, crf: np.ndarray, onehot: list[list[float]]
) -> Rows:
    low, high = float(crf.min()), float(crf.max())
    crf_norm = (crf - low) / (high - low) if high - low >= 1e-6 else np.full(len(crf), 0.5)
    codec = np.concatenate(
        [np.array(onehot), np.full((len(crf), 1), 0.5), crf_norm[:, None]], axis=1
    )
    return Rows(sources, x, y, codec, {"crf_min": low, "crf_max": high})


def smoke_rows_v3() -> Rows:
    """48 rows: 3 sources by CRF 19/25/31/37 by 4, all h264_nvenc, seed 42."""
    rng = np.random.default_rng(42)
    sources, x, y, crf = [], [], [], []
    for s in range(3):
        for value in (19, 25, 31, 37):
            for _ in range(4):
                vmaf = float(np.clip(98 - 1.4 * (value - 19) - 2 * s + rng.normal(0, 1), 0, 100))
                sources.append(f"smoke_src{s}")
                x.append(0.3 + 0.6 * vmaf / 100 + rng.normal(0, 0.02, len(CANONICAL_6)))
                y.append(vmaf)
                crf.append(float(value))
    onehot = [onehot_v3("h264_nvenc")] * len(y)
    return v3_rows(sources, np.array(x), np.array(y), np.array(crf), onehot)


# -- the ensemble: canonical-6, vmaf and codec per row ---------------------------------------------


def codec_table(path: Path) -> Rows:
    """A parquet of canonical-6, ``vmaf`` and ``codec`` (mapped onto the 6-entry vocabulary)."""
    table = read_parquet(path)
    require_columns(path, table, [*CANONICAL_6, "vmaf", "codec"])
    if not table.num_rows:
        raise InputError(f"{path}: no rows")
    x = np.stack([_float_column(path, table, f) for f in CANONICAL_6], axis=1)
    codecs = table.column("codec").to_pylist()
    sources = (
        [str(s) for s in table.column("source").to_pylist()]
        if "source" in table.column_names
        else [""] * len(x)
    )
    return Rows(sources, x, _float_column(path, table, "vmaf"), codec_onehot_v1(codecs))


def smoke_rows_ensemble(seed: int, n: int = 100) -> Rows:
    """Synthetic rows: VMAF = 50 + 30·adm2 + 10·vif_scale3 + a per-codec bias (-3 to 3)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (n, len(CANONICAL_6)))
    slots = rng.integers(0, len(CODEC_VOCAB_V1), n)
    bias = np.linspace(-3.0, 3.0, len(CODEC_VOCAB_V1))[slots]
    y = np.clip(50 + 30 * x[:, 0] + 10 * x[:, 4] + bias + rng.normal(0, 1.5, n), 0, 100)
    codec = codec_onehot_v1([CODEC_VOCAB_V1[s] for s in slots])
    return Rows([""] * n, x, y, codec)
