"""Takes its credentials in the forms redaction by shape alone misses: options under another
prefix character, a key that ``type=`` turns into a number, and a short password that the
script's own error message repeats."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from provenance import recorded_run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prefix_chars="-+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("+p", "++password")
    parser.add_argument("--api-key", type=lambda text: int(text, 16))
    parser.add_argument("--db-pass")
    parser.add_argument("--fail", action="store_true", help="raise, naming the password")
    return parser


@recorded_run(outputs={"out": "out"})
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.out.write_text("ok\n")
    if args.fail:
        raise ConnectionError(f"login refused for password {args.db_pass} at db:5432")
    return 0


if __name__ == "__main__":
    sys.exit(main())
