"""Per-clip FULL_FEATURES statistics from the libvmaf cache and the clips' scores (ADR-0668).

Scores come from a CSV of clip_name,mos, or from corpus JSONL (an aggregate_corpora output:
each row's clip is the basename of its src, its MOS the native one; --corpus picks one corpus).

Writes the per-clip parquet (clip_name, mos, width, height, fps, is_hdr, motion_fps_weight,
then <feature>_mean / <feature>_std). The clip columns stay null until the table is enriched
with clip metadata. A clip that fails (not in the cache, not libvmaf JSON, a feature missing)
is left out and named in the manifest; the table is still written and the run exits 1.

Resume: as clips complete, their statistics go into ``<out>.done`` (replaced atomically every
--checkpoint-every clips), with the digest of the cache file each was read from. A run that
finds ``<out>.done`` takes those clips from it and reads only the rest, so an interrupted run
ends with the table an uninterrupted one writes; the file is removed once the table is written.
A ``.done`` that is not one, that a run with other inputs or options wrote, or whose cache
files have changed, is refused (exit 2). AI_EXTRACT_CLIP_DELAY=SECONDS makes each worker wait
that long before each clip: for tests that stop a run part-way through.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa

from ai.common.cli import add_features, add_manifest_out, fail
from ai.common.files import InputError, write_parquet
from ai.corpus.scores import SCALE_RANGES, read_corpus_scores, read_scores
from ai.features.extraction import (
    BackendCounts,
    Extracted,
    Ledger,
    extract,
    extractor_split,
    load_ledger,
)
from ai.features.libvmaf import Cache
from ai.features.tables import feature_columns, per_clip_schema, split_of
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
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=64,
        help="clips between two rewrites of the <out>.done resume file",
    )
    parser.add_argument("--out", type=Path, required=True, help="the per-clip parquet")
    add_manifest_out(parser, "<out>")
    return parser


@recorded_run(inputs={"cache": "cache_dir", "scores": "scores"}, outputs={"table": "out"})
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers < 1 or args.retries < 0 or args.checkpoint_every < 1:
        parser.error("--workers and --checkpoint-every must be at least 1, --retries at least 0")
    cache = Cache(args.cache_dir)
    done_path = args.out.with_name(args.out.name + ".done")
    try:
        if not args.cache_dir.is_dir():
            raise InputError(f"{args.cache_dir}: no such folder")
        mos_range = SCALE_RANGES[args.mos_scale]
        if args.scores.suffix == ".jsonl":
            scores = read_corpus_scores(args.scores, args.corpus, mos_range)
        else:
            scores = read_scores(args.scores, mos_range)
        clips = sorted(scores)
        run_key = {
            "cache_dir": str(args.cache_dir),
            "scores_sha256": hashlib.sha256(args.scores.read_bytes()).hexdigest(),
            "corpus": args.corpus,
            "mos_scale": args.mos_scale,
            "features": list(args.features),
        }
        if done_path.exists():
            ledger = load_ledger(done_path, run_key, cache, clips, args.features)
            resumed = {
                "from": str(done_path),
                "clips": len(ledger.clips),
                "sha256": ledger.sha256(),
            }
        else:
            ledger, resumed = Ledger(done_path, run_key), None
    except InputError as err:
        return fail(parser.prog, err)
    backend = BackendCounts(args.workers, list(args.features))
    errors: dict[str, InputError] = {}
    pending = 0
    todo = [clip for clip in clips if clip not in ledger.clips]
    for outcome in extract(cache, todo, args.features, args.workers, args.retries):
        backend.add(outcome)
        if isinstance(outcome.result, InputError):
            errors[outcome.clip] = outcome.result
            continue
        ledger.clips[outcome.clip] = outcome.result
        pending += 1
        if pending == args.checkpoint_every:
            ledger.write()
            pending = 0
    schema = per_clip_schema(args.features)
    columns = feature_columns(args.features)
    rows, failed, kept = [], [], []
    for clip in clips:
        if clip in errors:
            failed.append({"clip_name": clip, "error": str(errors[clip])})
            print(f"{parser.prog}: {errors[clip]}", file=sys.stderr)
            continue
        extracted: Extracted = ledger.clips[clip]
        kept.append(extracted)
        rows.append(
            {"clip_name": clip, "mos": scores[clip], **{c: extracted.stats[c] for c in columns}}
        )
    table = pa.Table.from_pylist(rows, schema=schema)
    write_parquet(args.out, table)
    done_path.unlink(missing_ok=True)  # the table now holds what the resume file held
    split = Counter(
        split_of(args.split_seed, clip) for clip in table.column("clip_name").to_pylist()
    )
    current_run().record(
        features=list(args.features),
        columns=table.column_names,
        mos_scale=args.mos_scale,
        split={"seed": args.split_seed, "by": "content", **{k: split[k] for k in sorted(split)}},
        backends=backend.record(),
        extractor_split=extractor_split(args.features, kept),
        restarts=backend.restarts,
        resumed=resumed,
        clips_in_scores=len(clips),
        row_count=table.num_rows,
        failed_count=len(failed),
        failed=failed,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
