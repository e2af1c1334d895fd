"""BVI-DVC: cached libvmaf JSON reshaped into encode-grid corpus rows (schema v3).

The cache holds what libvmaf measured, not how the encode was made, so every v3 key the cache
cannot answer is written as null and listed in the manifest as unavailable.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ai.common.files import InputError
from ai.corpus.corpora import CORPUS_ROW_KEYS, SCHEMA_VERSION, VMAF_STAT_FEATURES
from ai.features.libvmaf import VmafResult

# Name_1920x1080_60fps[_encoder][_preset][_crfNN]
_STEM = re.compile(
    r"^(?P<name>.+?)_(?P<w>\d+)x(?P<h>\d+)_(?P<fps>\d+(?:\.\d+)?)fps(?:_(?P<rest>.+))?$"
)
_CRF = re.compile(r"^crf(\d+)$")
ENCODERS = frozenset({"libx264", "libx265", "libsvtav1", "libaom-av1", "libvpx-vp9", "libvvenc"})
SOURCE_SUFFIXES = (".yuv", ".y4m", ".mp4", ".mkv")


@dataclass(frozen=True)
class Stem:
    source: str
    width: int
    height: int
    fps: float
    encoder: str | None
    preset: str | None
    crf: int | None


def parse_stem(stem: str) -> Stem:
    match = _STEM.match(stem)
    if match is None:
        raise InputError(f"{stem!r}: not a BVI-DVC stem like Name_1920x1080_60fps_...")
    encoder = preset = crf = None
    for token in (match["rest"] or "").split("_"):
        crf_match = _CRF.match(token)
        if crf_match:
            crf = int(crf_match[1])
        elif token in ENCODERS:
            encoder = token
        elif token and encoder is not None and preset is None:
            preset = token
    source = f"{match['name']}_{match['w']}x{match['h']}_{match['fps']}fps"
    return Stem(source, int(match["w"]), int(match["h"]), float(match["fps"]), encoder, preset, crf)


def find_source(root: Path, name: str) -> Path | None:
    return next((root / (name + s) for s in SOURCE_SUFFIXES if (root / (name + s)).is_file()), None)


def corpus_row(stem: Stem, result: VmafResult, source: Path, source_sha256: str) -> dict[str, Any]:
    """Every v3 key: measured where the cache says, null where it cannot."""
    row: dict[str, Any] = dict.fromkeys(CORPUS_ROW_KEYS)
    frames = len(result.frames)
    row.update(
        schema_version=SCHEMA_VERSION,
        src=source.as_posix(),
        src_sha256=source_sha256,
        width=stem.width,
        height=stem.height,
        framerate=stem.fps,
        duration_s=round(frames / stem.fps, 6),
        encoder=stem.encoder,
        preset=stem.preset,
        crf=stem.crf,
        vmaf_score=round(result.score(), 6),
        vmaf_binary_version=result.version,
        exit_status=0,
    )
    for feature in VMAF_STAT_FEATURES:
        try:
            values = result.feature(feature)
        except InputError:
            continue  # the cache did not measure it: stays null
        row[f"{feature}_mean"] = round(statistics.fmean(values), 6)
        row[f"{feature}_std"] = round(statistics.pstdev(values), 6)
    return row
