"""A script with no ``main`` at all: its work is the body of ``if __name__ == "__main__"``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from provenance import recorded_run

if __name__ == "__main__":
    with recorded_run(outputs={"report": "out"}):
        parser = argparse.ArgumentParser()
        parser.add_argument("--out", required=True)
        args = parser.parse_args()
        Path(args.out).write_text("report\n")
    sys.exit(3 if Path(args.out).read_text() != "report\n" else 0)
