"""Capture argparse results without the script passing them anywhere.

While at least one run is active, ``ArgumentParser``'s parse methods are wrapped with wrapt; the
wrapper reports only to the listener of the current context, so other threads and code outside a
run parse exactly as before. The patch is removed again when the last run ends.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Protocol

import wrapt

_METHODS = (
    "parse_args",
    "parse_known_args",
    "parse_intermixed_args",
    "parse_known_intermixed_args",
)


class ParseListener(Protocol):
    def on_parsed(
        self, parser: argparse.ArgumentParser, argv: list[str], namespace: argparse.Namespace
    ) -> None: ...

    def on_parse_exit(self, exc: SystemExit) -> None: ...


_listener: ContextVar[ParseListener | None] = ContextVar("provenance_parse_listener", default=None)
# Depth of nested parse calls: parse_args calls parse_known_args, subparsers parse again.
_depth: ContextVar[int] = ContextVar("provenance_parse_depth", default=0)

_lock = threading.Lock()
_users = 0
_handles: list[tuple[str, Any]] = []


def _parse_wrapper(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    listener = _listener.get()
    if listener is None or not isinstance(instance, argparse.ArgumentParser):
        return wrapped(*args, **kwargs)
    depth = _depth.get()
    token = _depth.set(depth + 1)
    try:
        result = wrapped(*args, **kwargs)
    except SystemExit as exc:  # --help, --version or a usage error: nothing was parsed
        if depth == 0:
            listener.on_parse_exit(exc)
        raise
    finally:
        _depth.reset(token)
    if depth == 0:
        namespace = result[0] if isinstance(result, tuple) else result
        listener.on_parsed(instance, _given_argv(wrapped, args, kwargs), namespace)
    return result


def _given_argv(wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    bound = inspect.signature(wrapped).bind(*args, **kwargs)
    given = bound.arguments.get("args")
    return [str(a) for a in (sys.argv[1:] if given is None else given)]


def _acquire() -> None:
    global _users
    with _lock:
        if _users == 0:
            for name in _METHODS:
                handle = wrapt.wrap_function_wrapper(argparse.ArgumentParser, name, _parse_wrapper)
                _handles.append((name, handle))
        _users += 1


def _release() -> None:
    global _users
    with _lock:
        _users -= 1
        if _users:
            return
        while _handles:
            name, handle = _handles.pop()
            # If someone patched on top of us, our wrapper stays: it is inert without a
            # listener, while tearing theirs off would not be safe.
            with contextlib.suppress(wrapt.WrapperNotOutermostError, wrapt.WrapperNotFoundError):
                wrapt.unwrap_object(argparse.ArgumentParser, name, handle, missing_ok=True)


def patched() -> bool:
    """Whether the argparse patch is installed now (for tests and diagnostics)."""
    with _lock:
        return bool(_handles)


@contextmanager
def capturing(listener: ParseListener) -> Iterator[None]:
    """Report the parses made in this context to ``listener`` for the duration of the block."""
    _acquire()
    token = _listener.set(listener)
    depth_token = _depth.set(0)
    try:
        yield
    finally:
        _depth.reset(depth_token)
        _listener.reset(token)
        _release()
