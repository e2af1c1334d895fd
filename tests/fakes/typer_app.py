"""A typer app with subcommands, as an ML project's training CLI is written."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from provenance import recorded_run

app = typer.Typer(add_completion=False)


@app.callback()
def common(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Options every subcommand shares."""


@app.command()
@recorded_run(inputs={"features": "features"}, outputs={"model": "out"})
def fit(
    features: Annotated[Path, typer.Option(exists=True, dir_okay=False)],
    out: Annotated[Path, typer.Option()],
    epochs: Annotated[int, typer.Option(envvar="TRAIN_EPOCHS")] = 50,
    wandb_api_key: Annotated[str, typer.Option(envvar="WANDB_API_KEY")] = "",
) -> None:
    """Fit a model on the features."""
    out.write_text(f"model of {features.name} after {epochs} epochs\n")


@app.command()
@recorded_run(inputs={"model": "model"}, outputs={"onnx": "out"})
def export(
    model: Annotated[Path, typer.Option(exists=True)], out: Annotated[Path, typer.Option()]
) -> None:
    """Export the model."""
    out.write_text(f"onnx of {model.name}\n")
    raise typer.Exit(0)


if __name__ == "__main__":
    app()
