"""A jsonargparse script shaped as LightningCLI builds one: a ``fit`` subcommand, a class-typed
``trainer.logger`` (``class_path`` + ``init_args``), checkpoints under a root folder it picks,
and the config saved with ``parser.dump`` as Lightning's config callback does."""

from __future__ import annotations

import sys
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser

from provenance import Glob, recorded_run


class CSVLogger:
    def __init__(self, save_dir: str = ".", name: str = "lightning_logs", version: int = 0):
        self.save_dir, self.name, self.version = save_dir, name, version


class Trainer:
    def __init__(
        self, default_root_dir: str = ".", max_epochs: int = 1, logger: CSVLogger | None = None
    ):
        self.default_root_dir, self.max_epochs = default_root_dir, max_epochs


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="cli")
    fit = ArgumentParser()
    fit.add_argument("--config", action=ActionConfigFile)
    fit.add_class_arguments(Trainer, "trainer")
    fit.add_argument("--name", type=str, default="baseline")
    parser.add_subcommands().add_subcommand("fit", fit)
    return parser


@recorded_run(
    outputs={
        "checkpoints": Glob("{fit.trainer.default_root_dir}/**/*.ckpt"),
        "logs": Glob("{fit.trainer.logger.init_args.save_dir}/{fit.name}-*.log"),
    }
)
def main() -> int:
    parser = build_parser()
    cfg = parser.parse_args()
    root = Path(cfg.fit.trainer.default_root_dir)
    (root / "checkpoints").mkdir(parents=True, exist_ok=True)
    for epoch in range(cfg.fit.trainer.max_epochs):
        (root / "checkpoints" / f"epoch={epoch}.ckpt").write_text(f"weights {epoch}\n")
    logger = cfg.fit.trainer.logger
    if logger is not None:
        logs = Path(logger.init_args.save_dir)
        logs.mkdir(parents=True, exist_ok=True)
        (logs / f"{cfg.fit.name}-{logger.init_args.version}.log").write_text("loss 0.1\n")
    (root / "config.yaml").write_text(parser.dump(cfg))  # checks the logger's init_args again
    return 0


if __name__ == "__main__":
    sys.exit(main())
