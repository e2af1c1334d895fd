"""Feature tables: per-clip and per-frame row schemas, the content split, combining, enriching."""

from __future__ import annotations

import hashlib
import math
import os
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa

from ai.common.files import InputError, iter_jsonl
from ai.features.libvmaf import FULL_FEATURES, VmafResult

PER_CLIP_HEAD: tuple[tuple[str, pa.DataType], ...] = (
    ("clip_name", pa.string()),
    ("mos", pa.float64()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("fps", pa.float64()),
    ("is_hdr", pa.bool_()),
    ("motion_fps_weight", pa.float64()),
)
KEY_COLUMNS = ("clip_name", "key", "dis_name")
SPLITS = (("train", 0.8), ("val", 0.9), ("test", 1.0))


def feature_columns(features: Iterable[str]) -> list[str]:
    return [column for f in features for column in (f"{f}_mean", f"{f}_std")]


def per_clip_schema(features: Sequence[str]) -> pa.Schema:
    stats = [(column, pa.float64()) for column in feature_columns(features)]
    return pa.schema([*PER_CLIP_HEAD, *stats])


def per_frame_schema(features: Sequence[str]) -> pa.Schema:
    head = [("key", pa.string()), ("frame_index", pa.int32())]
    return pa.schema([*head, *((f, pa.float64()) for f in features), ("vmaf", pa.float64())])


def motion_fps_weight(fps: float | None) -> float | None:
    """1.0 for 24-32 fps; else 30/fps clamped to [0.25, 4]; unknown without a frame rate."""
    if fps is None or not math.isfinite(fps) or fps <= 0:
        return None
    if 24.0 <= fps <= 32.0:
        return 1.0
    return min(4.0, max(0.25, 30.0 / fps))


def content_name(clip_name: str) -> str:
    """The content a clip shows: its stem up to ``__`` (``chug_c07__1080p.mp4`` -> ``chug_c07``)."""
    stem = PurePosixPath(clip_name).name
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    return stem.split("__", 1)[0]


# The fork's content split: BLAKE2s of the seed in decimal, a NUL byte, and the content name
# (UTF-8); its first 8 bytes, big-endian, over 2**64. A split made by the fork lines up here.
SPLIT_HASH = "blake2s(seed\\0content)"


def split_fraction(seed: int, content: str) -> float:
    """Where ``content`` falls in [0, 1) for ``seed``: the same for every clip of one content."""
    digest = hashlib.blake2s(f"{seed}\0{content}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(seed: int, clip_name: str) -> str:
    """``train`` / ``val`` / ``test`` by a hash of (seed, content): a content never straddles."""
    fraction = split_fraction(seed, content_name(clip_name))
    return next(name for name, upper in SPLITS if fraction < upper)


def clip_stats(result: VmafResult, features: Sequence[str]) -> dict[str, float]:
    """``<feature>_mean`` and ``<feature>_std`` (population) over the clip's frames."""
    stats: dict[str, float] = {}
    for name in features:
        values = result.feature(name)
        stats[f"{name}_mean"] = statistics.fmean(values)
        stats[f"{name}_std"] = statistics.pstdev(values)
    return stats


# -- combining tables from several corpora -----------------------------------------------------

COLUMN_ORDER = [
    "mos",
    "width",
    "height",
    "fps",
    "is_hdr",
    "motion_fps_weight",
    "frame_index",
    *feature_columns(FULL_FEATURES),
    *FULL_FEATURES,
    "vmaf",
]


@dataclass(frozen=True)
class Labelled:
    label: str
    path: Path
    table: pa.Table


@dataclass
class Combined:
    table: pa.Table
    inputs: list[dict[str, Any]]
    corpus_distribution: dict[str, int]
    duplicate_keys: int


def key_column_of(item: Labelled) -> str:
    found = next((c for c in KEY_COLUMNS if c in item.table.column_names), None)
    if found is None:
        raise InputError(f"{item.path}: no clip key column (one of {', '.join(KEY_COLUMNS)})")
    return found


def combine(items: Sequence[Labelled], key: str = "clip_name") -> Combined:
    """The union of the tables' columns; a column a table lacks is filled with nulls."""
    prepared, reports = [], []
    for item in items:
        table = item.table
        own_key = key_column_of(item)
        if own_key != key:
            table = table.rename_columns([key if c == own_key else c for c in table.column_names])
        if "corpus" not in table.column_names:
            table = table.append_column("corpus", pa.array([item.label] * table.num_rows))
        prepared.append(table)
        reports.append(
            {"label": item.label, "path": item.path, "rows": table.num_rows, "key_column": own_key}
        )
    order = output_order(key, [t.column_names for t in prepared])
    for table, report in zip(prepared, reports, strict=True):
        report["filled"] = [c for c in order if c not in table.column_names]
    try:
        union = pa.concat_tables(prepared, promote_options="permissive")
    except pa.ArrowException as err:
        raise InputError(f"the tables' column types cannot be combined: {err}") from None
    union = union.select(order)
    keys = Counter(union.column(key).to_pylist())
    corpora = Counter(union.column("corpus").to_pylist())
    return Combined(
        table=union,
        inputs=reports,
        corpus_distribution=dict(sorted(corpora.items())),
        duplicate_keys=sum(count - 1 for count in keys.values() if count > 1),
    )


def output_order(key: str, column_lists: Iterable[Sequence[str]]) -> list[str]:
    """Key, corpus, the known columns in their usual order, then the rest as first seen."""
    seen = list(dict.fromkeys(c for columns in column_lists for c in columns))
    rank = {name: index for index, name in enumerate(COLUMN_ORDER)}
    rest = [c for c in seen if c not in (key, "corpus")]
    known = sorted((c for c in rest if c in rank), key=rank.__getitem__)
    return [key, "corpus", *known, *(c for c in rest if c not in rank)]


# -- enriching per-clip tables with clip metadata ----------------------------------------------

HDR_TRANSFERS = frozenset({"smpte2084", "arib-std-b67"})
ENRICHED_COLUMNS = ("width", "height", "fps", "is_hdr")


@dataclass
class Enrichment:
    table: pa.Table
    rows: int = 0
    metadata_rows: int = 0
    matched_rows: int = 0
    missing_rows: int = 0
    updated_cells: int = 0
    updated_by_column: dict[str, int] = field(default_factory=dict)
    metadata_keys: list[str] = field(default_factory=list)
    unmatched_clips: list[str] = field(default_factory=list)

    def counters(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "metadata_rows": self.metadata_rows,
            "matched_rows": self.matched_rows,
            "missing_rows": self.missing_rows,
            "updated_cells": self.updated_cells,
        }


def _positive_int(value: Any, where: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise InputError(f"{where}: {key} must be a positive number, got {value!r}")
    if int(value) != value:
        raise InputError(f"{where}: {key} must be a whole number, got {value!r}")
    return int(value)


def _frame_rate(value: Any, where: str) -> float:
    """A frame rate given as a number or as ``"30000/1001"``."""
    try:
        rate = float(Fraction(value)) if isinstance(value, str) else float(value)
    except (ValueError, ZeroDivisionError, TypeError):
        rate = math.nan
    if isinstance(value, bool) or not math.isfinite(rate) or rate <= 0:
        raise InputError(f"{where}: framerate must be a positive number, got {value!r}")
    return rate


def metadata_cells(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The table cells a metadata row can fill, checked; keys it does not carry are left out."""
    cells: dict[str, Any] = {}
    for key in ("width", "height"):
        if row.get(key) is not None:
            cells[key] = _positive_int(row[key], where, key)
    rate = row.get("framerate", row.get("fps"))
    if rate is not None:
        cells["fps"] = _frame_rate(rate, where)
    if isinstance(row.get("is_hdr"), bool):
        cells["is_hdr"] = row["is_hdr"]
    elif row.get("is_hdr") is not None:
        raise InputError(f"{where}: is_hdr must be true or false, got {row['is_hdr']!r}")
    elif isinstance(row.get("color_transfer"), str):
        cells["is_hdr"] = row["color_transfer"] in HDR_TRANSFERS
    return cells


def read_metadata(path: Path) -> tuple[dict[str, dict[str, Any]], int, list[str]]:
    """Metadata rows by the basename of their ``src``; a clip named twice is an error."""
    by_clip: dict[str, dict[str, Any]] = {}
    lines: dict[str, int] = {}
    keys: set[str] = set()
    count = 0
    for number, row in iter_jsonl(path):
        where = f"{path}:{number}"
        src = row.get("src")
        if not isinstance(src, str) or not src:
            raise InputError(f"{where}: no src to match clips by")
        clip = os.path.basename(src.replace("\\", "/"))
        if clip in by_clip:
            raise InputError(f"{where}: clip {clip!r} already described on line {lines[clip]}")
        by_clip[clip], lines[clip] = metadata_cells(row, where), number
        keys.update(row)
        count += 1
    return by_clip, count, sorted(keys)


def enrich(
    table: pa.Table, metadata: Mapping[str, Mapping[str, Any]], *, overwrite: bool
) -> Enrichment:
    """Fill the clip columns from ``metadata``; only null cells, unless ``overwrite``."""
    columns = {name: table.column(name).to_pylist() for name in ENRICHED_COLUMNS}
    weights = table.column("motion_fps_weight").to_pylist()
    result = Enrichment(table=table, rows=table.num_rows)
    updated = Counter[str]()
    for index, clip in enumerate(table.column("clip_name").to_pylist()):
        cells = metadata.get(clip)
        if cells is None:
            result.missing_rows += 1
            result.unmatched_clips.append(clip)
            continue
        result.matched_rows += 1
        for name, value in cells.items():
            current = columns[name][index]
            if (current is None or overwrite) and current != value:
                columns[name][index] = value
                updated[name] += 1
        weight = motion_fps_weight(columns["fps"][index])
        if (
            weight is not None
            and weight != weights[index]
            and (weights[index] is None or overwrite)
        ):
            weights[index] = weight
            updated["motion_fps_weight"] += 1
    for name, values in [*columns.items(), ("motion_fps_weight", weights)]:
        position = table.schema.get_field_index(name)
        array = pa.array(values, type=table.schema.field(name).type)
        table = table.set_column(position, table.schema.field(name), array)
    result.table = table
    result.updated_by_column = dict(sorted(updated.items()))
    result.updated_cells = sum(updated.values())
    return result
