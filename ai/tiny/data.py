"""Reading the per-frame tables the tiny models learn from: the canonical six and ``vmaf``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ai.common.files import InputError, read_parquet
from ai.features.libvmaf import CANONICAL_6

TARGET = "vmaf"


class MissingColumns(InputError):
    """The table lacks a column the script needs (the fork's exit 2)."""


@dataclass(frozen=True)
class Frames:
    """Rows of canonical-6 features ``x`` ``[N, 6]`` and their VMAF ``y`` ``[N]``."""

    x: np.ndarray
    y: np.ndarray
    source: list[str] | None = None
    corpus: list[str] | None = None

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask: np.ndarray) -> Frames:
        def pick(values: list[str] | None) -> list[str] | None:
            return (
                None
                if values is None
                else [v for v, keep in zip(values, mask, strict=True) if keep]
            )

        return Frames(self.x[mask], self.y[mask], pick(self.source), pick(self.corpus))


def require(path: Path, table: pa.Table, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise MissingColumns(f"{path}: missing column(s) {', '.join(missing)}")


def _floats(path: Path, table: pa.Table, name: str) -> np.ndarray:
    try:
        values = table.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
    except (TypeError, ValueError, pa.ArrowException) as err:
        raise InputError(f"{path}: column {name} is not numeric: {err}") from None
    return np.asarray(values)


def _strings(table: pa.Table, name: str) -> list[str]:
    return ["" if v is None else str(v) for v in table.column(name).to_pylist()]


def frames_of(path: Path, table: pa.Table, *, need_source: bool = False) -> Frames:
    """Every row, in table order; a row with a missing or non-finite value is an error."""
    require(path, table, [*CANONICAL_6, TARGET, *(["source"] if need_source else [])])
    x = np.stack([_floats(path, table, name) for name in CANONICAL_6], axis=1)
    y = _floats(path, table, TARGET)
    bad = ~(np.isfinite(x).all(axis=1) & np.isfinite(y))
    if bad.any():
        raise InputError(f"{path}: row {int(np.argmax(bad))} has a missing or non-finite value")
    source = _strings(table, "source") if "source" in table.column_names else None
    corpus = _strings(table, "corpus") if "corpus" in table.column_names else None
    return Frames(x, y, source, corpus)


def load(path: Path, *, need_source: bool = False) -> Frames:
    frames = frames_of(path, read_parquet(path), need_source=need_source)
    if len(frames) < 2:
        raise InputError(f"{path}: {len(frames)} row(s); at least 2 are needed")
    return frames


def _reduced(path: Path, default_corpus: str | None) -> Frames:
    """A table kept to canonical-6, vmaf, corpus and source, rows with NaN left out (as v5's)."""
    table = read_parquet(path)
    require(path, table, [*CANONICAL_6, TARGET])
    x = np.stack([_floats(path, table, name) for name in CANONICAL_6], axis=1)
    y = _floats(path, table, TARGET)
    keep = np.isfinite(x).all(axis=1) & np.isfinite(y)
    n = table.num_rows
    source = _strings(table, "source") if "source" in table.column_names else [""] * n
    if "corpus" in table.column_names:
        corpus = _strings(table, "corpus")
    else:
        corpus = [default_corpus or ""] * n
    return Frames(x, y, source, corpus).take(keep)


def load_base_extra(base: Path, extra: Path) -> Frames:
    """v5's corpus: the base table then the extra one (``corpus="ugc"`` where it has none)."""
    first, second = _reduced(base, None), _reduced(extra, "ugc")
    assert first.source is not None
    assert second.source is not None
    assert first.corpus is not None
    assert second.corpus is not None
    joined = Frames(
        np.concatenate([first.x, second.x]),
        np.concatenate([first.y, second.y]),
        first.source + second.source,
        first.corpus + second.corpus,
    )
    if len(joined) < 2:
        raise InputError(f"{base} and {extra}: {len(joined)} usable row(s); at least 2 are needed")
    return joined


def finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
