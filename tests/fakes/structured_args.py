"""Scores a table under a config whose parsed arguments hold sets inside objects and open files.

Their reprs would differ per process (set order follows the hash seed) and per locale (an open
file's repr names its encoding); the sidecar must not.
"""

from __future__ import annotations

import argparse
import sys
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from provenance import current_run, recorded_run

Window = namedtuple("Window", ["start", "stop", "skip"])


@dataclass(frozen=True)
class Cfg:
    name: str
    tags: frozenset[str]


def config(text: str) -> Cfg:
    """``name:tag,tag,...`` as a ``Cfg``."""
    name, _, tags = text.partition(":")
    return Cfg(name, frozenset(tags.split(",")))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--table", type=argparse.FileType("r"), required=True)
    parser.add_argument("--log", type=argparse.FileType("w"), default="-")
    parser.add_argument("--cfg", type=config, default="base:alpha,beta,gamma,delta,epsilon,zeta")
    parser.add_argument("--out", type=Path, required=True)
    parser.set_defaults(
        stages=argparse.Namespace(run={"train", "eval", "export", "report", "gate", "seed"}),
        extras=SimpleNamespace(metrics={"plcc", "srcc", "krcc", "rmse", "mae", "bias"}),
        window=Window(0, 10, frozenset({"b", "d", "f", "h", "j", "l"})),
    )
    return parser


@recorded_run(inputs={"table": lambda args: args.table.name}, outputs={"report": "out"})
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    rows = args.table.read().splitlines()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"{args.cfg.name}\t{len(rows)}\n")
    print(f"{len(rows)} rows", file=args.log)
    current_run().record(rows=len(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
