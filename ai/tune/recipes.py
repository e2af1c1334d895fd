"""Phase F content recipes: per encoder and content class, the CRF that meets each VMAF target.

A recipe is a straight-line fit of VMAF against CRF over the encode-grid rows of its class,
inverted at each target and kept inside the CRFs the corpus measured. Only the first ``row
cap`` rows of the corpus are read; the snapshot digests exactly those bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.files import InputError

NEEDED = ("src_sha256", "encoder", "crf", "vmaf_score", "motion2_mean")


@dataclass(frozen=True)
class Snapshot:
    rows: list[dict[str, Any]]
    rows_sha256: str  # of the lines read, exactly as they are in the file
    file_sha256: str
    capped: bool  # rows were left unread


def read_capped(path: Path, row_cap: int) -> Snapshot:
    """The first ``row_cap`` non-blank JSONL rows and the digests of what was read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as err:
        raise InputError(f"{path}: cannot be read: {err.strerror or err}") from None
    rows: list[dict[str, Any]] = []
    read = hashlib.sha256()
    capped = False
    for number, line in enumerate(data.splitlines(keepends=True), start=1):
        if not line.strip():
            continue
        if len(rows) == row_cap:
            capped = True
            break
        try:
            row = json.loads(line.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise InputError(f"{path}:{number}: not UTF-8: {err}") from None
        except json.JSONDecodeError as err:
            raise InputError(f"{path}:{number}: not valid JSON: {err.msg}") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{number}: expected a JSON object per line")
        missing = [k for k in NEEDED if k not in row]
        if missing:
            raise InputError(f"{path}:{number}: not an encode-grid row: no {', '.join(missing)}")
        rows.append(row)
        read.update(line)
    if not rows:
        raise InputError(f"{path}: no rows")
    return Snapshot(rows, read.hexdigest(), hashlib.sha256(data).hexdigest(), capped)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def content_class(motion: float, motion_split: float) -> str:
    return "high_motion" if motion >= motion_split else "low_motion"


@dataclass(frozen=True)
class Calibration:
    recipes: list[dict[str, Any]]
    rows_used: int
    rows_skipped: int


def calibrate(
    rows: Sequence[dict[str, Any]], targets: Sequence[float], motion_split: float
) -> Calibration:
    """One recipe per (encoder, content class) with at least two distinct CRFs.

    A source's class is that of its mean ``motion2_mean`` over its usable rows, so all the
    encodes of one source fall into one class.
    """
    usable: list[tuple[str, float, float, str, float]] = []
    skipped = 0
    for row in rows:
        crf, vmaf, motion = (_number(row[k]) for k in ("crf", "vmaf_score", "motion2_mean"))
        failed = row.get("exit_status") not in (None, 0)
        if crf is None or vmaf is None or motion is None or failed or not row["encoder"]:
            skipped += 1  # a failed encode or a row the grid could not score
            continue
        usable.append((str(row["encoder"]), crf, vmaf, str(row["src_sha256"]), motion))
    motions: dict[str, list[float]] = {}
    for _, _, _, source, motion in usable:
        motions.setdefault(source, []).append(motion)
    classes = {s: content_class(float(np.mean(m)), motion_split) for s, m in motions.items()}
    groups: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
    for encoder, crf, vmaf, source, _ in usable:
        groups.setdefault((encoder, classes[source]), []).append((crf, vmaf, source))
    recipes = []
    for (encoder, klass), points in sorted(groups.items()):
        crfs = np.array([p[0] for p in points])
        vmafs = np.array([p[1] for p in points])
        recipe: dict[str, Any] = {
            "encoder": encoder,
            "content_class": klass,
            "rows": len(points),
            "sources": len({p[2] for p in points}),
            "crf_range": [float(crfs.min()), float(crfs.max())],
        }
        if len(set(crfs.tolist())) < 2:
            recipes.append({**recipe, "slope": None, "intercept": None, "r2": None, "crf": {}})
            continue
        slope, intercept = np.polyfit(crfs, vmafs, 1)
        fitted = slope * crfs + intercept
        total = float(np.sum((vmafs - vmafs.mean()) ** 2))
        r2 = 1.0 - float(np.sum((vmafs - fitted) ** 2)) / total if total > 0 else 1.0
        recipe |= {"slope": round(float(slope), 6), "intercept": round(float(intercept), 6),
                   "r2": round(r2, 6), "crf": {}}  # fmt: skip
        for target in targets:
            # VMAF falls as CRF rises: the largest CRF still at the target, inside the grid.
            wanted = (target - intercept) / slope if slope < 0 else float(crfs.max())
            crf = int(min(crfs.max(), max(crfs.min(), math.floor(wanted))))
            reachable = bool(crfs.min() <= wanted and slope < 0)
            recipe["crf"][f"{target:g}"] = {"crf": crf, "reachable": reachable}
        recipes.append(recipe)
    return Calibration(recipes, len(usable), skipped)
