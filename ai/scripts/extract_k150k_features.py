"""Per-clip FULL_FEATURES statistics from the libvmaf cache and the clips' scores (ADR-0668).

Scores come from a CSV of clip_name,mos, or from corpus JSONL (an aggregate_corpora output:
each row's clip is the basename of its src, its MOS the native one; --corpus picks one corpus).

Writes the per-clip parquet (clip_name, mos, width, height, fps, is_hdr, motion_fps_weight,
then <feature>_mean / <feature>_std). The clip columns stay null until the table is enriched
with clip metadata. A clip that fails (not in the cache, not libvmaf JSON, a feature missing)
is left out and named in the manifest; the table is still written and the run exits 1.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from ai.common.cli import add_features, add_manifest_out, fail
from ai.common.files import InputError, UnreadableFile, write_parquet
from ai.corpus.scores import SCALE_RANGES, read_corpus_scores, read_scores
from ai.features.libvmaf import Cache
from ai.features.tables import clip_stats, per_clip_schema, split_of
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cache-dir", type=Path, required=True, help="<clip_name>.json per clip")
    parser.add_argument(
        "--scores", type=Path, required=True, help="CSV of clip_name,mos, or corpus JSONL"
    )
    parser.add_argument("--corpus", help="with JSONL scores: only this corpus's rows")
    parser.add_argument(
        "--mos-scale", choices=sorted(SCALE_RANGES), default="1-5", help="the scores' scale"
    )
    add_features(parser)
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the content split")
    parser.add_argument("--workers", type=int, default=4, help="threads reading the cache")
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        help="times a worker retries a cache file it could "
        "not read (an I/O error, as network filesystems give); each retry is a restart",
    )
    parser.add_argument("--out", type=Path, required=True, help="the per-clip parquet")
    add_manifest_out(parser, "<out>")
    return parser


@recorded_run(inputs={"cache": "cache_dir", "scores": "scores"}, outputs={"table": "out"})
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers < 1 or args.retries < 0:
        parser.error("--workers must be at least 1 and --retries at least 0")
    try:
        if not args.cache_dir.is_dir():
            raise InputError(f"{args.cache_dir}: no such folder")
        mos_range = SCALE_RANGES[args.mos_scale]
        if args.scores.suffix == ".jsonl":
            scores = read_corpus_scores(args.scores, args.corpus, mos_range)
        else:
            scores = read_scores(args.scores, mos_range)
    except InputError as err:
        return fail(parser.prog, err)
    cache = Cache(args.cache_dir)

    def extract(clip: str) -> tuple[dict[str, float] | InputError, int]:
        """A clip's statistics (or why not), and how many times its read was restarted."""
        restarts = 0
        while True:
            try:
                return clip_stats(cache.lookup(clip), args.features), restarts
            except UnreadableFile as err:
                if restarts == args.retries:
                    return err, restarts
                restarts += 1
            except InputError as err:
                return err, restarts

    clips = sorted(scores)
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        extracted = list(pool.map(extract, clips))
    results = [result for result, _ in extracted]
    restarts = sum(count for _, count in extracted)
    schema = per_clip_schema(args.features)
    rows, failed = [], []
    for clip, result in zip(clips, results, strict=True):
        if isinstance(result, InputError):
            failed.append({"clip_name": clip, "error": str(result)})
            print(f"{parser.prog}: {result}", file=sys.stderr)
            continue
        rows.append({"clip_name": clip, "mos": scores[clip], **result})
    table = pa.Table.from_pylist(rows, schema=schema)
    write_parquet(args.out, table)
    split = Counter(
        split_of(args.split_seed, clip) for clip in table.column("clip_name").to_pylist()
    )
    current_run().record(
        features=list(args.features),
        columns=table.column_names,
        mos_scale=args.mos_scale,
        split={"seed": args.split_seed, "by": "content", **{k: split[k] for k in sorted(split)}},
        workers=args.workers,
        restarts=restarts,
        clips_in_scores=len(clips),
        row_count=table.num_rows,
        failed_count=len(failed),
        failed=failed,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
