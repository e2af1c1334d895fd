"""Ends in whichever way --mode says, to exercise every row of the outcome table."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from provenance import recorded_run

MODES = (
    "return-none",
    "return-int",
    "exit-none",
    "exit-int",
    "exit-str",
    "raise",
    "interrupt",
    "wait",
    "wait-swallow",
    "return-value",
    "exit-value",
)


class _Exit(SystemExit):
    pass


class _HostileCode(SystemExit):
    @property
    def code(self) -> object:
        raise RuntimeError("no code here")


# Whatever main may return, or hand to sys.exit, by name: each becomes an exit code its own way.
VALUES: dict[str, object] = {
    "none": None,
    "zero": 0,
    "int": 3,
    "int-256": 256,
    "int-257": 257,
    "negative": -1,
    "negative-300": -300,
    "long-max": 2**63 - 1,
    "past-long": 2**63,
    "long-min": -(2**63),
    "below-long": -(2**63) - 1,
    "true": True,
    "false": False,
    "str": "gate failed: see the report",
    "empty-str": "",
    "float": 3.0,
    "object": object(),
    "error": KeyError("k"),
    "exit-int": SystemExit(3),
    "exit-zero": SystemExit(0),
    "exit-none": SystemExit(),
    "exit-str": SystemExit("bye"),
    "exit-300": SystemExit(300),
    "exit-of-exit": SystemExit(SystemExit(3)),
    "exit-args": SystemExit(1, 2),
    "exit-subclass": _Exit(4),
    "exit-hostile-code": _HostileCode(5),
    "tuple-one": (3,),
    "tuple-none": (None,),
    "tuple-empty": (),
    "tuple-two": (1, 2),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--code", type=int, default=3)
    parser.add_argument("--value", choices=VALUES, default="none")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--write", action="store_true", help="write the output before ending")
    parser.add_argument("--ready", type=Path, help="touched once the run is under way")
    return parser


@recorded_run(outputs={"result": "out"})
def main(argv: list[str] | None = None) -> object:
    args = build_parser().parse_args(argv)
    if args.write:
        args.out.write_text(f"{args.mode}\n")
    if args.ready:
        args.ready.write_text("ready\n")
    mode = args.mode
    if mode == "return-none":
        return None
    if mode == "return-int":
        return args.code
    if mode == "exit-none":
        sys.exit()
    if mode == "exit-int":
        sys.exit(args.code)
    if mode == "exit-str":
        sys.exit("gate failed: see the report")
    if mode == "return-value":
        return VALUES[args.value]
    if mode == "exit-value":
        sys.exit(VALUES[args.value])
    if mode == "raise":
        raise ValueError("features table has no rows")
    if mode == "interrupt":
        raise KeyboardInterrupt
    if mode == "wait-swallow":
        try:
            time.sleep(60)
        except BaseException:  # noqa: BLE001 -- the careless pattern this mode stands for
            return 0
    time.sleep(60)  # "wait": until the test sends SIGTERM
    return 0


if __name__ == "__main__":
    sys.exit(main())
