"""Reshape cached BVI-DVC libvmaf JSON into vmaf-tune corpus rows with every v3 key (ADR-0670).

A cache file that cannot be used (a stem that does not parse, JSON that is not libvmaf output,
a source that is not under --source-root) fails that clip: the rows of the others are still
written, the manifest names each failure, and the run exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.common.cli import add_manifest_out, fail
from ai.common.files import InputError, sha256_file, write_jsonl
from ai.corpus.bvi_dvc import corpus_row, find_source, parse_stem
from ai.corpus.corpora import CORPUS_ROW_KEYS, SCHEMA_VERSION
from ai.features.libvmaf import load
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--cache-dir",
        type=Path,
        action="append",
        required=True,
        help="a folder of libvmaf JSON named <Name_WxH_FPSfps_...>.json (repeatable)",
    )
    parser.add_argument("--source-root", type=Path, required=True, help="the BVI-DVC sources")
    parser.add_argument("--output", type=Path, required=True, help="the corpus JSONL to write")
    parser.add_argument("--adapter-label", default="bvi-dvc", help="label of this adapter's rows")
    add_manifest_out(parser, "<output>")
    return parser


@recorded_run(inputs={"cache": "cache_dir", "sources": "source_root"}, outputs={"output": "output"})
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    missing = [d for d in [*args.cache_dir, args.source_root] if not d.is_dir()]
    if missing:
        return fail(parser.prog, InputError(f"{missing[0]}: no such folder"))
    cache_files = sorted(f for d in args.cache_dir for f in d.glob("*.json"))
    rows, failed, source_hashes = [], [], {}
    for path in cache_files:
        try:
            stem = parse_stem(path.stem)
            source = find_source(args.source_root, stem.source)
            if source is None:
                raise InputError(f"no source {stem.source}.* under {args.source_root}")
            if source not in source_hashes:
                source_hashes[source] = sha256_file(source)
            rows.append(corpus_row(stem, load(path), source, source_hashes[source]))
        except InputError as err:
            failed.append({"cache_file": path, "error": str(err)})
            print(f"{parser.prog}: {path}: {err}", file=sys.stderr)
    if not cache_files:
        return fail(parser.prog, InputError("no *.json files in the cache folder(s)"))
    write_jsonl(args.output, rows)
    current_run().record(
        adapter_label=args.adapter_label,
        cache_dirs=args.cache_dir,
        source_root=args.source_root,
        schema_version=SCHEMA_VERSION,
        row_keys=len(CORPUS_ROW_KEYS),
        row_count=len(rows),
        cache_file_count=len(cache_files),
        failed_count=len(failed),
        failed=failed,
        unavailable_keys=[k for k in CORPUS_ROW_KEYS if rows and all(r[k] is None for r in rows)],
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
