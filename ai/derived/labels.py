"""MOS labels from the aggregated MOS corpus, joined to a feature table's clips."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa

from ai.common.files import InputError, iter_jsonl, require_columns

LABEL_SCHEMA = pa.schema(
    [
        ("clip_name", pa.string()),
        ("corpus", pa.string()),
        ("mos", pa.float64()),  # the unified 0-100 axis
        ("mos_acr", pa.float64()),  # the same on 1-5, as the MOS heads train
        ("mos_native", pa.float64()),
        ("mos_native_scale", pa.string()),
        ("mos_std_dev", pa.float64()),
        ("n_ratings", pa.int64()),
        ("reliable", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class Labels:
    table: pa.Table
    label_rows: int
    duplicate_labels: int
    unmatched_clips: list[str]  # the feature table's clips no label row names
    unused_labels: int  # label rows of the corpus that name no clip of the table
    unreliable: int


def _number(row: dict[str, Any], key: str) -> float | None:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def materialize(
    labels_path: Path,
    table_path: Path,
    table: pa.Table,
    corpus: str | None,
    max_std_dev: float,
    min_ratings: int,
) -> Labels:
    """One label row per clip of ``table`` that a label row of ``corpus`` names (by the
    basename of its ``src``); the first row of a name wins. ``reliable``: a published standard
    deviation at most ``max_std_dev`` (0 means unpublished, so it passes) and ``min_ratings``."""
    require_columns(table_path, table, ["clip_name"])
    clips = [str(c) for c in table.column("clip_name").to_pylist()]
    by_name: dict[str, dict[str, Any]] = {}
    rows = duplicates = 0
    for number, row in iter_jsonl(labels_path):
        label_corpus = row.get("corpus_source", row.get("corpus"))
        if corpus is not None and label_corpus != corpus:
            continue
        src, mos = row.get("src"), _number(row, "mos")
        if not isinstance(src, str) or mos is None:
            raise InputError(f"{labels_path}:{number}: a label needs src and a finite mos")
        rows += 1
        name = PurePosixPath(src).name
        if name in by_name:
            duplicates += 1
            continue
        by_name[name] = {**row, "corpus": label_corpus, "mos": mos}
    out: dict[str, list[Any]] = {field.name: [] for field in LABEL_SCHEMA}
    unmatched: list[str] = []
    unreliable = 0
    for clip in clips:
        label = by_name.get(clip)
        if label is None:
            unmatched.append(clip)
            continue
        row = label
        std = _number(row, "mos_std_dev") or 0.0
        n = row.get("n_ratings")
        n_ratings = n if isinstance(n, int) and not isinstance(n, bool) else 0
        reliable = std <= max_std_dev and n_ratings >= min_ratings
        unreliable += not reliable
        out["clip_name"].append(clip)
        out["corpus"].append(str(row["corpus"]))
        out["mos"].append(row["mos"])
        out["mos_acr"].append(round(1.0 + 4.0 * row["mos"] / 100.0, 6))
        out["mos_native"].append(_number(row, "mos_native"))
        out["mos_native_scale"].append(row.get("mos_native_scale"))
        out["mos_std_dev"].append(std)
        out["n_ratings"].append(n_ratings)
        out["reliable"].append(reliable)
    return Labels(
        pa.table(out, schema=LABEL_SCHEMA),
        rows,
        duplicates,
        unmatched,
        len(set(by_name) - set(clips)),
        unreliable,
    )
