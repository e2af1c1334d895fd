"""Per-clip extraction from the libvmaf cache, shared by the K150K and CHUG extractors.

Each clip's statistics come from its ``<clip>.json`` in the cache (``Cache.lookup``), read by a
pool of worker threads: the one backend these extractors have. What the record says of it: the
backend's worker count, clips read and restarts, and the extractor split, which libvmaf
extractor reported each feature and under which metric key(s), over the clips of the table.

The K150K extractor can resume: ``Ledger`` is its ``<out>.done`` file, the clips already done
with their statistics and the digest of the cache file each was read from, replaced atomically
as clips complete. A ledger that is not one, or that another run's inputs made, is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ai.common.files import InputError, UnreadableFile
from ai.features.libvmaf import EXTRACTORS, Cache, metric_keys
from ai.features.tables import clip_stats, feature_columns
from provenance import atomic_write

BACKEND = "libvmaf-cache"
# A test-only slow-down: seconds each worker waits before reading a clip, so that a test can
# stop a run part-way through. Unset, nothing waits.
DELAY_ENV = "AI_EXTRACT_CLIP_DELAY"


def extractor_of(feature: str) -> str:
    """The libvmaf extractor (``vmaf --feature NAME``, or the default model's) of a feature."""
    if feature in EXTRACTORS:
        return EXTRACTORS[feature]
    return next(p for p in ("adm", "vif", "motion") if feature.startswith(p))


@dataclass(frozen=True)
class Extracted:
    """One clip's statistics, the metric key each feature was read under, its cache digest."""

    stats: dict[str, float]
    keys: dict[str, list[str]]
    cache_sha256: str


@dataclass(frozen=True)
class Outcome:
    clip: str
    result: Extracted | InputError
    restarts: int


def _read(cache: Cache, clip: str, features: Sequence[str]) -> Extracted:
    result = cache.lookup(clip)
    stats = clip_stats(result, features)
    keys = {
        name: sorted({next(k for k in metric_keys(name) if k in m) for m in result.frames})
        for name in features
    }
    return Extracted(stats, keys, hashlib.sha256(result.source.read_bytes()).hexdigest())


def extract(
    cache: Cache, clips: Sequence[str], features: Sequence[str], workers: int, retries: int
) -> Iterator[Outcome]:
    """Each clip's outcome, in the order of ``clips``, as the workers finish them."""
    delay = float(os.environ.get(DELAY_ENV, "0") or 0)

    def one(clip: str) -> Outcome:
        restarts = 0
        if delay > 0:
            time.sleep(delay)
        while True:
            try:
                return Outcome(clip, _read(cache, clip, features), restarts)
            except UnreadableFile as err:
                if restarts == retries:
                    return Outcome(clip, err, restarts)
                restarts += 1
            except InputError as err:
                return Outcome(clip, err, restarts)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(one, clips)


@dataclass
class BackendCounts:
    workers: int
    features: list[str]
    clips_read: int = 0
    restarts: int = 0

    def add(self, outcome: Outcome) -> None:
        self.clips_read += 1
        self.restarts += outcome.restarts

    def record(self) -> dict[str, Any]:
        return {
            BACKEND: {
                "workers": self.workers,
                "features": self.features,
                "clips_read": self.clips_read,
                "restarts": self.restarts,
            }
        }


def extractor_split(
    features: Sequence[str], extracted: Sequence[Extracted]
) -> dict[str, dict[str, Any]]:
    """Per feature: its extractor, its backend, and how many clips reported it under each key."""
    split = {}
    for name in features:
        keys = Counter(key for item in extracted for key in item.keys[name])
        split[name] = {
            "extractor": extractor_of(name),
            "backend": BACKEND,
            "metric_keys": dict(sorted(keys.items())),
        }
    return split


# -- the resume ledger --------------------------------------------------------------------------

LEDGER_FORMAT = "extract_k150k_features.done/1"


@dataclass
class Ledger:
    """``<out>.done``: what a run has done so far, and the run it belongs to."""

    path: Path
    run: dict[str, Any]
    clips: dict[str, Extracted] = field(default_factory=dict)

    def write(self) -> None:
        document = {
            "format": LEDGER_FORMAT,
            "run": self.run,
            "clips": {
                name: {"cache_sha256": e.cache_sha256, "keys": e.keys, "stats": e.stats}
                for name, e in sorted(self.clips.items())
            },
        }
        atomic_write(self.path, (json.dumps(document, sort_keys=True) + "\n").encode())

    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def _refuse(path: Path, why: str) -> InputError:
    return InputError(f"{path}: {why}; it was not used: remove it to start over")


def load_ledger(
    path: Path, run: Mapping[str, Any], cache: Cache, clips: Sequence[str], features: Sequence[str]
) -> Ledger:
    """The ledger at ``path`` if it is this run's, every entry checked; else an InputError.

    An entry is trusted only if its clip is one this run extracts, its statistics are exactly
    this run's columns as finite numbers, and its cache file still has the digest it was read at.
    """
    try:
        document = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _refuse(path, f"not a readable resume file ({err})") from None
    if not isinstance(document, dict) or document.get("format") != LEDGER_FORMAT:
        raise _refuse(path, f"not a resume file of format {LEDGER_FORMAT}")
    if document.get("run") != dict(run):
        raise _refuse(path, "made by a run with other inputs or options")
    entries = document.get("clips")
    if not isinstance(entries, dict):
        raise _refuse(path, "no clips object")
    wanted, columns = set(clips), feature_columns(features)
    ledger = Ledger(path, dict(run))
    for name, entry in sorted(entries.items()):
        if name not in wanted:
            raise _refuse(path, f"clip {name!r} is not one this run extracts")
        ledger.clips[name] = _entry(path, name, entry, columns, features, cache)
    return ledger


def _entry(
    path: Path,
    name: str,
    entry: Any,
    columns: Sequence[str],
    features: Sequence[str],
    cache: Cache,
) -> Extracted:
    stats = entry.get("stats") if isinstance(entry, dict) else None
    keys = entry.get("keys") if isinstance(entry, dict) else None
    digest = entry.get("cache_sha256") if isinstance(entry, dict) else None
    if not isinstance(stats, dict) or sorted(stats) != sorted(columns):
        raise _refuse(path, f"clip {name!r} does not hold this run's feature columns")
    if not all(
        isinstance(v, float) and math.isfinite(v) for v in stats.values()
    ):  # JSON numbers written from floats read back as floats
        raise _refuse(path, f"clip {name!r} holds a value that is not a finite number")
    if (
        not isinstance(keys, dict)
        or sorted(keys) != sorted(features)
        or not all(
            isinstance(k, list) and all(isinstance(s, str) for s in k) for k in keys.values()
        )
    ):
        raise _refuse(path, f"clip {name!r} does not say which metric keys it was read under")
    source = cache.path_for(name)
    try:
        current = hashlib.sha256(source.read_bytes()).hexdigest()
    except OSError:
        raise _refuse(path, f"clip {name!r}: its cache file {source} cannot be read") from None
    if digest != current:
        raise _refuse(path, f"clip {name!r}: its cache file {source} changed since it was read")
    return Extracted({c: stats[c] for c in columns}, {f: keys[f] for f in features}, digest)
