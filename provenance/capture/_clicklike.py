"""What click and typer's own copy of click share: contexts made, resolved and reported alike.

Outside a run, a context is made and reported as ``make_context`` returns; a run that starts
inside a command (the decorator on the command's function, the usual place) reports the
contexts already open, from the outermost group down. This module imports neither framework:
``click`` and ``typer`` bind it to theirs.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from provenance import capture


@dataclass(frozen=True)
class Flavour:
    """One click: its name, its command class, its current context and its exceptions."""

    framework: str
    command: type
    current: Callable[[], Any]  # the open context, or None
    exit: type[BaseException]  # ends with a status and no error (typer.Exit(3))
    failures: tuple[type[BaseException], ...]  # end with an error and their exit_code
    abort: type[BaseException]
    # The status its main ends the process with when Ctrl-C reaches it: click prints
    # "Aborted!" and exits 1, typer exits 130.
    interrupted: int = 1

    def patch(self) -> None:
        """Wrap ``make_context``, where click parses and resolves a command's params."""
        capture.wrap(self.command, "make_context", self._make_context)

    def started(
        self, listener: capture.ParseListener, given: tuple[tuple[Any, ...], Mapping[str, Any]]
    ) -> None:
        """Report the contexts open when a run starts inside a command."""
        ctx = self.current()
        chain = []
        while ctx is not None:
            chain.append(ctx)
            ctx = ctx.parent
        for each in reversed(chain):
            self._report(listener, each)

    def exit_status(self, exc: BaseException) -> tuple[int, bool] | None:
        """The status the exception ends the process with, and whether it is an error."""
        if isinstance(exc, self.exit):
            return int(getattr(exc, "exit_code", 0)), False
        if isinstance(exc, self.failures):
            return int(getattr(exc, "exit_code", 1)), True
        if isinstance(exc, self.abort):
            return 1, True
        if isinstance(exc, KeyboardInterrupt) and self.current() is not None:
            # Raised inside a command: it reaches the framework's main, which decides.
            return self.interrupted, True
        return None

    def _make_context(
        self, wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        listener = capture.listener()
        if listener is None:
            return wrapped(*args, **kwargs)
        try:
            ctx = wrapped(*args, **kwargs)
        except (self.exit, self.abort, *self.failures) as exc:
            listener.on_parse_exit(exc)  # --help or a usage error: nothing runs
            raise
        if not getattr(ctx, "resilient_parsing", True):  # shell completion parses leniently
            self._report(listener, ctx)
        return ctx

    def _report(self, listener: capture.ParseListener, ctx: Any) -> None:
        listener.on_resolved(
            capture.Resolution(
                framework=self.framework,
                params=dict(ctx.params),
                command=ctx.command_path,
                parsers=(options(ctx.command),),
                # A group's context comes before its command's: not the last word yet.
                complete=not hasattr(ctx.command, "list_commands"),
            )
        )


def options(command: Any) -> argparse.ArgumentParser:
    """A command's options in argparse's terms, so that argv is redacted as argparse's is."""
    parser = argparse.ArgumentParser(
        prog=command.name or "", add_help=False, conflict_handler="resolve"
    )
    for param in command.params:
        if getattr(param, "param_type_name", None) != "option" or not param.name:
            continue
        names = [o for o in (*param.opts, *param.secondary_opts) if o.startswith("-")]
        if not names:
            continue
        if param.is_flag or param.count:
            parser.add_argument(*names, dest=param.name, action="store_true")
        else:
            nargs = "*" if param.nargs < 0 else None if param.nargs == 1 else param.nargs
            parser.add_argument(*names, dest=param.name, nargs=nargs)
    return parser
