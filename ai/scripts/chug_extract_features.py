"""CHUG feature extraction, with its preflight: the content split map and the HDR audit.

Reads the CHUG JSONL (one row per clip: src, pix_fmt, color_transfer, color_primaries,
max_luminance, as ffprobe reports them, width, height, framerate, and mos on CHUG's 0-100 scale
where the row has one) and the libvmaf cache. Writes the per-clip feature parquet (--out:
clip_name, mos, width, height, fps, is_hdr, motion_fps_weight from the row, then
<feature>_mean / <feature>_std from the clip's libvmaf JSON), and, settled before any
feature is extracted, the split map (--split-out: each clip's train/val/test split by a hash
of --split-seed and its content, with per-split counts and the digest of each split's ids)
and the HDR audit (--audit-out: a verdict per check and every clip that failed it). A failed
audit, or a clip whose features could not be read (left out of the table, named in the
record), exits 1 with all three written; an input error exits 2 with none. The sidecar is
beside the split map; the audit embeds it.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import pyarrow as pa

from ai.common.cli import add_features, add_manifest_out, fail
from ai.common.files import InputError, write_json, write_parquet
from ai.features.chug import (
    FAIL,
    PASS,
    AuditRules,
    audit,
    clip_columns,
    read_clips,
    split_map,
    split_parameters,
)
from ai.features.extraction import BackendCounts, Extracted, extract, extractor_split
from ai.features.libvmaf import Cache
from ai.features.tables import feature_columns, per_clip_schema
from provenance import current_run, recorded_run


def names(text: str) -> frozenset[str]:
    values = frozenset(v.strip() for v in text.split(",") if v.strip())
    if not values:
        raise argparse.ArgumentTypeError("expected comma-separated names")
    return values


def build_parser() -> argparse.ArgumentParser:
    rules = AuditRules()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chug-jsonl", type=Path, required=True, help="the CHUG clip rows")
    parser.add_argument("--cache-dir", type=Path, required=True, help="libvmaf JSON per clip")
    parser.add_argument("--clip-dir", type=Path, help="the CHUG clips, when they are at hand")
    parser.add_argument("--vmaf-bin", default="vmaf", help="the vmaf binary extraction will run")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the content split")
    parser.add_argument(
        "--transfers", type=names, default=rules.transfers, help="HDR transfer functions"
    )
    parser.add_argument("--primaries", type=names, default=rules.primaries, help="HDR primaries")
    parser.add_argument("--min-bit-depth", type=int, default=rules.min_bit_depth, help="bits")
    parser.add_argument("--min-peak-nits", type=float, default=rules.min_peak_nits, help="cd/m2")
    parser.add_argument("--max-peak-nits", type=float, default=rules.max_peak_nits, help="cd/m2")
    add_features(parser)
    parser.add_argument("--workers", type=int, default=4, help="threads reading the cache")
    parser.add_argument(
        "--retries", type=int, default=1, help="times a cache file that gave an I/O error is reread"
    )
    parser.add_argument("--out", type=Path, required=True, help="the per-clip feature parquet")
    parser.add_argument("--split-out", type=Path, required=True, help="the split map JSON")
    parser.add_argument("--audit-out", type=Path, required=True, help="the HDR audit JSON")
    add_manifest_out(parser, "<split-out>")
    return parser


@recorded_run(
    inputs={"chug_jsonl": "chug_jsonl", "cache": "cache_dir", "clips": "clip_dir"},
    outputs={"split": "split_out", "audit": "audit_out", "table": "out"},
    embed_into=("split", "audit"),
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.workers < 1 or args.retries < 0:
        parser.error("--workers must be at least 1 and --retries at least 0")
    rules = AuditRules(
        args.transfers, args.primaries, args.min_bit_depth, args.min_peak_nits, args.max_peak_nits
    )
    try:
        if not args.cache_dir.is_dir():
            raise InputError(f"{args.cache_dir}: no such folder")
        if args.clip_dir is not None and not args.clip_dir.is_dir():
            raise InputError(f"{args.clip_dir}: no such folder")
        clips = read_clips(args.chug_jsonl)
        heads = {clip.name: clip_columns(args.chug_jsonl, clip) for clip in clips}
    except InputError as err:
        return fail(parser.prog, err)
    source_sha256 = hashlib.sha256(args.chug_jsonl.read_bytes()).hexdigest()
    assignment, per_split = split_map(clips, args.split_seed)
    parameters = split_parameters(args.split_seed)
    checks = audit(clips, args.cache_dir, rules)
    failing = [name for name, check in checks.items() if check["verdict"] == FAIL]
    verdict = FAIL if failing else PASS
    backend = BackendCounts(args.workers, list(args.features))
    columns = feature_columns(args.features)
    rows, kept, failed = [], [], []
    cache = Cache(args.cache_dir)
    names = [clip.name for clip in clips]
    for outcome in extract(cache, names, args.features, args.workers, args.retries):
        backend.add(outcome)
        if isinstance(outcome.result, InputError):
            failed.append({"clip_name": outcome.clip, "error": str(outcome.result)})
            continue
        extracted: Extracted = outcome.result
        kept.append(extracted)
        stats = {c: extracted.stats[c] for c in columns}
        rows.append({"clip_name": outcome.clip, **heads[outcome.clip], **stats})
    table = pa.Table.from_pylist(rows, schema=per_clip_schema(args.features))
    run = current_run()
    run.gate(
        "hdr_preflight",
        not failing,
        failing_checks=failing,
        failing_clips={n: len(c["failing"]) for n, c in checks.items() if c["failing"]},
    )
    run.record(
        source=args.chug_jsonl,
        cache_root=args.cache_dir,
        clip_dir=args.clip_dir,
        vmaf_bin=args.vmaf_bin,
        clips=len(clips),
        split=parameters,
        per_split=per_split,
        rules=rules.as_record(),
        audit={name: check["verdict"] for name, check in checks.items()},
        features=list(args.features),
        columns=table.column_names,
        backends=backend.record(),
        restarts=backend.restarts,
        extractor_split=extractor_split(args.features, kept),
        row_count=table.num_rows,
        failed_count=len(failed),
        failed=failed,
    )
    write_json(
        args.split_out,
        {
            "source": args.chug_jsonl.name,
            "source_sha256": source_sha256,
            "parameters": parameters,
            "splits": per_split,
            "clips": assignment,
        },
    )
    write_json(
        args.audit_out,
        {
            "source": args.chug_jsonl.name,
            "source_sha256": source_sha256,
            "clips": len(clips),
            "rules": rules.as_record(),
            "checks": checks,
            "failing_checks": failing,
            "verdict": verdict,
        },
    )
    write_parquet(args.out, table)
    for item in failed:
        print(f"{parser.prog}: {item['error']}", file=sys.stderr)
    for name in failing:
        print(f"{parser.prog}: HDR check {name} failed for {len(checks[name]['failing'])} "
              "clip(s)", file=sys.stderr)  # fmt: skip
    return 1 if failing or failed else 0


if __name__ == "__main__":
    sys.exit(main())
