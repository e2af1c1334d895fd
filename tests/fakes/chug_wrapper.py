"""A CHUG-style wrapper: its own identity, delegating to the shared trainer with defaults."""

from __future__ import annotations

import sys

from provenance import recorded_run
from tests.fakes import trainer

CHUG_DEFAULTS = ["--min-plcc", "0.8"]


@recorded_run
def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else list(argv)
    if "--fail-before-delegating" in given:
        raise RuntimeError("CHUG corpus root is not mounted")
    return trainer.main([*CHUG_DEFAULTS, *given])


if __name__ == "__main__":
    sys.exit(main())
