"""A click command with nothing of provenance in it."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--features", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--out", type=click.Path(dir_okay=False), required=True)
@click.option("--epochs", type=int, default=50, envvar="TRAIN_EPOCHS")
def main(features: str, out: str, epochs: int) -> None:
    Path(out).write_text(f"model of {Path(features).name} after {epochs} epochs\n")


if __name__ == "__main__":
    main()
