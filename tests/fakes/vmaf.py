"""A stand-in for the vmaf binary: the same command line, libvmaf JSON from the inputs' bytes.

Tests copy it to an executable file so extraction runs it as a real subprocess on a cache miss.
FAKE_VMAF_EXIT makes it fail the way a broken binary does.
"""

import argparse
import hashlib
import json
import os
import sys

FEATURES = {
    "psnr": ("psnr_y", "psnr_cb", "psnr_cr"),
    "float_ssim": ("float_ssim",),
    "float_ms_ssim": ("float_ms_ssim",),
    "cambi": ("cambi",),
    "ciede": ("ciede2000",),
    "psnr_hvs": ("psnr_hvs",),
    "ssimulacra2": ("ssimulacra2",),
}
DEFAULT = ["integer_adm2", *(f"integer_adm_scale{i}" for i in range(4)),
           *(f"integer_vif_scale{i}" for i in range(4)), "integer_motion", "integer_motion2",
           "integer_motion3"]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    for name in ("--reference", "--distorted", "--width", "--height", "--pixel_format",
                 "--bitdepth", "--output"):  # fmt: skip
        parser.add_argument(name, required=True)
    parser.add_argument("--json", action="store_true", required=True)
    parser.add_argument("--feature", action="append", default=[])
    args = parser.parse_args()
    if os.environ.get("FAKE_VMAF_EXIT"):
        print("libvmaf ERROR problem reading distorted", file=sys.stderr)
        return int(os.environ["FAKE_VMAF_EXIT"])
    with open(args.reference, "rb") as ref, open(args.distorted, "rb") as dis:
        seed = hashlib.sha256(ref.read() + dis.read()).digest()
    keys = DEFAULT + [k for f in args.feature for k in FEATURES[f]]
    frames = []
    for n in range(4):
        metrics = {k: round(0.5 + seed[(n + i) % 32] / 512, 6) for i, k in enumerate(keys)}
        metrics["vmaf"] = round(40 + seed[n] / 8, 6)
        frames.append({"frameNum": n, "metrics": metrics})
    document = {
        "version": "fake",
        "frames": frames,
        "pooled_metrics": {"vmaf": {"mean": sum(f["metrics"]["vmaf"] for f in frames) / 4}},
    }
    with open(args.output, "w") as out:
        json.dump(document, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
