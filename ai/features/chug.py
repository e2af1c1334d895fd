"""CHUG HDR preflight: the content split map and the audit of the clips' HDR metadata.

Both are decided before any feature is extracted: the split is the train/val/test boundary the
MOS head trainers use (a hash of seed and content), the audit says whether the clips really
are HDR (transfer function, primaries, bit depth, mastering peak) and are in the cache.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ai.common.files import InputError, iter_jsonl
from ai.features.tables import (
    HDR_TRANSFERS,
    SPLIT_HASH,
    SPLITS,
    content_name,
    metadata_cells,
    motion_fps_weight,
    split_of,
)

PASS, FAIL = "pass", "fail"
_BIT_DEPTH = re.compile(r"^(?:p0|yuva?\d{3}p|gbrp|gray)(\d*)(?:le|be)?$")


@dataclass(frozen=True)
class Clip:
    name: str
    row: dict[str, Any]


def read_clips(path: Path) -> list[Clip]:
    """One clip per JSONL row, named by the basename of its ``src``; in name order."""
    clips: dict[str, Clip] = {}
    for number, row in iter_jsonl(path):
        src = row.get("src")
        if not isinstance(src, str) or not src:
            raise InputError(f"{path}:{number}: no src to name the clip by")
        name = src.replace("\\", "/").rsplit("/", 1)[-1]
        if name in clips:
            raise InputError(f"{path}:{number}: clip {name!r} appears twice")
        clips[name] = Clip(name, row)
    if not clips:
        raise InputError(f"{path}: no rows")
    return [clips[name] for name in sorted(clips)]


MOS_RANGE = (0.0, 100.0)  # CHUG's native scale


def clip_columns(path: Path, clip: Clip) -> dict[str, Any]:
    """The table's clip columns from the clip's row: mos (0-100) where the row has one,
    width, height, fps, is_hdr as enrichment reads them, and the frame-rate weight."""
    where = f"{path}: clip {clip.name}"
    mos = clip.row.get("mos")
    if mos is not None and (
        isinstance(mos, bool)
        or not isinstance(mos, (int, float))
        or not MOS_RANGE[0] <= mos <= MOS_RANGE[1]
    ):
        raise InputError(f"{where}: mos must be a number on the 0-100 scale, got {mos!r}")
    cells = metadata_cells(clip.row, where)
    return {
        "mos": None if mos is None else float(mos),
        "width": cells.get("width"),
        "height": cells.get("height"),
        "fps": cells.get("fps"),
        "is_hdr": cells.get("is_hdr"),
        "motion_fps_weight": motion_fps_weight(cells.get("fps")),
    }


def ids_sha256(names: Sequence[str]) -> str:
    """SHA-256 of the sorted names, each followed by a newline."""
    return hashlib.sha256("".join(f"{n}\n" for n in sorted(names)).encode("utf-8")).hexdigest()


def split_map(clips: Sequence[Clip], seed: int) -> tuple[dict[str, str], dict[str, Any]]:
    """Each clip's split, and per split its clip and content counts and the digest of its ids."""
    assignment = {clip.name: split_of(seed, clip.name) for clip in clips}
    summary = {}
    for split, _ in SPLITS:
        names = [n for n, s in assignment.items() if s == split]
        summary[split] = {
            "clips": len(names),
            "contents": len({content_name(n) for n in names}),
            "ids_sha256": ids_sha256(names),
        }
    return assignment, summary


def split_parameters(seed: int) -> dict[str, Any]:
    bounds, low = {}, 0.0
    for split, upper in SPLITS:
        bounds[split] = [low, upper]
        low = upper
    return {"seed": seed, "by": "content", "hash": SPLIT_HASH, "bounds": bounds}


def bit_depth(pix_fmt: object) -> int | None:
    """The bits per sample a pixel format names (``yuv420p10le`` 10, ``yuv420p`` 8)."""
    if not isinstance(pix_fmt, str):
        return None
    match = _BIT_DEPTH.match(pix_fmt)
    if match is None:
        return None
    return int(match[1]) if match[1] else 8


@dataclass(frozen=True)
class AuditRules:
    transfers: frozenset[str] = HDR_TRANSFERS
    primaries: frozenset[str] = frozenset({"bt2020"})
    min_bit_depth: int = 10
    min_peak_nits: float = 400.0
    max_peak_nits: float = 10000.0

    def as_record(self) -> dict[str, Any]:
        return {
            "transfers": sorted(self.transfers),
            "primaries": sorted(self.primaries),
            "min_bit_depth": self.min_bit_depth,
            "peak_nits": [self.min_peak_nits, self.max_peak_nits],
        }


def _peak(row: dict[str, Any]) -> float | None:
    value = row.get("max_luminance")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def audit(clips: Sequence[Clip], cache_dir: Path, rules: AuditRules) -> dict[str, dict[str, Any]]:
    """Per check, its verdict and every clip that failed it with the value it had."""
    checks: dict[str, tuple[str, Callable[[Clip], Any], Callable[[Any], bool]]] = {
        "transfer_function": (
            f"color_transfer in {', '.join(sorted(rules.transfers))}",
            lambda c: c.row.get("color_transfer"),
            lambda v: v in rules.transfers,
        ),
        "color_primaries": (
            f"color_primaries in {', '.join(sorted(rules.primaries))}",
            lambda c: c.row.get("color_primaries"),
            lambda v: v in rules.primaries,
        ),
        "bit_depth": (
            f"bit depth of pix_fmt at least {rules.min_bit_depth}",
            lambda c: c.row.get("pix_fmt"),
            lambda v: (bit_depth(v) or 0) >= rules.min_bit_depth,
        ),
        "peak_luminance": (
            f"max_luminance in [{rules.min_peak_nits:g}, {rules.max_peak_nits:g}] cd/m2",
            lambda c: c.row.get("max_luminance"),
            lambda v: (
                _peak({"max_luminance": v}) is not None
                and rules.min_peak_nits <= float(v) <= rules.max_peak_nits
            ),
        ),
        "in_cache": (
            "a libvmaf JSON <clip>.json in the cache",
            lambda c: (cache_dir / f"{c.name}.json").is_file(),
            bool,
        ),
    }
    report = {}
    for name, (expects, value_of, ok) in checks.items():
        failing = []
        for clip in clips:
            value = value_of(clip)
            if not ok(value):
                failing.append({"clip": clip.name, "value": value})
        report[name] = {
            "verdict": FAIL if failing else PASS,
            "expects": expects,
            "checked": len(clips),
            "failing": failing,
        }
    return report
