"""Build the KoNViD-1k synthetic-distortion FR-pair parquet: per-frame features of each clip
against its CRF encode (ADR-0670).

Clips are the videos under <konvid-root>/videos, in name order (--max-clips keeps the first N).
libvmaf results come from --cache-dir by --cache-policy; on a miss the vmaf binary runs with
--vmaf-model on <konvid-root>/decoded/<clip>.yuv against <clip>__crf<N>.yuv. A clip that fails
is left out of the table and named in the manifest, and the run exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_features, add_manifest_out, fail
from ai.common.files import InputError, write_parquet
from ai.corpus.fr_pairs import extract, pair_of, select_clips
from ai.features.libvmaf import CACHE_POLICIES, Cache
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--konvid-root", type=Path, required=True, help="holds videos/")
    parser.add_argument("--cache-dir", type=Path, required=True, help="libvmaf JSON per pair")
    parser.add_argument(
        "--cache-policy", choices=CACHE_POLICIES, default="reuse", help="how the cache is used"
    )
    parser.add_argument("--vmaf-bin", default="vmaf", help="the vmaf binary, run on a cache miss")
    parser.add_argument("--vmaf-model", type=Path, help="the VMAF model JSON the binary uses")
    parser.add_argument("--crf", type=int, default=35, help="CRF of the synthetic distortion")
    parser.add_argument("--max-clips", type=int, help="keep the first N clips")
    add_features(parser)
    parser.add_argument("--width", type=int, default=960, help="decoded width (KoNViD: 960)")
    parser.add_argument("--height", type=int, default=540, help="decoded height (KoNViD: 540)")
    parser.add_argument("--out", type=Path, required=True, help="the per-frame pair parquet")
    add_manifest_out(parser, "<out>")
    return parser


@recorded_run(
    inputs={"konvid_root": "konvid_root", "cache": "cache_dir", "vmaf_model": "vmaf_model"},
    outputs={"table": "out"},
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.max_clips is not None and args.max_clips < 1:
        parser.error("--max-clips must be at least 1")
    try:
        if args.vmaf_model is not None and not args.vmaf_model.is_file():
            raise InputError(f"{args.vmaf_model}: no such file")
        clips = select_clips(args.konvid_root, args.max_clips)
    except InputError as err:
        return fail(parser.prog, err)
    pairs = [pair_of(args.konvid_root, c, args.crf, args.width, args.height) for c in clips]
    cache = Cache(
        args.cache_dir, args.vmaf_bin, policy=args.cache_policy, vmaf_model=args.vmaf_model
    )
    done = extract(clips, pairs, cache, args.features)
    for failure in done.failed:
        print(f"{parser.prog}: {failure['error']}", file=sys.stderr)
    write_parquet(args.out, done.table)
    current_run().record(
        konvid_root=args.konvid_root,
        cache_root=args.cache_dir,
        cache_policy=args.cache_policy,
        cache={"hits": cache.hits, "misses": cache.misses},
        vmaf_bin=args.vmaf_bin,
        vmaf_model=args.vmaf_model,
        crf=args.crf,
        features=list(args.features),
        columns=done.table.column_names,
        selected_clips=len(clips),
        processed_clips=len(done.processed),
        failed_clips=len(done.failed),
        failed_clip_ids=[f["clip"] for f in done.failed],
        failed=done.failed,
        frame_count=done.table.num_rows,
    )
    return 1 if done.failed else 0


if __name__ == "__main__":
    sys.exit(main())
