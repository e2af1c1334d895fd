"""A script whose ``main`` takes no argument and reads ``sys.argv``, as most third-party
scripts' do; ``--crash`` makes it raise after its parse, ``--crash-early`` before it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from provenance import recorded_run


@recorded_run(outputs={"model": "out"})
def main() -> int:
    if "--crash-early" in sys.argv:
        raise TypeError("a script's own mistake, before its parse")
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--crash", action="store_true")
    args = parser.parse_args()
    Path(args.out).write_text(f"{sys.argv[0]}\n")
    if args.crash:
        raise TypeError("a script's own mistake")
    return 0


if __name__ == "__main__":
    sys.exit(main())
