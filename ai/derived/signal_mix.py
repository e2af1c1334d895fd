"""How the signals of a training table mix: corpus shares, and each joined signal's coverage
and correlation with the target."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from ai.common.files import InputError, require_columns
from ai.features.correlation import correlation


def corpus_shares(table: pa.Table, column: str) -> dict[str, float]:
    """Each corpus's share of the rows, sorted by corpus; one unnamed corpus without ``column``."""
    if column not in table.column_names:
        return {"(all)": 1.0}
    counts = Counter(str(v) for v in table.column(column).to_pylist())
    return {k: round(n / table.num_rows, 6) for k, n in sorted(counts.items())}


def _numeric_columns(table: pa.Table, key: str) -> list[str]:
    return [
        f.name
        for f in table.schema
        if f.name != key and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))
    ]


def audit_signal(
    name: str,
    path: Path,
    signal: pa.Table,
    base: pa.Table,
    key: str,
    target: str,
    corpus_column: str,
) -> dict[str, Any]:
    """One signal's coverage of ``base`` (overall and per corpus) and the PLCC of each of its
    numeric columns with ``target`` over the rows it covers."""
    require_columns(path, signal, [key])
    keys = [str(k) for k in signal.column(key).to_pylist()]
    if len(set(keys)) != len(keys):
        raise InputError(f"{path}: {key} is not unique: a signal must hold one row per clip")
    where = {k: i for i, k in enumerate(keys)}
    base_keys = [str(k) for k in base.column(key).to_pylist()]
    covered = np.array([k in where for k in base_keys], dtype=bool)
    corpora = (
        [str(c) for c in base.column(corpus_column).to_pylist()]
        if corpus_column in base.column_names
        else ["(all)"] * base.num_rows
    )
    per_corpus = {}
    for corpus in sorted(set(corpora)):
        rows = np.array([c == corpus for c in corpora])
        per_corpus[corpus] = round(float(covered[rows].mean()), 6)
    y = base.column(target).to_numpy(zero_copy_only=False).astype(np.float64)[covered]
    take = [where[k] for k, hit in zip(base_keys, covered, strict=True) if hit]
    columns = []
    for column in _numeric_columns(signal, key):
        values = signal.column(column).to_numpy(zero_copy_only=False).astype(np.float64)[take]
        ok = np.isfinite(values) & np.isfinite(y)
        r = correlation(values[ok], y[ok]) if ok.sum() >= 3 else None
        columns.append({"column": column, "plcc_with_target": r})
    return {
        "name": name,
        "table": path.name,
        "rows": signal.num_rows,
        "joined_rows": int(covered.sum()),
        "coverage": round(float(covered.mean()), 6) if base.num_rows else 0.0,
        "coverage_by_corpus": per_corpus,
        "orphan_rows": len(set(keys) - set(base_keys)),
        "columns": columns,
    }


def audit(
    base_path: Path,
    base: pa.Table,
    signals: Sequence[tuple[str, Path, pa.Table]],
    key: str,
    target: str,
    corpus_column: str,
) -> dict[str, Any]:
    require_columns(base_path, base, [key, target])
    return {
        "rows": base.num_rows,
        "corpus_shares": corpus_shares(base, corpus_column),
        "signals": [
            audit_signal(name, path, table, base, key, target, corpus_column)
            for name, path, table in signals
        ],
    }
