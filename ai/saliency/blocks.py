"""Block-level (macroblock / CTU) IoU between predicted and ground-truth saliency masks.

Masks are ``.npy`` (any 2-D numeric array) or ``.pgm`` (P2 or P5, 8- or 16-bit), paired by
file stem. A mask must be 2-D and finite; one whose maximum exceeds 1 is divided by it, then
clipped to [0, 1]. Both are cropped to whole blocks; a block whose mean reaches the threshold
is salient.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ai.common.files import InputError
from ai.saliency.images import decode_pgm

SUFFIXES = (".npy", ".pgm")


def read_mask(path: Path) -> np.ndarray:
    try:
        if path.suffix == ".npy":
            mask = np.load(path, allow_pickle=False)
        else:
            mask = decode_pgm(path.read_bytes())
    except (OSError, ValueError) as err:
        raise InputError(f"{path}: not a readable mask: {err}") from None
    if mask.ndim != 2 or not np.issubdtype(mask.dtype, np.number):
        raise InputError(f"{path}: a mask must be a 2-D numeric array, not {mask.shape}")
    mask = mask.astype(np.float64)
    if not np.all(np.isfinite(mask)):
        raise InputError(f"{path}: the mask holds a value that is not finite")
    if mask.size and mask.max() > 1.0:
        mask = mask / mask.max()
    return np.asarray(np.clip(mask, 0.0, 1.0))


def pairs(pred_dir: Path, gt_dir: Path) -> list[tuple[str, Path, Path]]:
    """``(stem, prediction, ground truth)``: predictions taken .npy first then .pgm, sorted."""
    for folder in (pred_dir, gt_dir):
        if not folder.is_dir():
            raise InputError(f"{folder}: no such folder")
    found: dict[str, tuple[str, Path, Path]] = {}
    for suffix in SUFFIXES:
        for pred in sorted(pred_dir.glob(f"*{suffix}")):
            if pred.stem in found:
                continue
            truth = next((gt_dir / f"{pred.stem}{s}" for s in SUFFIXES
                          if (gt_dir / f"{pred.stem}{s}").is_file()), None)  # fmt: skip
            if truth is not None:
                found[pred.stem] = (pred.stem, pred, truth)
    if not found:
        raise InputError(f"{pred_dir}: no prediction has a ground-truth mask in {gt_dir}")
    return list(found.values())


def salient_blocks(mask: np.ndarray, block: int, threshold: float) -> np.ndarray:
    rows, cols = mask.shape[0] // block, mask.shape[1] // block
    cropped = mask[: rows * block, : cols * block]
    means = cropped.reshape(rows, block, cols, block).mean(axis=(1, 3))
    return np.asarray(means >= threshold)


def evaluate(found: list[tuple[str, Path, Path]], block: int, threshold: float) -> dict[str, Any]:
    """The report: per-pair rows, their mean IoU (macro) and the pooled IoU (micro)."""
    if block <= 0:
        raise InputError(f"--block-size {block}: must be positive")
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"--threshold {threshold}: must be in [0, 1]")
    rows = []
    inter_total = union_total = 0
    for stem, pred_path, gt_path in found:
        pred, truth = read_mask(pred_path), read_mask(gt_path)
        if pred.shape != truth.shape:
            raise InputError(f"{pred_path}: {pred.shape} does not match {gt_path}: {truth.shape}")
        if pred.shape[0] < block or pred.shape[1] < block:
            raise InputError(f"{pred_path}: {pred.shape} is smaller than one {block}-pixel block")
        p, g = salient_blocks(pred, block, threshold), salient_blocks(truth, block, threshold)
        inter, union = int((p & g).sum()), int((p | g).sum())
        inter_total, union_total = inter_total + inter, union_total + union
        rows.append({
            "stem": stem,
            "pred_path": str(pred_path),
            "gt_path": str(gt_path),
            "width": int(pred.shape[1]),
            "height": int(pred.shape[0]),
            "block_size": block,
            "pred_blocks": int(p.sum()),
            "gt_blocks": int(g.sum()),
            "intersection_blocks": inter,
            "union_blocks": union,
            "iou": inter / union if union else 1.0,
        })  # fmt: skip
    return {
        "schema_version": 1,
        "block_size": block,
        "threshold": threshold,
        "n_pairs": len(rows),
        "macro_iou": float(np.mean([r["iou"] for r in rows])),
        "micro_iou": inter_total / union_total if union_total else 1.0,
        "rows": rows,
    }
