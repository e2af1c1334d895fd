"""A DUTS-TR-style sample: images with one salient object each, and its ground-truth mask.

Images are PNG (the pipeline cannot decode JPEG), ``saliency/duts/DUTS-TR-Image/<stem>.png``,
masks ``DUTS-TR-Mask/<stem>.png`` (0 or 255). The object is a bright ellipse over a muted,
noisy background, so a few steps of training already find it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ai.saliency.images import png_bytes

if TYPE_CHECKING:
    from ai.sample.generator import Tree

IMAGES = 14
HEIGHT, WIDTH = 48, 64


def write_saliency(tree: Tree, rng: np.random.Generator) -> None:
    """Write the images and masks into the generator's ``Tree``."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    for number in range(IMAGES):
        base = rng.uniform(60, 140, size=3)
        tilt = rng.uniform(-0.6, 0.6, size=3)
        noise = rng.normal(0, 12, (HEIGHT, WIDTH, 3))
        background = base + tilt * (cols[..., None] - WIDTH / 2) + noise
        cy, cx = rng.uniform(0.3, 0.7) * HEIGHT, rng.uniform(0.3, 0.7) * WIDTH
        ry, rx = rng.uniform(0.15, 0.3) * HEIGHT, rng.uniform(0.15, 0.3) * WIDTH
        inside = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1.0
        colour = rng.uniform(170, 250, size=3)
        colour[rng.integers(3)] = rng.uniform(10, 60)  # saturated: one channel low
        image = np.where(inside[..., None], colour + rng.normal(0, 6, (HEIGHT, WIDTH, 3)),
                         background)  # fmt: skip
        stem = f"sample_{number:04d}"
        tree.write(
            f"saliency/duts/DUTS-TR-Image/{stem}.png",
            png_bytes(np.clip(np.rint(image), 0, 255).astype(np.uint8)),
        )
        tree.write(
            f"saliency/duts/DUTS-TR-Mask/{stem}.png", png_bytes(inside.astype(np.uint8) * 255)
        )
    tree.counts["saliency/images"] = IMAGES
