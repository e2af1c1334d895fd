"""Per-frame canonical-6 tables for the vmaf_tiny family: nine Netflix sources and some UGC.

The fork trains its tiny models on a per-frame parquet with a ``source`` column (the Netflix
reference clip) and the six canonical libvmaf features with ``vmaf``; v5 adds a UGC table
with no ``corpus`` column. The chain's own Netflix table keys rows by distorted clip only, so
these two tables are written here, ready to read, from the same quality model as the rest of
the sample: each clip has a hidden quality, its features and its VMAF follow it, with noise.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ai.features.libvmaf import CANONICAL_6

if TYPE_CHECKING:
    from ai.sample.generator import Tree

NETFLIX_SOURCES = (
    "BigBuckBunny", "BirdsInCage", "CrowdRun", "ElFuente1", "ElFuente2", "FoxBird",
    "OldTownCross", "Seeking", "Tennis",
)  # fmt: skip
CONDITIONS = (0.25, 0.6, 0.92)  # the ladder's rungs, low to high quality
UGC_SOURCES = tuple(f"ugc_{i:03d}" for i in range(5))
FRAMES = 6


def _levels(quality: np.ndarray, motion: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "adm2": 0.70 + 0.29 * quality,
        **{f"vif_scale{s}": 0.25 + 0.12 * s + (0.55 - 0.08 * s) * quality for s in range(4)},
        "motion2": motion * 0.96,
    }


def _rows(rng: np.random.Generator, qualities: np.ndarray, motion: float) -> dict[str, list[float]]:
    """Per-frame features and VMAF for frames of the given hidden qualities."""
    motions = motion + rng.normal(0.0, 0.3, len(qualities))
    levels = _levels(qualities, motions)
    columns: dict[str, list[float]] = {}
    for name in CANONICAL_6:
        noisy = levels[name] * (1.0 + rng.normal(0.0, 0.004, len(qualities)))
        columns[name] = [round(float(v), 6) for v in noisy]
    noise = rng.normal(0.0, 1.5, len(qualities))
    vmaf = np.clip(8.0 + 90.0 * qualities - 0.15 * motions + noise, 0.0, 100.0)
    columns["vmaf"] = [round(float(v), 6) for v in vmaf]
    return columns


def _parquet(columns: dict[str, list[object]]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer, compression="zstd")
    return buffer.getvalue()


def write_tiny(tree: Tree, rng: np.random.Generator) -> None:
    """``tiny/netflix_frames.parquet`` (source, corpus, frame_index, canonical-6, vmaf) and
    ``tiny/ugc_frames.parquet`` (source, canonical-6, vmaf: no corpus column, as the fork's)."""
    netflix: dict[str, list[object]] = {"source": [], "corpus": [], "frame_index": []}
    for source in NETFLIX_SOURCES:
        motion = float(rng.uniform(2.0, 16.0))
        offset = float(rng.normal(0.0, 0.03))
        for quality in CONDITIONS:
            q = np.clip(quality + offset + rng.normal(0.0, 0.02, FRAMES), 0.0, 1.0)
            for name, values in _rows(rng, q, motion).items():
                netflix.setdefault(name, []).extend(values)
            netflix["source"] += [source] * FRAMES
            netflix["corpus"] += ["netflix"] * FRAMES
            netflix["frame_index"] += list(range(FRAMES))
    ugc: dict[str, list[object]] = {"source": []}
    for source in UGC_SOURCES:
        q = rng.uniform(0.1, 0.95, 2 * FRAMES)
        for name, values in _rows(rng, q, float(rng.uniform(1.0, 20.0))).items():
            ugc.setdefault(name, []).extend(values)
        ugc["source"] += [source] * len(q)
    tree.write("tiny/netflix_frames.parquet", _parquet(netflix))
    tree.write("tiny/ugc_frames.parquet", _parquet(ugc))
    tree.counts["tiny/netflix_frames"] = len(netflix["source"])
    tree.counts["tiny/ugc_frames"] = len(ugc["source"])
