"""Image files the saliency family reads and writes with the standard library: PNG and PGM.

The pipeline has no image library. PNG is zlib-compressed scanlines behind a few checksummed
chunks, so it is read and written here (8- and 16-bit grey, grey+alpha, RGB, RGBA and
palette images, every row filter, no interlacing). JPEG decoding is not available: a JPEG
is refused with a message saying so. PGM (P2 text or P5 binary) is the mask format of the
per-block evaluation.
"""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import numpy as np

from ai.common.files import InputError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS = 1 << 26  # far above any DUTS image; a header claiming more is refused unread
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bytes(image: np.ndarray) -> bytes:
    """An 8-bit PNG of ``image``: ``[H, W]`` grey or ``[H, W, 3]`` RGB, values 0-255."""
    pixels = np.asarray(image)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ValueError("png_bytes takes a uint8 [H, W] or [H, W, 3] array")
    colour = 0 if pixels.ndim == 2 else 2
    if colour == 2 and pixels.shape[2] != 3:
        raise ValueError("png_bytes takes three channels (RGB)")
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def read_image(path: Path) -> np.ndarray:
    """An image file as ``[H, W, C]`` floats in [0, 255] (C = 1, 2, 3 or 4)."""
    if path.suffix.lower() in (".jpg", ".jpeg"):
        raise InputError(f"{path}: JPEG decoding is not available here; convert it to PNG")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InputError(f"{path}: cannot be read: {err.strerror or err}") from None
    try:
        return decode_png(data)
    except ValueError as err:
        raise InputError(f"{path}: not a readable PNG: {err}") from None


def decode_png(data: bytes) -> np.ndarray:
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("no PNG signature")
    position, header, palette, idat = len(PNG_SIGNATURE), None, None, []
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        if len(body) != length or len(data) < position + 12 + length:
            raise ValueError("truncated chunk")
        (crc,) = struct.unpack(">I", data[position + 8 + length : position + 12 + length])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise ValueError(f"bad checksum in {kind.decode('latin-1')!r}")
        position += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"PLTE":
            palette = np.frombuffer(body, dtype=np.uint8).reshape(-1, 3)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None or not idat:
        raise ValueError("no IHDR or IDAT chunk")
    width, height, depth, colour, _, _, interlace = header
    if colour not in _CHANNELS or depth not in (8, 16) or (colour == 3 and depth != 8):
        raise ValueError(f"unsupported colour type {colour} at bit depth {depth}")
    if interlace:
        raise ValueError("interlaced PNG is not supported")
    if not 0 < width * height <= MAX_PIXELS:
        raise ValueError(f"{width}x{height} pixels")
    channels, size = _CHANNELS[colour], depth // 8
    stride, bpp = width * channels * size, channels * size
    try:
        raw = zlib.decompressobj().decompress(b"".join(idat), height * (stride + 1) + 1)
    except zlib.error as err:
        raise ValueError(f"bad compressed data: {err}") from None
    if len(raw) < height * (stride + 1):
        raise ValueError("too little image data")
    rows = np.frombuffer(raw[: height * (stride + 1)], dtype=np.uint8).reshape(height, stride + 1)
    pixels = _unfilter(rows, bpp)
    if size == 2:
        values = pixels.reshape(height, -1).view(">u2").astype(np.float64) / 257.0
    else:
        values = pixels.astype(np.float64)
    image = values.reshape(height, width, channels)
    if colour == 3:
        if palette is None:
            raise ValueError("palette image without PLTE")
        index = image[..., 0].astype(np.intp)
        if index.max() >= len(palette):
            raise ValueError("palette index out of range")
        image = palette[index].astype(np.float64)
    return image


def _unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Undo the per-row filters (None, Sub, Up, Average, Paeth) of a PNG."""
    height, stride = rows.shape[0], rows.shape[1] - 1
    out = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        kind, line = int(rows[y, 0]), rows[y, 1:].astype(np.int64)
        if kind == 0:
            current = line
        elif kind == 2:
            current = (line + previous) & 0xFF
        elif kind in (1, 3, 4):
            current = np.zeros(stride, dtype=np.int64)
            for x in range(stride):
                a = int(current[x - bpp]) if x >= bpp else 0
                b = int(previous[x])
                if kind == 1:
                    predictor = a
                elif kind == 3:
                    predictor = (a + b) // 2
                else:
                    c = int(previous[x - bpp]) if x >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    predictor = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                current[x] = (int(line[x]) + predictor) & 0xFF
        else:
            raise ValueError(f"unknown row filter {kind}")
        out[y] = current
        previous = current
    return out


# -- PGM ---------------------------------------------------------------------------------------

_PGM_TOKEN = re.compile(rb"#[^\n]*|\S+")


def pgm_bytes(mask: np.ndarray) -> bytes:
    """A binary (P5) 8-bit PGM of a ``[H, W]`` uint8 array."""
    pixels = np.asarray(mask)
    if pixels.dtype != np.uint8 or pixels.ndim != 2:
        raise ValueError("pgm_bytes takes a uint8 [H, W] array")
    height, width = pixels.shape
    return f"P5\n{width} {height}\n255\n".encode("ascii") + pixels.tobytes()


def decode_pgm(data: bytes) -> np.ndarray:
    """A P2 or P5 PGM as ``[H, W]`` floats in [0, 1] (divided by its maxval)."""
    magic = data[:2]
    if magic not in (b"P2", b"P5"):
        raise ValueError("not a P2 or P5 PGM")
    tokens: list[bytes] = []
    position = 2
    while len(tokens) < 3:
        match = _PGM_TOKEN.search(data, position)
        if match is None:
            raise ValueError("truncated header")
        position = match.end()
        if not match.group().startswith(b"#"):
            tokens.append(match.group())
    try:
        width, height, maxval = (int(t) for t in tokens)
    except ValueError:
        raise ValueError("header values are not integers") from None
    if width <= 0 or height <= 0 or not 0 < maxval < 65536 or width * height > MAX_PIXELS:
        raise ValueError(f"bad header {width}x{height} maxval {maxval}")
    count = width * height
    if magic == b"P5":
        body = data[position + 1 :]  # one whitespace byte ends the header
        dtype = np.dtype(np.uint8) if maxval <= 255 else np.dtype(">u2")
        if len(body) < count * dtype.itemsize:
            raise ValueError("too little pixel data")
        values = np.frombuffer(body[: count * dtype.itemsize], dtype=dtype).astype(np.float64)
    else:
        words = [m.group() for m in _PGM_TOKEN.finditer(data, position)]
        numbers = [w for w in words if not w.startswith(b"#")]
        if len(numbers) < count:
            raise ValueError("too few pixel values")
        try:
            values = np.array([int(w) for w in numbers[:count]], dtype=np.float64)
        except ValueError:
            raise ValueError("pixel values are not integers") from None
    return values.reshape(height, width) / maxval
