"""A trainer that can end in every unlucky way: for the fault, signal and concurrency tests.

It writes ``--out`` (``--size`` bytes, ``--tag`` repeated, so that two runs' bytes differ) unless
``--no-write``, touches ``--ready`` once under way, sleeps ``--hold`` seconds, then ends by
``--end``. ``--slow-hashing S`` stands for a slow disk: each declared path takes S seconds more
to hash, and ``--hashing`` is touched when the exit hashing begins.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import provenance.record.build
from provenance import Glob, current_run, recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--inputs", type=Path, nargs="*", default=[])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--tag", default="a")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--side-file", action="store_true", help="also write <out>.data")
    parser.add_argument("--hold", type=float, default=0.0)
    parser.add_argument("--end", choices=("ok", "fail", "raise"), default="ok")
    parser.add_argument("--ready", type=Path)
    parser.add_argument("--slow-hashing", type=float, default=0.0)
    parser.add_argument("--hashing", type=Path)
    return parser


def _slow_down(seconds: float, marker: Path | None) -> None:
    describe = provenance.record.build.describe_path

    def slow(*args, **kwargs):  # type: ignore[no-untyped-def]
        if marker is not None and not marker.exists():
            marker.write_text("hashing\n")
        time.sleep(seconds)
        return describe(*args, **kwargs)

    provenance.record.build.describe_path = slow  # type: ignore[assignment]


@recorded_run(
    inputs={"inputs": "inputs"},
    outputs={"model": "out", "data": Glob("{out}.data")},
)
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.slow_hashing:
        _slow_down(args.slow_hashing, args.hashing)
    if args.ready:
        args.ready.write_text("ready\n")
    if not args.no_write:
        unit = (args.tag * 64).encode()
        with open(args.out, "wb") as handle:
            handle.write((unit * (args.size // len(unit) + 1))[: args.size])
        if args.side_file:
            Path(f"{args.out}.data").write_bytes(unit)
    time.sleep(args.hold)
    current_run().gate("plcc", passed=args.end == "ok", plcc=0.9 if args.end == "ok" else 0.1)
    if args.end == "raise":
        raise RuntimeError("the corpus went away")
    return 0 if args.end == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
