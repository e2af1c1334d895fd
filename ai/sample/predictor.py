"""The predictor's sample corpora: one encode-grid JSONL per codec, ten sources each."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ai.predictor.corpus import synthetic_row

if TYPE_CHECKING:  # the generator imports this module
    from ai.sample.generator import Tree

CODECS = ("libx264", "libx265", "libsvtav1")
SOURCES = 10
CRFS = (20, 26, 32, 38, 44)


def write_predictor_corpora(tree: Tree, rng: np.random.Generator) -> None:
    for codec in CODECS:
        rows = [synthetic_row(rng, codec, s, crf) for s in range(SOURCES) for crf in CRFS]
        tree.jsonl(f"predictor/{codec}.jsonl", rows)
        tree.counts[f"predictor/{codec}"] = len(rows)
