"""The argparse adapter: ``ArgumentParser``'s parse methods, reported as parsed."""

from __future__ import annotations

import argparse
import inspect
import sys
from typing import Any

from provenance import capture

_METHODS = (
    "parse_args",
    "parse_known_args",
    "parse_intermixed_args",
    "parse_known_intermixed_args",
)


def patch() -> None:
    """Wrap the parse methods of ``argparse.ArgumentParser``."""
    for name in _METHODS:
        capture.wrap(argparse.ArgumentParser, name, _parse_wrapper)


def _parse_wrapper(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if capture.listener() is None or not isinstance(instance, argparse.ArgumentParser):
        return wrapped(*args, **kwargs)
    with capture.parsing() as listener:
        try:
            result = wrapped(*args, **kwargs)
        except SystemExit as exc:  # --help, --version or a usage error: nothing was parsed
            if listener is not None and not capture.ignored(instance):
                listener.on_parse_exit(exc)
            raise
    if listener is not None and not capture.ignored(instance):
        known = isinstance(result, tuple)  # parse_known_args: a later parse may supply more
        namespace = result[0] if known else result
        argv = _given_argv(wrapped, args, kwargs)
        listener.on_parsed(instance, argv, namespace, complete=not known)
    return result


def _given_argv(wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    bound = inspect.signature(wrapped).bind(*args, **kwargs)
    given = bound.arguments.get("args")
    return [str(a) for a in (sys.argv[1:] if given is None else given)]
