"""Train the CHUG HDR MOS head: the shared KonViD trainer with CHUG's defaults.

CHUG MOS arrives on 0-100 (mapped onto 1-5) and every row must be marked HDR unless
--allow-sdr. Every other option is the KonViD trainer's. The run's sidecar names this script
as its entrypoint and the KonViD trainer as the shared implementation it delegated to. Its exit
codes are the KonViD trainer's: 0 whether the gate passed or failed (the verdict is in the model
JSON's ``gate.passed`` and the sidecar's gate), 2 on an input error.
"""

from __future__ import annotations

import argparse
import sys

from ai.scripts import train_konvid_mos_head
from provenance import recorded_run

CHUG_DEFAULTS = ["--mos-scale", "0-100", "--model-id", "chug_hdr_mos_head"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog="Other options are train_konvid_mos_head.py's; CHUG's defaults come first, so "
        "any given here win.",
    )
    parser.add_argument("--allow-sdr", action="store_true", help="accept rows not marked HDR")
    return parser


@recorded_run
def main(argv: list[str] | None = None) -> int:
    args, rest = build_parser().parse_known_args(argv)
    hdr = [] if args.allow_sdr else ["--require-hdr"]
    return train_konvid_mos_head.main([*CHUG_DEFAULTS, *hdr, *rest])


if __name__ == "__main__":
    sys.exit(main())
