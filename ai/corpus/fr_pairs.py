"""KoNViD-1k synthetic-distortion FR pairs: each clip against its own CRF encode, per frame.

A pair's key is ``<clip>__crf<N>``, so its content (the part before ``__``) is the source
clip. libvmaf results come from the cache; on a miss the vmaf binary reads the decoded
reference ``decoded/<clip>.yuv`` and its decoded encode ``decoded/<clip>__crf<N>.yuv``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from ai.common.files import InputError
from ai.features.libvmaf import Cache, Pair
from ai.features.tables import per_frame_schema

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm")


def select_clips(root: Path, max_clips: int | None) -> list[str]:
    """The clip IDs under ``root/videos`` in name order, the first ``max_clips`` of them."""
    videos = root / "videos"
    if not videos.is_dir():
        raise InputError(f"{root}: no such folder, or no videos/ in it")
    clips = sorted(p.stem for p in videos.iterdir() if p.suffix in VIDEO_SUFFIXES)
    if not clips:
        raise InputError(f"{videos}: no clips ({', '.join(VIDEO_SUFFIXES)})")
    return clips if max_clips is None else clips[:max_clips]


def pair_of(root: Path, clip: str, crf: int, width: int, height: int) -> Pair:
    decoded = root / "decoded"
    key = f"{clip}__crf{crf}"
    return Pair(key, decoded / f"{clip}.yuv", decoded / f"{key}.yuv", width, height)


@dataclass
class Extraction:
    table: pa.Table
    processed: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)


def extract(
    clips: Sequence[str], pairs: Sequence[Pair], cache: Cache, features: Sequence[str]
) -> Extraction:
    """One row per frame of every pair; a pair that fails is left out and named."""
    schema = per_frame_schema(features)
    columns: dict[str, list[object]] = {name: [] for name in schema.names}
    processed, failed = [], []
    for clip, pair in zip(clips, pairs, strict=True):
        try:
            result = cache.get(pair, features)
            values = {name: result.feature(name) for name in features}
        except InputError as err:
            failed.append({"clip": clip, "error": str(err)})
            continue
        frames = len(result.frames)
        columns["key"] += [pair.key] * frames
        columns["frame_index"] += list(range(frames))
        for name in features:
            columns[name] += values[name]
        columns["vmaf"] += result.frame_vmaf()
        processed.append(clip)
    return Extraction(pa.Table.from_pydict(columns, schema=schema), processed, failed)
