"""The nine-clip Netflix root the legacy LOSO evaluations read: ``ref/``, ``dis/``, a cache.

The fork's evaluations hold out each of the nine public Netflix clips in turn, so their data
root must hold all nine; the chain's ``netflix/`` root has four. Each clip gets three
distortion conditions of eight frames, and its libvmaf JSON in ``vmaf_cache/``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ai.sample.generator import Tree

ROOT = "netflix_loso"
CONTENTS = (
    "BigBuckBunny_25fps",
    "BirdsInCage_30fps",
    "CrowdRun_25fps",
    "ElFuente1_30fps",
    "ElFuente2_30fps",
    "FoxBird_25fps",
    "OldTownCross_25fps",
    "Seeking_25fps",
    "Tennis_24fps",
)
CONDITIONS = (("20_288_375", 0.25), ("50_720_1050", 0.6), ("90_1080_4300", 0.92))
FRAMES = 8
STAND_IN_BYTES = 512


def write_netflix_loso(tree: Tree, rng: np.random.Generator) -> None:
    """Raw YUV stand-ins for every reference/distorted pair and each pair's libvmaf JSON."""
    from ai.sample.generator import libvmaf_document  # the generator imports this module

    for content in CONTENTS:
        tree.write(f"{ROOT}/ref/{content}.yuv", rng.bytes(STAND_IN_BYTES))
        motion = float(rng.uniform(2.0, 16.0))
        for condition, quality in CONDITIONS:
            key = f"{content}__{condition}"
            # Each clip sits a little off the ladder: the held-out clip is not a copy of the rest.
            shifted = float(np.clip(quality + rng.normal(0.0, 0.05), 0.05, 0.98))
            tree.write(f"{ROOT}/dis/{key}.yuv", rng.bytes(STAND_IN_BYTES))
            tree.json(
                f"{ROOT}/vmaf_cache/{key}.json", libvmaf_document(rng, shifted, motion, FRAMES)
            )
    tree.counts[f"{ROOT}/pairs"] = len(CONTENTS) * len(CONDITIONS)
