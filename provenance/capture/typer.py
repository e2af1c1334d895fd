"""The typer adapter: typer runs its own copy of click, served like click (see ``_clicklike``)."""

from __future__ import annotations

import typer._click.core
import typer._click.globals
import typer.exceptions

from provenance.capture._clicklike import Flavour

_TYPER = Flavour(
    framework="typer",
    command=typer._click.core.Command,
    current=lambda: typer._click.globals.get_current_context(silent=True),
    exit=typer.exceptions.Exit,
    failures=(typer.exceptions.TyperException,),
    abort=typer.exceptions.Abort,
    interrupted=130,
)
patch, started, exit_status = _TYPER.patch, _TYPER.started, _TYPER.exit_status
