"""Run a saliency-student ONNX over a DUTS-style root: the mask pairs eval_saliency_per_mb reads.

Writes <out-dir>/pred/<stem>.npy (the float32 saliency map, at the image's size) and
<out-dir>/gt/<stem>.pgm (the ground-truth PNG mask as an 8-bit binary PGM). Images must be
PNG (JPEG decoding is not available). Exits 0; 2 on an input error (nothing written).
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError
from ai.mos import onnx_head
from ai.saliency import duts
from ai.saliency.images import pgm_bytes, read_image
from ai.saliency.predict import saliency_map
from provenance import atomic_write, current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--onnx", type=Path, required=True, help="the student ONNX")
    parser.add_argument("--duts-root", type=Path, required=True, help="the DUTS-style root")
    parser.add_argument("--out-dir", type=Path, required=True, help="folder for pred/ and gt/")
    add_manifest_out(parser, "<out-dir>")
    return parser


@recorded_run(inputs={"onnx": "onnx", "duts_root": "duts_root"}, outputs={"masks": "out_dir"})
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import onnxruntime as ort  # seconds to import: after the arguments are known good

    try:
        onnx_head.load(args.onnx)
        found = duts.find_pairs(args.duts_root)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(str(args.onnx), options,
                                       providers=["CPUExecutionProvider"])  # fmt: skip
        written = []
        for pair in found:
            prediction = saliency_map(session, pair.image)
            mask = read_image(pair.mask)
            grey = mask[..., :3].mean(axis=2) if mask.shape[2] >= 3 else mask[..., 0]
            if grey.shape != prediction.shape:
                raise InputError(f"{pair.mask}: its size differs from {pair.image}'s")
            buffer = io.BytesIO()
            np.save(buffer, prediction, allow_pickle=False)
            written.append(
                (pair.stem, buffer.getvalue(), pgm_bytes(np.rint(grey).astype(np.uint8)))
            )
    except InputError as err:
        return fail(parser.prog, err)
    for stem, npy, pgm in written:
        atomic_write(args.out_dir / "pred" / f"{stem}.npy", npy)
        atomic_write(args.out_dir / "gt" / f"{stem}.pgm", pgm)
    current_run().record(images=len(written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
