"""Per-codec 5-fold source-grouped CV of the predictor on real encode-grid JSONL corpora.

Rows of one codec (``encoder``), with a finite ``vmaf_score`` (else ``vmaf``) and a zero
``exit_status``, are grouped by source (``src``, else ``source``, else the corpus file); the
sorted sources are shuffled with ``random.Random(seed)`` and dealt round-robin into 5 folds.
The gate (ADR-0303): mean fold PLCC at least 0.95, fold PLCC spread at most 0.005, every fold
at least 0.95.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.files import finite_or_none
from ai.mos.mos_head import plcc, rankdata
from ai.predictor.model import project, train

CODECS = (
    "libx264",
    "libx265",
    "libsvtav1",
    "libaom-av1",
    "libvvenc",
    "h264_nvenc",
    "hevc_nvenc",
    "av1_nvenc",
    "h264_amf",
    "hevc_amf",
    "av1_amf",
    "h264_qsv",
    "hevc_qsv",
    "av1_qsv",
)
FOLDS = 5
GATE: dict[str, Any] = {
    "mean_plcc_threshold": 0.95,
    "plcc_spread_max": 0.005,
    "per_fold_min": 0.95,
    "loso_fold_count": FOLDS,
    "adr": "ADR-0303",
}
SYNTHETIC = "<synthetic-smoke>"
SYNTHETIC_ROWS = 200


def discover(roots: Iterable[Path]) -> list[Path]:
    """Every ``*.jsonl`` under each root that exists, sorted per root; missing roots skipped."""
    found: list[Path] = []
    for root in roots:
        if root.is_dir():
            found += sorted(p for p in root.rglob("*.jsonl") if p.is_file())
    return found


@dataclass
class Rows:
    x: list[list[float]] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    files: dict[str, int] = field(default_factory=dict)  # corpus file -> rows kept

    def add(self, row: dict[str, Any], target: float, corpus: str) -> None:
        self.x.append(project(row))
        self.y.append(target)
        source = row.get("src") or row.get("source") or corpus
        self.sources.append(str(source))
        self.files[corpus] = self.files.get(corpus, 0) + 1


def _target(row: dict[str, Any]) -> float | None:
    value = row.get("vmaf_score", row.get("vmaf"))
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def load_rows(files: Sequence[Path], codecs: Sequence[str]) -> dict[str, Rows]:
    """Each codec's usable rows; bad JSON lines and rows of a failed encode are skipped."""
    by_codec = {codec: Rows() for codec in codecs}
    for path in files:
        with path.open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if not isinstance(row, dict) or row.get("encoder") not in by_codec:
                    continue
                status = row.get("exit_status", 0)
                if status not in (0, None):
                    continue
                target = _target(row)
                if target is not None:
                    by_codec[row["encoder"]].add(row, target, str(path))
    return by_codec


def synthetic_rows(codecs: Sequence[str], seed: int) -> dict[str, Rows]:
    """``SYNTHETIC_ROWS`` generated rows per codec over six sources, for a smoke run."""
    from ai.predictor.corpus import synthetic_row  # the sample's generator: not needed otherwise

    out = {}
    for k, codec in enumerate(codecs):
        rng = np.random.default_rng([seed, k])
        rows = Rows()
        for i in range(SYNTHETIC_ROWS):
            crf = int(rng.integers(18, 52))
            row = synthetic_row(rng, codec, i % 6, crf)
            row["src"] = f"synthetic_src_{i % 6:02d}"
            rows.add(row, float(row["vmaf_score"]), SYNTHETIC)
        out[codec] = rows
    return out


def folds_of(sources: Sequence[str], seed: int) -> list[list[str]]:
    """Sorted distinct sources, shuffled with ``random.Random(seed)``, dealt into 5 buckets."""
    distinct = sorted(set(sources))
    random.Random(seed).shuffle(distinct)
    buckets: list[list[str]] = [[] for _ in range(FOLDS)]
    for i, source in enumerate(distinct):
        buckets[i % FOLDS].append(source)
    return buckets


def metrics(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """PLCC, SROCC (average-tie ranks) and RMSE; none for no rows, perfect for one."""
    if len(truth) == 0:
        return 0.0, 0.0, math.nan
    rmse = float(np.sqrt(np.mean((pred - truth) ** 2)))
    if len(truth) == 1:
        return 1.0, 1.0, rmse
    return plcc(pred, truth), plcc(rankdata(pred), rankdata(truth)), rmse


def evaluate(codec: str, rows: Rows, *, epochs: int, seed: int) -> dict[str, Any]:
    """One codec's entry of the report: its folds, means, status and failure reasons."""
    n_sources = len(set(rows.sources))
    entry: dict[str, Any] = {
        "codec": codec,
        "n_rows_total": len(rows.y),
        "n_distinct_sources": n_sources,
        "corpus_provenance": [{"path": p, "rows": n} for p, n in sorted(rows.files.items())],
        "folds": [],
        "mean_plcc": None,
        "plcc_spread": None,
        "mean_srocc": None,
        "mean_rmse": None,
        "failure_reasons": [],
    }
    if not rows.y:
        return {**entry, "status": "missing-rows", "failure_reasons": ["no rows for this codec"]}
    if n_sources < FOLDS:
        reason = f"{n_sources} distinct sources: {FOLDS} folds need at least {FOLDS}"
        return {**entry, "status": "insufficient-sources", "failure_reasons": [reason]}
    x, y = np.asarray(rows.x), np.asarray(rows.y)
    sources = np.asarray(rows.sources)
    folds: list[dict[str, Any]] = []
    for i, held in enumerate(folds_of(rows.sources, seed)):
        val = np.isin(sources, held)
        model = train(x[~val], y[~val], epochs=epochs, seed=seed + i)
        p, s, r = metrics(model.predict(x[val])[:, 0], y[val])
        folds.append(
            {
                "fold_index": i,
                "held_out_sources": sorted(held),
                "plcc": round(p, 6),
                "srocc": round(s, 6),
                "rmse": finite_or_none(round(r, 6)),
                "n_train": int((~val).sum()),
                "n_val": int(val.sum()),
            }
        )
    plccs = [f["plcc"] for f in folds]
    rmses = [f["rmse"] for f in folds if f["rmse"] is not None]
    mean_plcc = round(float(np.mean(plccs)), 6)
    spread = round(max(plccs) - min(plccs), 6)
    reasons = []
    if mean_plcc < GATE["mean_plcc_threshold"]:
        reasons.append(f"mean PLCC {mean_plcc:.4f} < {GATE['mean_plcc_threshold']}")
    if spread > GATE["plcc_spread_max"]:
        reasons.append(f"PLCC spread {spread:.4f} > {GATE['plcc_spread_max']}")
    low = [f["fold_index"] for f in folds if f["plcc"] < GATE["per_fold_min"]]
    if low:
        reasons.append(f"fold(s) {low} PLCC < {GATE['per_fold_min']}")
    return {
        **entry,
        "status": "fail" if reasons else "pass",
        "folds": folds,
        "mean_plcc": mean_plcc,
        "plcc_spread": spread,
        "mean_srocc": round(float(np.mean([f["srocc"] for f in folds])), 6),
        "mean_rmse": round(float(np.mean(rmses)), 6) if rmses else None,
        "failure_reasons": reasons,
    }


def summary(codecs: Sequence[dict[str, Any]]) -> dict[str, int]:
    def count(status: str) -> int:
        return sum(1 for c in codecs if c["status"] == status)

    return {
        "n_pass": count("pass"),
        "n_fail": count("fail"),
        "n_insufficient": count("insufficient-sources"),
        "n_missing_rows": count("missing-rows"),
    }
