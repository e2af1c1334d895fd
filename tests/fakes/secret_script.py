"""Takes credentials on the command line, as real download or upload scripts do."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from provenance import recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--api-token")
    parser.add_argument("-p", "--password")
    parser.add_argument("--hfToken", dest="hf_token")
    parser.add_argument("--db-url", help="secret only when the caller says so")
    parser.add_argument("--tokenizer", default="bpe", help="not a secret")
    parser.add_argument("--max-tokens", type=int, default=16, help="not a secret")
    return parser


@recorded_run(outputs={"out": "out"}, redact=["db_url"])
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.out.write_text("ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
