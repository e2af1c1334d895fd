"""Saliency features of each clip, from the per-frame libvmaf measurements its cache holds.

With no saliency model at hand, a frame's conspicuity stands in for its saliency: how much it
moves (``motion2``, squashed to 0-1 as m / (m + 8)) and how much detail the encode lost
(``1 - adm2``), half each. Per clip: the mean and variance of that over frames (the MOS head's
``saliency_mean`` and ``saliency_var``), the fraction of frames more than one standard
deviation above the mean (peaks), and the frame count.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from ai.common.files import require_columns
from ai.features import libvmaf

MOTION_HALF = 8.0  # the motion2 at which the motion half of conspicuity is 0.5
SCHEMA = pa.schema(
    [
        ("clip_name", pa.string()),
        ("saliency_mean", pa.float64()),
        ("saliency_var", pa.float64()),
        ("saliency_peak_fraction", pa.float64()),
        ("saliency_frames", pa.int64()),
    ]
)


def conspicuity(result: libvmaf.VmafResult) -> np.ndarray:
    motion = np.asarray(result.feature("motion2"))
    detail_lost = 1.0 - np.asarray(result.feature("adm2"))
    return np.asarray(0.5 * motion / (motion + MOTION_HALF) + 0.5 * np.clip(detail_lost, 0, 1))


@dataclass(frozen=True)
class Saliency:
    table: pa.Table
    missing: list[str]  # clips with no cached measurement


def materialize(table_path: Path, table: pa.Table, cache_dir: Path) -> Saliency:
    """One row per clip of ``table`` whose ``<clip_name>.json`` is in ``cache_dir``."""
    require_columns(table_path, table, ["clip_name"])
    out: dict[str, list[object]] = {field.name: [] for field in SCHEMA}
    missing = []
    for clip in (str(c) for c in table.column("clip_name").to_pylist()):
        path = cache_dir / f"{clip}.json"
        if not path.is_file():
            missing.append(clip)
            continue
        c = conspicuity(libvmaf.load(path))
        out["clip_name"].append(clip)
        out["saliency_mean"].append(round(float(c.mean()), 6))
        out["saliency_var"].append(round(float(c.var()), 6))
        out["saliency_peak_fraction"].append(round(float(np.mean(c > c.mean() + c.std())), 6))
        out["saliency_frames"].append(len(c))
    return Saliency(pa.table(out, schema=SCHEMA), missing)
