"""Corpus JSONL: MOS corpora onto one 0-100 axis, and encode-grid (schema v3) rows."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ai.common.files import InputError, iter_jsonl

# -- MOS corpora -------------------------------------------------------------------------------

MOS_ROW_KEYS = (
    "src", "src_sha256", "src_size_bytes", "width", "height", "framerate", "duration_s",
    "pix_fmt", "encoder_upstream", "mos", "mos_std_dev", "n_ratings", "corpus",
    "corpus_version", "ingested_at_utc",
)  # fmt: skip
SCALE_TOLERANCE = 0.05


@dataclass(frozen=True)
class Scale:
    """``unified = slope * native + intercept``, for MOS published on ``native_range``."""

    name: str
    native_range: tuple[float, float]
    slope: float
    intercept: float

    def unify(self, native: float) -> float | None:
        """The MOS on the 0-100 axis, or None when ``native`` is off its scale."""
        low, high = self.native_range
        if not (low - SCALE_TOLERANCE <= native <= high + SCALE_TOLERANCE):
            return None
        return round(self.slope * native + self.intercept, 6)

    def as_record(self) -> dict[str, Any]:
        return {
            "native_scale": self.name,
            "native_range": list(self.native_range),
            "slope": self.slope,
            "intercept": self.intercept,
        }


ACR = Scale("acr-1-5", (1.0, 5.0), 25.0, -25.0)
DCR = Scale("dcr-0-100", (0.0, 100.0), 1.0, 0.0)
VMAF = Scale("vmaf-0-100", (0.0, 100.0), 1.0, 0.0)
SCALES: dict[str, Scale] = {
    "konvid-1k": ACR,
    "konvid-150k": ACR,
    "lsvq": ACR,
    "youtube-ugc": ACR,
    "waterloo-ivc-4k": DCR,
    "netflix-public": VMAF,
}


def parse_override(text: str) -> tuple[str, str]:
    """``PATH=LABEL`` from ``--corpus-source-override``."""
    path, sep, label = text.rpartition("=")
    if not sep or not path or not label:
        raise InputError(f"--corpus-source-override {text!r}: expected PATH=LABEL")
    return path, label


def _number(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _std_rank(row: Mapping[str, Any]) -> float:
    """A row's ``mos_std_dev`` for dedup: 0, missing or non-finite count as infinite."""
    std = _number(row, "mos_std_dev")
    return std if std is not None and math.isfinite(std) and std > 0 else math.inf


@dataclass
class Aggregate:
    rows: list[dict[str, Any]] = field(default_factory=list)
    rows_in: int = 0
    dropped_unknown_corpus: int = 0
    dropped_bad_scale: int = 0
    cross_corpus_dedups: int = 0
    same_corpus_dedups: int = 0
    inputs_seen: int = 0
    inputs_missing: int = 0
    unknown_corpora: dict[str, int] = field(default_factory=dict)
    scales_used: dict[str, Scale] = field(default_factory=dict)

    def counters(self) -> dict[str, int]:
        return {
            "rows_in": self.rows_in,
            "rows_out": len(self.rows),
            "dropped_unknown_corpus": self.dropped_unknown_corpus,
            "dropped_bad_scale": self.dropped_bad_scale,
            "cross_corpus_dedups": self.cross_corpus_dedups,
            "same_corpus_dedups": self.same_corpus_dedups,
            "inputs_seen": self.inputs_seen,
            "inputs_missing": self.inputs_missing,
        }


def aggregate(
    inputs: Sequence[Path],
    overrides: Mapping[str, str],
    *,
    allow_missing: bool = False,
    scales: Mapping[str, Scale] = SCALES,
) -> Aggregate:
    """MOS corpora onto 0-100: rescale, drop what cannot be placed, dedup on ``src_sha256``."""
    result = Aggregate()
    kept: dict[str, dict[str, Any]] = {}
    unknown: dict[str, int] = {}
    for path in inputs:
        if not path.is_file():
            if not allow_missing:
                raise InputError(f"{path}: no such file (pass --allow-missing to skip it)")
            result.inputs_missing += 1
            continue
        result.inputs_seen += 1
        label = overrides.get(str(path))
        for number, row in iter_jsonl(path):
            result.rows_in += 1
            where = f"{path}:{number}"
            corpus = label or row.get("corpus")
            if not isinstance(corpus, str) or corpus not in scales:
                result.dropped_unknown_corpus += 1
                unknown[str(corpus)] = unknown.get(str(corpus), 0) + 1
                continue
            sha = row.get("src_sha256")
            native = _number(row, "mos")
            if not isinstance(sha, str) or not sha:
                raise InputError(f"{where}: no src_sha256")
            if native is None or not math.isfinite(native):
                raise InputError(f"{where}: mos {row.get('mos')!r} is not a number")
            scale = scales[corpus]
            unified = scale.unify(native)
            if unified is None:
                result.dropped_bad_scale += 1
                continue
            result.scales_used[corpus] = scale
            candidate = {
                **row,
                "corpus": corpus,
                "corpus_source": corpus,
                "mos": unified,
                "mos_native": native,
                "mos_native_scale": scale.name,
            }
            earlier = kept.get(sha)
            if earlier is None:
                kept[sha] = candidate
            elif earlier["corpus_source"] == corpus:
                result.same_corpus_dedups += 1  # the same corpus keeps its first row
            else:
                result.cross_corpus_dedups += 1
                if _std_rank(candidate) < _std_rank(earlier):
                    kept[sha] = candidate
    result.rows = sorted(kept.values(), key=lambda r: (r["corpus_source"], r["src_sha256"]))
    result.unknown_corpora = dict(sorted(unknown.items()))
    return result


# -- encode-grid corpora (vmaf-tune), schema v3 ------------------------------------------------

SCHEMA_VERSION = 3
VMAF_STAT_FEATURES = ("adm2", "vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3", "motion2")
CORPUS_ROW_KEYS: tuple[str, ...] = (
    "schema_version", "run_id", "timestamp", "src", "src_sha256", "width", "height", "pix_fmt",
    "framerate", "duration_s", "encoder", "encoder_version", "preset", "crf", "extra_params",
    "encode_path", "encode_size_bytes", "bitrate_kbps", "encode_time_ms", "vmaf_score",
    "vmaf_model", "score_time_ms", "ffmpeg_version", "vmaf_binary_version", "exit_status",
    "clip_mode", "hdr_transfer", "hdr_primaries", "hdr_forced", "shot_count",
    "shot_avg_duration_sec", "shot_duration_std_sec",
    *(f"{f}_{stat}" for f in VMAF_STAT_FEATURES for stat in ("mean", "std")),
    "enc_internal_qp_mean", "enc_internal_qp_std", "enc_internal_bits_mean",
    "enc_internal_bits_std", "enc_internal_mv_mean", "enc_internal_mv_std",
    "enc_internal_itex_mean", "enc_internal_ptex_mean", "enc_internal_intra_ratio",
    "enc_internal_skip_ratio",
)  # fmt: skip

# What every synthetic encode-grid row (the sample's and the predictor's smoke rows) holds
# alike: a 10 s 1080p30 source, a whole-clip VMAF 3.0.0 score that exited 0, no HDR, three shots.
SYNTHETIC_ENCODE: dict[str, Any] = {
    "width": 1920,
    "height": 1080,
    "pix_fmt": "yuv420p",
    "framerate": 30.0,
    "duration_s": 10.0,
    "encoder_version": "sample",
    "preset": "medium",
    "extra_params": "",
    "vmaf_model": "vmaf_v0.6.1",
    "ffmpeg_version": "7.1",
    "vmaf_binary_version": "3.0.0",
    "exit_status": 0,
    "clip_mode": "full",
    "hdr_transfer": "bt709",
    "hdr_primaries": "bt709",
    "hdr_forced": False,
    "shot_count": 3,
    "shot_avg_duration_sec": 3.333,
    "shot_duration_std_sec": 0.5,
}


def synthetic_encode_row(**fields: Any) -> dict[str, Any]:
    """A schema-v3 row with every key in its place, ``SYNTHETIC_ENCODE`` and ``fields`` set."""
    row: dict[str, Any] = dict.fromkeys(CORPUS_ROW_KEYS)
    row.update(schema_version=SCHEMA_VERSION, **SYNTHETIC_ENCODE, **fields)
    return row


NATURAL_KEY = ("src_sha256", "encoder", "preset", "crf")


@dataclass
class Merge:
    rows: list[dict[str, Any]] = field(default_factory=list)
    rows_in: int = 0
    duplicates: int = 0
    per_input: list[dict[str, Any]] = field(default_factory=list)

    def counters(self) -> dict[str, int]:
        return {
            "rows_in": self.rows_in,
            "rows_out": len(self.rows),
            "duplicates": self.duplicates,
            "unique_sources": len({row["src_sha256"] for row in self.rows}),
        }


def check_v3_row(row: Mapping[str, Any], where: str) -> None:
    missing = [key for key in CORPUS_ROW_KEYS if key not in row]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise InputError(f"{where}: missing schema-v{SCHEMA_VERSION} key(s) {shown}")
    if row["schema_version"] != SCHEMA_VERSION:
        raise InputError(
            f"{where}: schema_version {row['schema_version']!r}, expected {SCHEMA_VERSION}"
        )


def merge(inputs: Iterable[Path]) -> Merge:
    """Concatenate v3 rows; the first row of each natural key wins, in input order."""
    result = Merge()
    seen: set[tuple[Any, ...]] = set()
    for path in inputs:
        rows = kept = 0
        for number, row in iter_jsonl(path):
            check_v3_row(row, f"{path}:{number}")
            rows += 1
            key = tuple(_hashable(row[k]) for k in NATURAL_KEY)
            if key in seen:
                result.duplicates += 1
                continue
            seen.add(key)
            result.rows.append(row)
            kept += 1
        result.rows_in += rows
        result.per_input.append({"path": path, "rows": rows, "kept": kept})
    return result


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
