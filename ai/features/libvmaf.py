"""libvmaf JSON (the ``vmaf --json`` output): features, pooled scores and the on-disk cache.

Extraction reads a cache of libvmaf JSON, one file per clip or pair, and runs the ``vmaf``
binary only on a cache miss. The binary writes into a temporary file beside the cache entry,
which is renamed into place only when the run succeeded and the JSON reads back.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ai.common.files import InputError, read_json_object

FULL_FEATURES: tuple[str, ...] = (
    "adm2",
    "adm_scale0",
    "adm_scale1",
    "adm_scale2",
    "adm_scale3",
    "vif_scale0",
    "vif_scale1",
    "vif_scale2",
    "vif_scale3",
    "motion",
    "motion2",
    "motion3",
    "psnr_y",
    "psnr_cb",
    "psnr_cr",
    "float_ssim",
    "float_ms_ssim",
    "cambi",
    "ciede2000",
    "psnr_hvs",
    "ssimulacra2",
)
CANONICAL_6: tuple[str, ...] = (
    "adm2",
    "vif_scale0",
    "vif_scale1",
    "vif_scale2",
    "vif_scale3",
    "motion2",
)
# The libvmaf extractor (`vmaf --feature NAME`) that reports each feature beyond the default
# model's adm / vif / motion.
EXTRACTORS = {
    "psnr_y": "psnr",
    "psnr_cb": "psnr",
    "psnr_cr": "psnr",
    "float_ssim": "float_ssim",
    "float_ms_ssim": "float_ms_ssim",
    "cambi": "cambi",
    "ciede2000": "ciede",
    "psnr_hvs": "psnr_hvs",
    "ssimulacra2": "ssimulacra2",
}


class VmafError(InputError):
    """The vmaf binary could not produce a result for a clip."""


def parse_features(text: str) -> tuple[str, ...]:
    """``--features``: comma-separated names, each one of FULL_FEATURES, none twice."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in FULL_FEATURES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown feature(s) {', '.join(unknown)}; known: {', '.join(FULL_FEATURES)}"
        )
    if len(set(names)) != len(names) or not names:
        raise argparse.ArgumentTypeError(f"{text!r} is empty or names a feature twice")
    return names


def metric_keys(feature: str) -> tuple[str, ...]:
    """The keys under which libvmaf reports ``feature`` in a frame's metrics, preferred first."""
    if feature.startswith(("adm", "vif", "motion")):
        return (f"integer_{feature}", feature, f"float_{feature}")
    return (feature,)


@dataclass(frozen=True)
class VmafResult:
    """One libvmaf JSON document, checked: every frame has a numeric metrics object."""

    source: Path
    frames: tuple[dict[str, float], ...]
    pooled_vmaf_mean: float | None
    version: str | None = None

    def feature(self, name: str) -> list[float]:
        """The per-frame values of ``name``; raises if any frame lacks it."""
        values = []
        for index, metrics in enumerate(self.frames):
            value = next((metrics[k] for k in metric_keys(name) if k in metrics), None)
            if value is None:
                raise InputError(f"{self.source}: frame {index} has no {name}")
            values.append(value)
        return values

    def frame_vmaf(self) -> list[float | None]:
        return [metrics.get("vmaf") for metrics in self.frames]

    def score(self) -> float:
        """``pooled_metrics.vmaf.mean``, falling back to the last frame's ``vmaf``."""
        if self.pooled_vmaf_mean is not None:
            return self.pooled_vmaf_mean
        last = self.frames[-1].get("vmaf")
        if last is None:
            raise InputError(f"{self.source}: no pooled vmaf mean and no vmaf in the last frame")
        return last


def load(path: Path) -> VmafResult:
    document = read_json_object(path)
    frames = document.get("frames")
    if not isinstance(frames, list) or not frames:
        raise InputError(f"{path}: no frames: not libvmaf JSON output")
    checked = []
    for index, frame in enumerate(frames):
        metrics = frame.get("metrics") if isinstance(frame, dict) else None
        if not isinstance(metrics, dict):
            raise InputError(f"{path}: frame {index} has no metrics object")
        for key, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"{path}: frame {index}: {key} is not a number: {value!r}")
            if not math.isfinite(value):
                raise InputError(f"{path}: frame {index}: {key} is not finite")
        checked.append({key: float(value) for key, value in metrics.items()})
    pooled = document.get("pooled_metrics", {})
    mean = pooled.get("vmaf", {}).get("mean") if isinstance(pooled, dict) else None
    if mean is not None and (isinstance(mean, bool) or not isinstance(mean, (int, float))):
        raise InputError(f"{path}: pooled_metrics.vmaf.mean is not a number: {mean!r}")
    version = document.get("version")
    return VmafResult(
        path,
        tuple(checked),
        None if mean is None else float(mean),
        version if isinstance(version, str) else None,
    )


@dataclass(frozen=True)
class Pair:
    """A reference/distorted pair and the geometry the vmaf binary needs to read raw YUV."""

    key: str
    reference: Path
    distorted: Path
    width: int
    height: int


CACHE_POLICIES = ("reuse", "read-only", "refresh")


@dataclass
class Cache:
    """libvmaf JSON under ``root``, one ``<key>.json`` per clip or pair.

    ``policy``: ``reuse`` reads the cache and runs the binary on a miss, ``read-only`` never
    runs it (a miss fails), ``refresh`` runs it for every pair and replaces what was cached.
    """

    root: Path
    vmaf_bin: str | None = None
    hits: int = 0
    misses: int = 0
    policy: str = "reuse"
    vmaf_model: Path | None = None

    def path_for(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def lookup(self, key: str) -> VmafResult:
        """The cached result for ``key``; a miss is an error (no binary to fill it)."""
        path = self.path_for(key)
        if not path.is_file():
            self.misses += 1
            raise InputError(f"{path}: not in the libvmaf cache")
        self.hits += 1
        return load(path)

    def get(self, pair: Pair, features: Sequence[str]) -> VmafResult:
        """The cached result for ``pair``, running the vmaf binary to fill a miss."""
        path = self.path_for(pair.key)
        if path.is_file() and self.policy != "refresh":
            self.hits += 1
            return load(path)
        self.misses += 1
        if self.policy == "read-only":
            raise VmafError(f"{pair.key}: not in the libvmaf cache {self.root} (read-only)")
        run_vmaf(self._binary(pair), pair, features, path, self.vmaf_model)
        return load(path)

    def _binary(self, pair: Pair) -> str:
        if not self.vmaf_bin:
            raise VmafError(f"{pair.key}: not in the libvmaf cache {self.root} and no --vmaf-bin")
        found = shutil.which(self.vmaf_bin)
        if found is None:
            raise VmafError(
                f"{pair.key}: not in the libvmaf cache {self.root}, and the vmaf binary "
                f"{self.vmaf_bin!r} was not found or is not executable"
            )
        return found


def vmaf_command(
    binary: str, pair: Pair, features: Sequence[str], output: Path, model: Path | None = None
) -> list[str]:
    """The ``vmaf`` command line for one 8-bit 4:2:0 raw YUV pair."""
    command = [
        binary,
        "--reference", str(pair.reference),
        "--distorted", str(pair.distorted),
        "--width", str(pair.width),
        "--height", str(pair.height),
        "--pixel_format", "420",
        "--bitdepth", "8",
        "--json",
        "--output", str(output),
    ]  # fmt: skip
    if model is not None:
        command += ["--model", f"path={model}"]
    for extractor in dict.fromkeys(EXTRACTORS[f] for f in features if f in EXTRACTORS):
        command += ["--feature", extractor]
    return command


def run_vmaf(
    binary: str,
    pair: Pair,
    features: Sequence[str],
    destination: Path,
    model: Path | None = None,
) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
    os.close(fd)
    try:
        done = subprocess.run(
            vmaf_command(binary, pair, features, Path(temporary), model),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise VmafError(f"{pair.key}: vmaf exited with {done.returncode}: {tail}")
        try:
            load(Path(temporary))  # only a readable result enters the cache
        except InputError as err:
            raise VmafError(f"{pair.key}: vmaf wrote no usable libvmaf JSON: {err}") from None
        os.replace(temporary, destination)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
