"""NR threshold calibration: the no-reference score above which the full-reference VMAF can be
skipped (``--fast-nr``), judged on a corpus of encodes measured at every CRF of a grid.

Each encode's libvmaf JSON gives the NR model its inputs (the mean of each feature over the
frames) and the truth it is judged by (the pooled VMAF). The threshold is the lowest NR score
whose encodes at or above it meet the VMAF target at the required precision.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ai.common.files import InputError, read_json_object
from ai.features.libvmaf import FULL_FEATURES, load

_CRF = re.compile(r"(?:^|_)crf(\d+)(?:_|$)")


def actual_corpus(requested: Path) -> Path:
    """The folder of libvmaf JSON: ``requested/vmaf_cache`` when there is one, else itself."""
    if (requested / "vmaf_cache").is_dir():
        return requested / "vmaf_cache"
    if not requested.is_dir():
        raise InputError(f"{requested}: no such folder")
    return requested


def crf_of(stem: str) -> int | None:
    match = _CRF.search(stem)
    return int(match[1]) if match else None


@dataclass(frozen=True)
class NrModel:
    features: list[str]
    model_id: str | None


def read_model_sidecar(path: Path) -> NrModel:
    sidecar = read_json_object(path)
    features = sidecar.get("features")
    if (
        not isinstance(features, list)
        or not features
        or not all(isinstance(f, str) for f in features)
    ):
        raise InputError(f"{path}: no features list: not an ONNX model sidecar")
    model_id = sidecar.get("id")
    return NrModel(features, model_id if isinstance(model_id, str) else None)


@dataclass(frozen=True)
class Encodes:
    names: list[str]
    crfs: np.ndarray
    x: np.ndarray  # the NR model's inputs, one row per encode
    vmaf: np.ndarray
    zero_filled: list[str]  # inputs libvmaf does not measure, given as 0 as the trainer does
    skipped: int  # files at a CRF outside the grid


def read_encodes(folder: Path, crf_grid: Sequence[int], features: Sequence[str]) -> Encodes:
    files = sorted(folder.glob("*.json"))
    names, crfs, rows, vmaf = [], [], [], []
    zero_filled = [f for f in features if f not in FULL_FEATURES]
    skipped = 0
    for path in files:
        crf = crf_of(path.stem)
        if crf is None or crf not in crf_grid:
            skipped += 1
            continue
        result = load(path)
        rows.append(
            [0.0 if f in zero_filled else float(np.mean(result.feature(f))) for f in features]
        )
        names.append(path.stem)
        crfs.append(crf)
        vmaf.append(result.score())
    if not names:
        grid = ", ".join(map(str, crf_grid))
        raise InputError(f"{folder}: no libvmaf JSON of an encode at CRF {grid}")
    return Encodes(names, np.array(crfs), np.array(rows), np.array(vmaf), zero_filled, skipped)


@dataclass(frozen=True)
class Threshold:
    threshold: float | None
    precision: float | None
    recall: float | None
    skipped_fraction: float | None


def choose(nr: np.ndarray, vmaf: np.ndarray, target: float, min_precision: float) -> Threshold:
    """The lowest NR score t whose encodes with NR >= t meet ``target`` at ``min_precision``."""
    good = vmaf >= target
    best = Threshold(None, None, None, None)
    for t in sorted(set(np.round(nr, 6).tolist()), reverse=True):
        skip = np.round(nr, 6) >= t
        precision = float(good[skip].mean())
        if precision >= min_precision:
            recall = float((skip & good).sum() / good.sum()) if good.any() else 0.0
            best = Threshold(t, round(precision, 6), round(recall, 6), round(float(skip.mean()), 6))
    return best


def per_crf(encodes: Encodes, nr: np.ndarray, crf_grid: Sequence[int]) -> list[dict[str, Any]]:
    table = []
    for crf in crf_grid:
        at = encodes.crfs == crf
        count = int(at.sum())
        table.append(
            {
                "crf": crf,
                "encodes": count,
                "mean_nr": round(float(nr[at].mean()), 6) if count else None,
                "mean_vmaf": round(float(encodes.vmaf[at].mean()), 6) if count else None,
            }
        )
    return table


def markdown(document: dict[str, Any]) -> str:
    """The human report: the CRF grid's table and the chosen threshold."""
    lines = [
        f"# NR threshold calibration: {document['model']['path']}",
        "",
        f"Corpus: `{document['corpus']['actual']}` (requested `{document['corpus']['requested']}`),"
        f" {document['corpus']['encodes']} encodes. VMAF target {document['vmaf_target']:g},"
        f" precision at least {document['min_precision']:g}.",
        "",
        "| CRF | encodes | mean NR | mean VMAF |",
        "|---:|---:|---:|---:|",
    ]
    for row in document["per_crf"]:
        cells = [row["crf"], row["encodes"], row["mean_nr"], row["mean_vmaf"]]
        lines.append("| " + " | ".join("-" if c is None else f"{c:g}" for c in cells) + " |")
    t = document["threshold"]
    lines += [
        "",
        "No NR score meets the precision: no threshold." if t is None else
        f"Threshold {t:g}: precision {document['precision']:g}, recall {document['recall']:g}, "
        f"{document['skipped_fraction']:g} of the encodes skip the full-reference measure.",
        "",
        f"Gate: {'pass' if document['gate']['passed'] else 'FAIL'}.",
        "",
    ]  # fmt: skip
    return "\n".join(lines)
