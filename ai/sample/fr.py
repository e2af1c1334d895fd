"""Sample tables for the FR regressor ensemble: canonical-6, VMAF and the codec of each frame.

Each source is encoded by every codec at a few CRFs; quality falls with CRF, and each codec
sits a little above or below the others at equal features (what the codec block learns). The
training and evaluation tables hold different sources.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ai.features.libvmaf import CANONICAL_6

if TYPE_CHECKING:  # the generator imports this module: its names are read at call time
    from ai.sample.generator import Tree

CODECS = ("x264", "x265", "libsvtav1", "libvpx-vp9")  # the ensemble's vocabulary v1
CODEC_BIAS = {"x264": -2.0, "x265": 0.0, "libsvtav1": 1.5, "libvpx-vp9": -1.0}
CRFS = (22, 30, 38)
FRAMES = 3


def _table(rng: np.random.Generator, sources: list[str]) -> pa.Table:
    from ai.sample.generator import feature_levels, vmaf_level

    columns: dict[str, list[object]] = {"source": [], "codec": [], "crf": []}
    columns.update({f: [] for f in CANONICAL_6})
    columns["vmaf"] = []
    for source in sources:
        base, motion = float(rng.uniform(0.6, 0.98)), float(rng.uniform(1.0, 16.0))
        for codec in CODECS:
            for crf in CRFS:
                quality = max(0.02, base - 0.018 * (crf - CRFS[0]))
                levels = feature_levels(quality, motion)
                for _ in range(FRAMES):
                    columns["source"].append(source)
                    columns["codec"].append(codec)
                    columns["crf"].append(crf)
                    for name in CANONICAL_6:
                        spread = 0.004 * abs(levels[name]) + 0.002
                        columns[name].append(round(levels[name] + rng.normal(0, spread), 6))
                    vmaf = vmaf_level(quality, motion) + CODEC_BIAS[codec] + rng.normal(0, 1.0)
                    columns["vmaf"].append(round(min(100.0, max(0.0, vmaf)), 6))
    return pa.table(columns)


def write_fr_tables(tree: Tree, rng: np.random.Generator) -> None:
    """``fr/ensemble_train.parquet`` (six sources) and ``fr/ensemble_eval.parquet`` (three)."""
    for name, sources in (
        ("ensemble_train", [f"fr_src{i:02d}" for i in range(6)]),
        ("ensemble_eval", [f"fr_src{i:02d}" for i in range(6, 9)]),
    ):
        table = _table(rng, sources)
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="zstd")
        tree.write(f"fr/{name}.parquet", buffer.getvalue())
        tree.counts[f"fr/{name}"] = table.num_rows
