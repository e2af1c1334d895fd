"""A click training command written the way click users write one."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from provenance import current_run, recorded_run


@click.command()
@click.option("--features", type=click.Path(exists=True, dir_okay=False), required=True)
@click.option("--out", type=click.Path(dir_okay=False), required=True)
@click.option("--epochs", type=int, default=50, envvar="TRAIN_EPOCHS")
@click.option("--api-token", envvar="API_TOKEN", default=None)
@click.option("--verbose", "-v", is_flag=True)
@click.option(
    "--end",
    type=click.Choice(["return", "raise", "exit", "click-exit", "gate", "wait"]),
    default="return",
)
@recorded_run(inputs={"features": "features"}, outputs={"model": "out"})
def main(
    features: str, out: str, epochs: int, api_token: str | None, verbose: bool, end: str
) -> None:
    Path(out).write_text(f"model of {Path(features).name} after {epochs} epochs\n")
    if end == "wait":  # until a signal comes: <out>.ready says it is under way
        Path(f"{out}.ready").write_text("ready\n")
        time.sleep(120)
    if end == "raise":
        raise RuntimeError(f"diverged at epoch {epochs}")
    if end == "exit":
        sys.exit(3)
    if end == "click-exit":
        raise click.exceptions.Exit(4)
    if end == "gate":
        current_run().gate("rmse", passed=False, value=0.9, threshold=0.5)
        sys.exit(5)


if __name__ == "__main__":
    main()
