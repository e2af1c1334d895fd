"""The click adapter: each command's params once click resolved them (see ``_clicklike``)."""

from __future__ import annotations

import click

from provenance.capture._clicklike import Flavour

_CLICK = Flavour(
    framework="click",
    command=click.Command,
    current=lambda: click.get_current_context(silent=True),
    exit=click.exceptions.Exit,
    failures=(click.ClickException,),
    abort=click.Abort,
)
patch, started, exit_status = _CLICK.patch, _CLICK.started, _CLICK.exit_status
