"""A DUTS-TR-style folder: ``DUTS-TR-Image/<stem>.jpg`` paired with ``DUTS-TR-Mask/<stem>.png``.

Images may also be PNG (``<stem>.png``): JPEG decoding is not available in the pipeline, so
a JPEG image is refused when it is read, with a message saying to convert it. Preparation
follows the fork: the short side resized to crop + 32 for training or to crop for validation
(aspect kept; a triangle filter for the image, as PIL's bilinear resampling, nearest for the
mask), random crop and horizontal flip for training, centre crop for validation, ImageNet
mean/std normalisation, masks binarised at 0.5.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ai.common.files import InputError
from ai.saliency.images import read_image

IMAGE_DIR = "DUTS-TR-Image"
MASK_DIR = "DUTS-TR-Mask"
IMAGE_SUFFIXES = (".jpg", ".png")
MEAN = np.array([0.485, 0.456, 0.406])
STD = np.array([0.229, 0.224, 0.225])


@dataclass(frozen=True)
class Pair:
    image: Path
    mask: Path

    @property
    def stem(self) -> str:
        return self.image.stem


def find_pairs(root: Path) -> list[Pair]:
    """Every image with a mask of the same stem, sorted by name; unpaired images are skipped."""
    images, masks = root / IMAGE_DIR, root / MASK_DIR
    for folder in (images, masks):
        if not folder.is_dir():
            raise InputError(f"{folder}: no such folder (a DUTS root holds {IMAGE_DIR}/ and "
                             f"{MASK_DIR}/)")  # fmt: skip
    pairs = [
        Pair(path, masks / f"{path.stem}.png")
        for path in sorted(images.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES and (masks / f"{path.stem}.png").is_file()
    ]
    stems = [p.stem for p in pairs]
    if len(set(stems)) < len(stems):
        twice = sorted({s for s in stems if stems.count(s) > 1})
        raise InputError(f"{images}: both a .jpg and a .png image for {', '.join(twice)}")
    if not pairs:
        raise InputError(f"{root}: no image in {IMAGE_DIR}/ has a mask in {MASK_DIR}/")
    return pairs


def split(pairs: list[Pair], seed: int, val_fraction: float, min_val: int) -> tuple[
    list[Pair], list[Pair]
]:  # fmt: skip
    """python ``random.Random(seed)`` shuffle; the first max(min_val, round(frac·N)) validate."""
    shuffled = list(pairs)
    random.Random(seed).shuffle(shuffled)
    n_val = max(min_val, round(val_fraction * len(shuffled)))
    return shuffled[n_val:], shuffled[:n_val]


def resize_matrix(size_in: int, size_out: int) -> np.ndarray:
    """``[size_out, size_in]`` weights of a triangle filter (widened when shrinking)."""
    scale = size_in / size_out
    support = max(scale, 1.0)
    centres = (np.arange(size_out) + 0.5) * scale
    taps = np.arange(size_in) + 0.5
    weights = np.maximum(0.0, 1.0 - np.abs(taps[None, :] - centres[:, None]) / support)
    return np.asarray(weights / weights.sum(axis=1, keepdims=True))


def short_side(height: int, width: int, short: int) -> tuple[int, int]:
    if height <= width:
        return short, max(1, round(width * short / height))
    return max(1, round(height * short / width)), short


def load_pair(pair: Pair, short: int) -> tuple[np.ndarray, np.ndarray]:
    """The image ``[3, H, W]`` in [0, 1] and the mask ``[1, H, W]`` in {0, 1}, short side
    resized to ``short``."""
    image, mask = read_image(pair.image), read_image(pair.mask)
    if image.shape[:2] != mask.shape[:2]:
        raise InputError(f"{pair.mask}: {mask.shape[1]}x{mask.shape[0]} pixels, its image "
                         f"{image.shape[1]}x{image.shape[0]}")  # fmt: skip
    rgb = image[..., :3] if image.shape[2] >= 3 else np.repeat(image[..., :1], 3, axis=2)
    grey = mask[..., :3].mean(axis=2) if mask.shape[2] >= 3 else mask[..., 0]
    h, w = rgb.shape[:2]
    nh, nw = short_side(h, w, short)
    rh, rw = resize_matrix(h, nh), resize_matrix(w, nw)
    resized = np.einsum("oh,hwc->owc", rh, np.einsum("hwc,pw->hpc", rgb, rw))
    rows = np.minimum(((np.arange(nh) + 0.5) * h / nh).astype(int), h - 1)
    cols = np.minimum(((np.arange(nw) + 0.5) * w / nw).astype(int), w - 1)
    nearest = grey[rows][:, cols]
    return resized.transpose(2, 0, 1) / 255.0, (nearest / 255.0 > 0.5)[None].astype(np.float64)


def normalise(image: np.ndarray) -> np.ndarray:
    return np.asarray((image - MEAN[:, None, None]) / STD[:, None, None])


def crop(array: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    return array[:, top : top + size, left : left + size]


def centre(image: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    top, left = (image.shape[1] - size) // 2, (image.shape[2] - size) // 2
    return normalise(crop(image, top, left, size)), crop(mask, top, left, size)


def augment(
    image: np.ndarray, mask: np.ndarray, size: int, rng: random.Random
) -> tuple[np.ndarray, np.ndarray]:
    """A random ``size`` crop, flipped left-right half the time."""
    top = rng.randint(0, image.shape[1] - size)
    left = rng.randint(0, image.shape[2] - size)
    image, mask = crop(image, top, left, size), crop(mask, top, left, size)
    if rng.random() < 0.5:
        image, mask = image[:, :, ::-1], mask[:, :, ::-1]
    return normalise(image), np.ascontiguousarray(mask)
