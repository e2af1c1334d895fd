"""An argparse script that reads its own JSON config file, named in ``config=``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from provenance import recorded_run


@recorded_run(outputs={"model": "out"}, config="config")
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--api-token")
    args = parser.parse_args(argv)
    settings = json.loads(args.config.read_text()) if args.config else {}
    args.out.write_text(f"epochs={settings.get('epochs', 50)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
