"""A deterministic, seeded generator of a small corpus in the formats the ai/ scripts read.

Every clip has a hidden quality in [0, 1]. Its libvmaf features and its MOS both follow that
quality, with per-clip and per-frame noise, so a MOS head trained on the features clears the
synthetic gate without being perfect. Videos are stand-ins: a few KiB of seeded bytes with the
names, sizes and hashes the JSONL rows point at; what libvmaf measured lives in the cache.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ai.corpus.corpora import synthetic_encode_row
from ai.features.libvmaf import FULL_FEATURES, metric_keys
from ai.sample.dnn import write_dnn
from ai.sample.evaluation import write_netflix_loso
from ai.sample.fr import write_fr_tables
from ai.sample.predictor import write_predictor_corpora
from ai.sample.quantization import write_quantization
from ai.sample.saliency import write_saliency
from ai.sample.tiny import write_tiny

INGESTED_AT = "2026-05-01T00:00:00Z"  # a fixed stamp: the sample must not depend on the clock
VMAF_VERSION = "3.0.0"
STAND_IN_BYTES = 4096


@dataclass
class Tree:
    """Files written under a temporary root, moved into place whole when complete."""

    root: Path
    files: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def write(self, relative: str, data: bytes) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.files += 1
        return path

    def text(self, relative: str, text: str) -> Path:
        return self.write(relative, text.encode("utf-8"))

    def jsonl(self, relative: str, rows: Iterable[Mapping[str, Any]]) -> Path:
        return self.text(relative, "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))

    def json(self, relative: str, document: Mapping[str, Any]) -> Path:
        return self.text(relative, json.dumps(document, indent=2, allow_nan=False) + "\n")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _r(value: float, digits: int = 6) -> float:
    return round(float(value), digits)


# -- what libvmaf would measure ----------------------------------------------------------------


def feature_levels(quality: float, motion: float) -> dict[str, float]:
    """Clip-level values of every FULL feature for a clip of ``quality`` and ``motion``."""
    q = quality
    levels = {
        "adm2": 0.70 + 0.29 * q,
        "psnr_y": 27.0 + 19.0 * q,
        "float_ssim": 0.86 + 0.135 * q,
        "float_ms_ssim": 0.84 + 0.155 * q,
        "cambi": 4.5 * (1.0 - q) ** 1.5,
        "ciede2000": 30.0 + 16.0 * q,
        "psnr_hvs": 29.0 + 17.0 * q,
        "ssimulacra2": 15.0 + 75.0 * q,
        "motion": motion,
        "motion2": motion * 0.96,
        "motion3": motion * 0.93,
    }
    for scale in range(4):
        levels[f"adm_scale{scale}"] = 0.78 + 0.05 * scale + (0.2 - 0.04 * scale) * q
        levels[f"vif_scale{scale}"] = 0.25 + 0.12 * scale + (0.55 - 0.08 * scale) * q
    levels["psnr_cb"] = levels["psnr_y"] + 3.0
    levels["psnr_cr"] = levels["psnr_y"] + 4.0
    return levels


def vmaf_level(quality: float, motion: float) -> float:
    return min(100.0, max(0.0, 8.0 + 90.0 * quality - 0.15 * motion))


def libvmaf_document(
    rng: np.random.Generator,
    quality: float,
    motion: float,
    frames: int,
    features: Sequence[str] = FULL_FEATURES,
    *,
    pooled: bool = True,
) -> dict[str, Any]:
    """A libvmaf JSON document (``vmaf --json``) for one clip, per-frame noise included."""
    levels = feature_levels(quality, motion)
    # Content the model cannot see: each clip sits a little off the quality trend.
    levels = {k: v + rng.normal(0.0, 0.012 * abs(v) + 0.001) for k, v in levels.items()}
    per_frame: list[dict[str, Any]] = []
    for number in range(frames):
        metrics = {}
        for name in features:
            spread = 0.004 * abs(levels[name]) + 0.002
            metrics[metric_keys(name)[0]] = _r(levels[name] + rng.normal(0.0, spread))
        metrics["vmaf"] = _r(min(100.0, max(0.0, vmaf_level(quality, motion) + rng.normal(0, 1.5))))
        per_frame.append({"frameNum": number, "metrics": metrics})
    document: dict[str, Any] = {"version": VMAF_VERSION, "frames": per_frame}
    if pooled:
        document["pooled_metrics"] = {
            key: _pool([f["metrics"][key] for f in per_frame]) for key in per_frame[0]["metrics"]
        }
    document["aggregate_metrics"] = {}
    return document


def _pool(values: list[float]) -> dict[str, float]:
    array = np.array(values)
    harmonic = len(array) / np.sum(1.0 / (array + 1.0)) - 1.0
    return {
        "min": _r(array.min()),
        "max": _r(array.max()),
        "mean": _r(array.mean()),
        "harmonic_mean": _r(harmonic),
    }


def acr_mos(rng: np.random.Generator, quality: float, motion: float) -> float:
    """MOS on 1-5: mostly quality, a little dislike of motion, and rater noise."""
    raw = 1.15 + 3.7 * quality + 0.25 * (quality - 0.5) ** 2 - 0.012 * (motion - 8.0)
    return float(np.clip(raw + rng.normal(0.0, 0.12), 1.0, 5.0))


# -- the corpus --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clip:
    name: str
    quality: float
    motion: float
    fps: float
    width: int
    height: int
    hdr: bool


def _clips(rng: np.random.Generator, names: Sequence[str], *, hdr: bool) -> list[Clip]:
    rates = (24.0, 25.0, 30.0, 30.0, 50.0, 60.0, 15.0)
    sizes = ((1920, 1080), (1280, 720), (960, 540), (3840, 2160))
    clips = []
    for name in names:
        width, height = sizes[int(rng.integers(len(sizes)))]
        clips.append(
            Clip(
                name,
                float(rng.uniform(0.02, 0.98)),
                float(rng.uniform(0.5, 18.0)),
                rates[int(rng.integers(len(rates)))],
                width,
                height,
                hdr,
            )
        )
    return clips


def _ladder(rng: np.random.Generator, contents: int, rungs: Sequence[str]) -> list[Clip]:
    """CHUG-style: each content encoded at several rungs; quality falls down the ladder."""
    clips = []
    for c in range(contents):
        base, motion = float(rng.uniform(0.45, 0.98)), float(rng.uniform(0.5, 18.0))
        fps = (24.0, 30.0, 60.0)[c % 3]
        for step, rung in enumerate(rungs):
            quality = max(0.02, base - step * float(rng.uniform(0.1, 0.18)))
            clips.append(Clip(f"chug_c{c:02d}__{rung}.mp4", quality, motion, fps, 3840, 2160, True))
    return clips


def mos_row(
    clip: Clip, corpus: str, mos: float, std: float, sha: str, ratings: int
) -> dict[str, Any]:
    return {
        "src": f"{corpus}/videos/{clip.name}",
        "src_sha256": sha,
        "src_size_bytes": STAND_IN_BYTES,
        "width": clip.width,
        "height": clip.height,
        "framerate": clip.fps,
        "duration_s": 8.0,
        "pix_fmt": "yuv420p10le" if clip.hdr else "yuv420p",
        "encoder_upstream": "h264" if not clip.hdr else "hevc",
        "mos": _r(mos, 4),
        "mos_std_dev": _r(std, 4),
        "n_ratings": ratings,
        "corpus": corpus,
        "corpus_version": "sample-1",
        "ingested_at_utc": INGESTED_AT,
    }


def metadata_row(clip: Clip, corpus: str) -> dict[str, Any]:
    return {
        "src": f"{corpus}/videos/{clip.name}",
        "width": clip.width,
        "height": clip.height,
        "framerate": clip.fps,
        "pix_fmt": "yuv420p10le" if clip.hdr else "yuv420p",
        "color_transfer": "smpte2084" if clip.hdr else "bt709",
        # An HDR stream also names its primaries and its mastering display's peak (cd/m2).
        **({"color_primaries": "bt2020", "max_luminance": 1000.0} if clip.hdr else {}),
    }


def _scores_csv(rows: Iterable[tuple[str, float]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["clip_name", "mos"])
    writer.writerows((name, f"{mos:.4f}") for name, mos in rows)
    return buffer.getvalue()


def _stand_in(rng: np.random.Generator) -> bytes:
    return rng.integers(0, 256, STAND_IN_BYTES, dtype=np.uint8).tobytes()


ACR_STD, DCR_STD = (0.3, 0.8), (5.0, 15.0)  # published rating spreads, per scale


def _rated(rng: np.random.Generator, clips: Sequence[Clip], corpus: str, std: tuple[float, float],
           ratings: int, *, on_100: bool = False, shas: Mapping[str, str] | None = None
           ) -> list[dict[str, Any]]:  # fmt: skip
    """MOS rows for ``clips``: ACR 1-5, or 0-100 when ``on_100``; a new digest unless given."""
    rows = []
    for clip in clips:
        mos = acr_mos(rng, clip.quality, clip.motion)
        spread = float(rng.uniform(*std))
        sha = shas[clip.name] if shas is not None else _sha256(_stand_in(rng))
        rows.append(mos_row(clip, corpus, (mos - 1) * 25 if on_100 else mos, spread, sha, ratings))
    return rows


def write_mos_shards(tree: Tree, rng: np.random.Generator) -> None:
    """Per-corpus MOS JSONL on native scales, with the overlaps and strays real ingests have."""
    konvid = _clips(rng, [f"konvid_{i:04d}.mp4" for i in range(40)], hdr=False)
    shas = {c.name: _sha256(_stand_in(rng)) for c in konvid}
    konvid_rows = _rated(rng, konvid, "konvid-1k", ACR_STD, 50, shas=shas)
    lsvq = _clips(rng, [f"lsvq_{i:05d}.mp4" for i in range(34)], hdr=False)
    lsvq_rows = _rated(rng, lsvq, "lsvq", ACR_STD, 35)
    # LSVQ re-rated six KoNViD-1k videos: the same bytes, another corpus, another spread.
    for clip in konvid[:6]:
        std = 0.0 if clip is konvid[0] else float(rng.uniform(0.2, 0.9))
        lsvq_rows.append(
            mos_row(clip, "lsvq", acr_mos(rng, clip.quality, clip.motion), std, shas[clip.name], 30)
        )
    lsvq_rows.append({**lsvq_rows[3], "n_ratings": 12})  # ingested twice
    lsvq_rows.append({**lsvq_rows[4], "mos": 5.03, "src_sha256": _sha256(b"edge")})  # in tolerance
    lsvq_rows.append({**lsvq_rows[5], "mos": 5.4, "src_sha256": _sha256(b"off")})  # off the scale
    waterloo = _clips(rng, [f"waterloo_{i:03d}.mp4" for i in range(20)], hdr=False)
    waterloo_rows = _rated(rng, waterloo, "waterloo-ivc-4k", DCR_STD, 24, on_100=True)
    chug = _ladder(rng, 5, ("1080p_4000k", "720p_1500k"))
    chug_rows = _rated(rng, chug, "chug", DCR_STD, 20, on_100=True)
    ugc = _clips(rng, [f"ugc_{i:04d}.mp4" for i in range(15)], hdr=False)
    ugc_rows = _rated(rng, ugc, "ugc", ACR_STD, 40)
    for name, rows in (
        ("konvid-1k", konvid_rows),
        ("lsvq", lsvq_rows),
        ("waterloo-ivc-4k", waterloo_rows),
        ("chug", chug_rows),
        ("ugc-misc", ugc_rows),
    ):
        tree.jsonl(f"mos/{name}.jsonl", rows)
        tree.counts[f"mos/{name}"] = len(rows)


def write_per_clip_corpus(
    tree: Tree,
    rng: np.random.Generator,
    corpus: str,
    clips: list[Clip],
    features: Sequence[str],
    mos_scale: str,
    *,
    lagging: bool = False,
    shard: str | None = None,
) -> None:
    """A scores CSV, a metadata JSONL (``lagging``: a few clips missing) and a libvmaf cache;
    with ``shard``, the scores also as that corpus's MOS JSONL."""
    scores = []
    for clip in clips:
        mos = acr_mos(rng, clip.quality, clip.motion)
        scores.append((clip.name, (mos - 1) * 25 if mos_scale == "0-100" else mos))
        tree.json(
            f"{corpus}/vmaf_cache/{clip.name}.json",
            libvmaf_document(rng, clip.quality, clip.motion, 6, features),
        )
    tree.text(f"{corpus}/scores.csv", _scores_csv(scores))
    if shard is not None:  # the same scores as one corpus's MOS shard, as its ingest wrote them
        by_name = dict(scores)
        rows = [mos_row(c, shard, by_name[c.name], 0.0, _sha256(c.name.encode()), 5) for c in clips]
        tree.jsonl(f"mos/{shard}.jsonl", rows)
        tree.counts[f"mos/{shard}"] = len(rows)
    described = [c for i, c in enumerate(clips) if not (lagging and i % 19 == 7)]
    tree.jsonl(f"{corpus}/metadata.jsonl", (metadata_row(c, corpus) for c in described))
    tree.counts[f"{corpus}/clips"] = len(clips)
    tree.counts[f"{corpus}/metadata_rows"] = len(described)


def write_netflix(tree: Tree, rng: np.random.Generator) -> None:
    """Raw YUV stand-ins for reference/distorted pairs and their per-frame libvmaf JSON."""
    contents = ("BigBuckBunny_25fps", "CrowdRun_25fps", "ElFuente1_30fps", "OldTownCross_25fps")
    conditions = (("20_288_375", 0.25), ("50_720_1050", 0.6), ("90_1080_4300", 0.92))
    for content in contents:
        tree.write(f"netflix/ref/{content}.yuv", _stand_in(rng))
        motion = float(rng.uniform(2.0, 16.0))
        for condition, quality in conditions:
            key = f"{content}__{condition}"
            tree.write(f"netflix/dis/{key}.yuv", _stand_in(rng))
            tree.json(f"netflix/vmaf_cache/{key}.json", libvmaf_document(rng, quality, motion, 8))
    tree.counts["netflix/pairs"] = len(contents) * len(conditions)


KONVID_CRF = 35
KONVID_VMAF_MODEL = "vmaf_v0.6.1.json"


def varying_document(
    rng: np.random.Generator, qualities: Sequence[float], motion: float
) -> dict[str, Any]:
    """A libvmaf JSON document whose quality changes from frame to frame, as scenes do."""
    per_frame: list[dict[str, Any]] = []
    for number, quality in enumerate(qualities):
        levels = feature_levels(quality, motion)
        metrics = {
            metric_keys(name)[0]: _r(levels[name] + rng.normal(0.0, 0.003 * abs(levels[name])))
            for name in FULL_FEATURES
        }
        metrics["vmaf"] = _r(min(100.0, max(0.0, vmaf_level(quality, motion) + rng.normal(0, 1.0))))
        per_frame.append({"frameNum": number, "metrics": metrics})
    pooled = {key: _pool([f["metrics"][key] for f in per_frame]) for key in per_frame[0]["metrics"]}
    return {"version": VMAF_VERSION, "frames": per_frame, "pooled_metrics": pooled}


def write_konvid(tree: Tree, rng: np.random.Generator) -> None:
    """KoNViD-1k clip stand-ins, the VMAF model, and the libvmaf cache of each clip against
    its CRF encode (the synthetic-distortion FR pairs)."""
    tree.json(f"konvid/{KONVID_VMAF_MODEL}", {"model_dict": {"model_type": "LIBSVMNUSVR"}})
    for index in range(12):
        clip = f"konvid_{index:04d}"
        tree.write(f"konvid/videos/{clip}.mp4", _stand_in(rng))
        base, motion = float(rng.uniform(0.3, 0.8)), float(rng.uniform(1.0, 16.0))
        phase = float(rng.uniform(0.0, 2 * np.pi))
        qualities = [
            float(np.clip(base + 0.22 * np.sin(phase + 0.7 * t), 0.02, 0.98)) for t in range(10)
        ]
        key = f"{clip}__crf{KONVID_CRF}"
        tree.json(f"konvid/vmaf_cache/{key}.json", varying_document(rng, qualities, motion))
    tree.counts["konvid/clips"] = 12


def write_bvi_dvc(tree: Tree, rng: np.random.Generator) -> None:
    sources = (
        "CampfireParty_1920x1080_30fps",
        "DaylightRoad_3840x2160_60fps",
        "Library_1920x1080_25fps",
        "TreesAndGrass_960x544_60fps",
    )
    for s, source in enumerate(sources):
        tree.write(f"bvi_dvc/sources/{source}.yuv", _stand_in(rng))
        motion = float(rng.uniform(2.0, 16.0))
        for c, crf in enumerate((22, 27, 32, 37)):
            quality = 0.95 - 0.2 * c + float(rng.normal(0, 0.02))
            stem = f"{source}_libx265_medium_crf{crf}"
            document = libvmaf_document(rng, quality, motion, 5, pooled=(s + c) % 5 != 0)
            tree.json(f"bvi_dvc/vmaf_cache/{stem}.json", document)
    tree.counts["bvi_dvc/cache_files"] = len(sources) * 4


def grid_row(
    rng: np.random.Generator, run_id: str, source: int, encoder: str, crf: int
) -> dict[str, Any]:
    quality = max(0.05, 0.98 - (crf - 18) * 0.03 + 0.03 * (source % 3))
    size = int(2_000_000 * 2 ** (-(crf - 18) / 6))
    levels = feature_levels(quality, 4.0 + source)
    row = synthetic_encode_row(
        run_id=run_id,
        timestamp=INGESTED_AT,
        src=f"sources/src{source:02d}.y4m",
        src_sha256=_sha256(f"src{source:02d}".encode()),
        encoder=encoder,
        crf=crf,
        encode_path=f"encodes/src{source:02d}_{encoder}_crf{crf}.mp4",
        encode_size_bytes=size,
        bitrate_kbps=_r(size * 8 / 10.0 / 1000.0, 3),
        encode_time_ms=int(rng.integers(800, 9000)),
        vmaf_score=_r(vmaf_level(quality, 4.0 + source)),
        score_time_ms=int(rng.integers(300, 2000)),
    )
    for feature in ("adm2", "vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3", "motion2"):
        row[f"{feature}_mean"] = _r(levels[feature])
        row[f"{feature}_std"] = _r(abs(rng.normal(0.01, 0.003)))
    for stat in (
        "qp_mean",
        "qp_std",
        "bits_mean",
        "bits_std",
        "mv_mean",
        "mv_std",
        "itex_mean",
        "ptex_mean",
        "intra_ratio",
        "skip_ratio",
    ):
        row[f"enc_internal_{stat}"] = _r(abs(rng.normal(crf if "qp" in stat else 1.0, 0.3)))
    return row


def write_grid(tree: Tree, rng: np.random.Generator) -> None:
    """Two vmaf-tune encode-grid shards that overlap on two sources."""
    for shard, sources in (("a", range(0, 5)), ("b", range(3, 8))):
        rows = [
            grid_row(rng, f"grid-{shard}", s, encoder, crf)
            for s in sources
            for encoder in ("libx264", "libsvtav1")
            for crf in (23, 31, 39)
        ]
        tree.jsonl(f"grid/shard_{shard}.jsonl", rows)
        tree.counts[f"grid/shard_{shard}"] = len(rows)


def generate(out: Path, seed: int) -> dict[str, int]:
    """Write the sample corpus to ``out`` (replacing it whole); returns what it wrote."""
    rng = np.random.default_rng(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tree = Tree(staging)
        write_mos_shards(tree, rng)
        k150k = _clips(rng, [f"k150k_{i:05d}.mp4" for i in range(600)], hdr=False)
        write_per_clip_corpus(
            tree, rng, "k150k", k150k, FULL_FEATURES, "1-5", lagging=True, shard="konvid-150k"
        )
        chug = _ladder(rng, 16, ("2160p_15000k", "1080p_6000k", "720p_3000k", "540p_1200k"))
        chug_features = [f for f in FULL_FEATURES if f != "ssimulacra2"]
        write_per_clip_corpus(tree, rng, "chug", chug, chug_features, "0-100")
        write_netflix(tree, rng)
        write_bvi_dvc(tree, rng)
        write_grid(tree, rng)
        write_konvid(tree, np.random.default_rng([seed, 1]))  # its own stream: the rest stays
        write_netflix_loso(tree, np.random.default_rng([seed, 17]))
        write_predictor_corpora(tree, np.random.default_rng([seed, 15]))
        write_tiny(tree, np.random.default_rng([seed, 12]))
        write_dnn(tree, np.random.default_rng([seed, 13]))
        write_saliency(tree, np.random.default_rng([seed, 14]))
        write_quantization(tree, np.random.default_rng([seed, 16]))
        write_fr_tables(tree, np.random.default_rng([seed, 11]))
        _replace_tree(staging, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)
    return {"files": tree.files, **dict(sorted(tree.counts.items()))}


def _replace_tree(staging: Path, out: Path) -> None:
    """Move the finished tree into place; an older tree is set aside first, then removed."""
    for path in sorted(staging.rglob("*"), reverse=True):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    mask = os.umask(0)
    os.umask(mask)
    staging.chmod(0o777 & ~mask)  # mkdtemp made it private; the tree is an ordinary folder
    retired = None
    if out.exists():
        retired = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        os.replace(out, retired / out.name)
    os.replace(staging, out)
    if retired is not None:
        shutil.rmtree(retired)
