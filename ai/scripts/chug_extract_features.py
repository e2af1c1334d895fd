"""The CHUG extractor's preflight: the content split map and the HDR metadata audit.

Reads the CHUG JSONL (one row per clip: src, pix_fmt, color_transfer, color_primaries,
max_luminance, as ffprobe reports them) and writes, before any feature is extracted, the split
map (--split-out: each clip's train/val/test split by a hash of --split-seed and its content,
with per-split counts and the digest of each split's ids) and the HDR audit (--audit-out: a
verdict per check and every clip that failed it). A failed audit exits 1 with both written; an
input error exits 2 with neither. The sidecar is beside the split map; the audit embeds it.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, write_json
from ai.features.chug import FAIL, PASS, AuditRules, audit, read_clips, split_map, split_parameters
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
    parser.add_argument("--split-out", type=Path, required=True, help="the split map JSON")
    parser.add_argument("--audit-out", type=Path, required=True, help="the HDR audit JSON")
    add_manifest_out(parser, "<split-out>")
    return parser


@recorded_run(
    inputs={"chug_jsonl": "chug_jsonl", "cache": "cache_dir", "clips": "clip_dir"},
    outputs={"split": "split_out", "audit": "audit_out"},
    embed_into="audit",
)
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    rules = AuditRules(
        args.transfers, args.primaries, args.min_bit_depth, args.min_peak_nits, args.max_peak_nits
    )
    try:
        if not args.cache_dir.is_dir():
            raise InputError(f"{args.cache_dir}: no such folder")
        if args.clip_dir is not None and not args.clip_dir.is_dir():
            raise InputError(f"{args.clip_dir}: no such folder")
        clips = read_clips(args.chug_jsonl)
    except InputError as err:
        return fail(parser.prog, err)
    source_sha256 = hashlib.sha256(args.chug_jsonl.read_bytes()).hexdigest()
    assignment, per_split = split_map(clips, args.split_seed)
    parameters = split_parameters(args.split_seed)
    checks = audit(clips, args.cache_dir, rules)
    failing = [name for name, check in checks.items() if check["verdict"] == FAIL]
    verdict = FAIL if failing else PASS
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
    for name in failing:
        print(f"{parser.prog}: HDR check {name} failed for {len(checks[name]['failing'])} "
              "clip(s)", file=sys.stderr)  # fmt: skip
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
