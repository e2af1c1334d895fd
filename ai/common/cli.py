"""What every ai/ script's command line shares: the sidecar option, feature lists, errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ai.features.libvmaf import FULL_FEATURES, parse_features


def add_manifest_out(parser: argparse.ArgumentParser, beside: str) -> None:
    """``--manifest-out``: where the sidecar goes instead of ``<beside>.manifest.json``."""
    parser.add_argument(
        "--manifest-out", type=Path, help=f"sidecar path (default: {beside}.manifest.json)"
    )


def add_features(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--features",
        type=parse_features,
        default=FULL_FEATURES,
        help="comma-separated features (default: all of FULL_FEATURES)",
    )


def fail(prog: str, err: Exception) -> int:
    """Report an input error the way every ai/ script does, and give its exit code (2)."""
    print(f"{prog}: error: {err}", file=sys.stderr)
    return 2
