"""Encode-grid rows for the predictor: the sample's per-codec corpora and the smoke rows.

A source has a fixed complexity in [0.3, 1]: harder content costs more bits at a CRF and
scores a lower VMAF, and its ``motion2_mean`` shows it, so a predictor can learn both.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from ai.corpus.corpora import synthetic_encode_row

STAMP = "2026-05-01T00:00:00Z"  # fixed: the rows must not depend on the clock


def complexity(source: int) -> float:
    return 0.3 + 0.7 * ((source * 0.618034) % 1.0)


def synthetic_row(rng: np.random.Generator, codec: str, source: int, crf: int) -> dict[str, Any]:
    """One full v3 corpus row of ``codec`` encoding source number ``source`` at ``crf``."""
    c = complexity(source)
    size = int(3_000_000 * (0.5 + c) * 2 ** (-(crf - 18) / 6))
    z = 5.2 - 0.13 * (crf - 18) - 1.6 * c + float(rng.normal(0.0, 0.03))
    vmaf = 100.0 / (1.0 + math.exp(-z))
    src = f"sources/pred{source:02d}.y4m"
    row = synthetic_encode_row(
        run_id=f"predictor-{codec}",
        timestamp=STAMP,
        src=src,
        src_sha256=hashlib.sha256(src.encode()).hexdigest(),
        encoder=codec,
        crf=crf,
        encode_path=f"encodes/pred{source:02d}_{codec}_crf{crf}.mp4",
        encode_size_bytes=size,
        bitrate_kbps=round(size * 8 / 10.0 / 1000.0, 3),
        encode_time_ms=int(rng.integers(800, 9000)),
        vmaf_score=round(vmaf, 4),
        score_time_ms=int(rng.integers(300, 2000)),
    )
    for feature in ("adm2", "vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3"):
        row[f"{feature}_mean"] = round(min(1.0, vmaf / 100.0 + 0.02), 6)
        row[f"{feature}_std"] = round(abs(float(rng.normal(0.01, 0.003))), 6)
    row["motion2_mean"] = round(2.0 + 14.0 * c, 6)
    row["motion2_std"] = round(abs(float(rng.normal(0.5, 0.1))), 6)
    qp = crf + float(rng.normal(0.0, 0.3))
    row.update(
        enc_internal_qp_mean=round(qp, 3),
        enc_internal_qp_std=round(abs(float(rng.normal(1.0, 0.2))), 3),
        enc_internal_bits_mean=round(size / 300.0, 3),
        enc_internal_bits_std=round(size / 3000.0, 3),
        enc_internal_mv_mean=round(1.0 + 4.0 * c, 3),
        enc_internal_mv_std=round(0.5 + c, 3),
        enc_internal_itex_mean=round(size / 900.0, 3),
        enc_internal_ptex_mean=round(size / 1800.0, 3),
        enc_internal_intra_ratio=round(0.05 + 0.1 * c, 4),
        enc_internal_skip_ratio=round(max(0.0, 0.6 - 0.4 * c + 0.005 * (crf - 18)), 4),
    )
    return row
