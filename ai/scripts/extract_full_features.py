"""Extract per-frame FULL_FEATURES for every reference/distorted pair into parquet (ADR-0670).

Pairs come from the corpus root: each ``dis/<content>__<condition>.yuv`` against
``ref/<content>.yuv``. libvmaf results are read from --cache-dir; the vmaf binary (--vmaf-bin)
runs only for a pair the cache lacks, and its result joins the cache. A pair that fails is left
out of the table and named in the manifest, and the run exits 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow as pa

from ai.common.cli import add_features, add_manifest_out, fail
from ai.common.files import InputError, write_parquet
from ai.features.libvmaf import Cache, Pair
from ai.features.tables import per_frame_schema
from provenance import current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--corpus-root", type=Path, required=True, help="holds ref/ and dis/")
    parser.add_argument("--cache-dir", type=Path, required=True, help="libvmaf JSON per pair")
    parser.add_argument("--vmaf-bin", default="vmaf", help="the vmaf binary, run on a cache miss")
    add_features(parser)
    parser.add_argument("--width", type=int, default=1920, help="YUV width for the vmaf binary")
    parser.add_argument("--height", type=int, default=1080, help="YUV height for the vmaf binary")
    parser.add_argument("--out", type=Path, required=True, help="the per-frame parquet")
    add_manifest_out(parser, "<out>")
    return parser


def find_pairs(root: Path, width: int, height: int) -> list[Pair]:
    if not root.is_dir():
        raise InputError(f"{root}: no such folder")
    distorted = sorted((root / "dis").glob("*.yuv"))
    if not distorted:
        raise InputError(f"{root}: no distorted clips under dis/")
    pairs = []
    for path in distorted:
        content = path.stem.split("__", 1)[0]
        pairs.append(Pair(path.stem, root / "ref" / f"{content}.yuv", path, width, height))
    return pairs


@recorded_run(inputs={"corpus_root": "corpus_root", "cache": "cache_dir"}, outputs={"table": "out"})
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        pairs = find_pairs(args.corpus_root, args.width, args.height)
    except InputError as err:
        return fail(parser.prog, err)
    cache = Cache(args.cache_dir, args.vmaf_bin)
    columns: dict[str, list[object]] = {name: [] for name in per_frame_schema(args.features).names}
    failed = []
    for pair in pairs:
        try:
            if not pair.reference.is_file():
                raise InputError(f"no reference {pair.reference}")
            result = cache.get(pair, args.features)
            values = {name: result.feature(name) for name in args.features}
        except InputError as err:
            failed.append({"pair": pair.key, "error": str(err)})
            print(f"{parser.prog}: {err}", file=sys.stderr)
            continue
        frames = len(result.frames)
        columns["key"] += [pair.key] * frames
        columns["frame_index"] += list(range(frames))
        for name in args.features:
            columns[name] += values[name]
        columns["vmaf"] += result.frame_vmaf()
    table = pa.Table.from_pydict(columns, schema=per_frame_schema(args.features))
    write_parquet(args.out, table)
    current_run().record(
        corpus_root=args.corpus_root,
        cache_root=args.cache_dir,
        vmaf_bin=args.vmaf_bin,
        features=list(args.features),
        columns=table.column_names,
        pair_count=len(pairs),
        row_count=table.num_rows,
        cache={"hits": cache.hits, "misses": cache.misses},
        failed_count=len(failed),
        failed=failed,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
