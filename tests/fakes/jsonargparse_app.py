"""A jsonargparse training script that takes a YAML ``--config``, as LightningCLI users do."""

from __future__ import annotations

import sys
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser

from provenance import recorded_run


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="train")
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_argument("--data.train_path", type=str, required=True)
    parser.add_argument("--trainer.epochs", type=int, default=50)
    parser.add_argument("--trainer.out", type=str, required=True)
    parser.add_argument("--wandb.api_key", type=str, default="")
    parser.add_argument("--end", type=str, default="return")
    return parser


@recorded_run(
    inputs={"train": "data.train_path"},
    outputs={"model": lambda cfg: cfg.trainer.out},
)
def main(argv: list[str] | None = None) -> int:
    cfg = build_parser().parse_args(argv)
    Path(cfg.trainer.out).write_text(f"model after {cfg.trainer.epochs} epochs\n")
    if cfg.end == "raise":
        raise RuntimeError("diverged")
    return 4 if cfg.end == "return-4" else 0


if __name__ == "__main__":
    sys.exit(main())
