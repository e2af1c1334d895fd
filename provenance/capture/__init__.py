"""Capture what a script's CLI or config framework resolved, and the seeds it set, without the
script passing them on.

One listener (the run) hears every framework through the same few methods; each framework has
an adapter module here that knows only that framework. While at least one run is active, each
adapter whose framework the script has imported is patched in with wrapt; its wrappers report
only to the listener of the current context, so other threads and code outside a run behave
exactly as before. A framework imported later is patched when its import finishes (a wrapt
post-import hook); nothing here imports a framework, so a plain argparse script pays nothing
for the others. The patches are removed again when the last run ends.

Adding a framework is one module with ``patch()`` (and, where the framework needs them,
``started``, ``exit_status`` and ``ignores``) and one line in ``_ADAPTERS``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Protocol

import wrapt

# The module whose import means the script uses the framework -> the adapter that serves it.
_ADAPTERS: dict[str, str] = {
    "argparse": "provenance.capture.argparse",
    "click": "provenance.capture.click",
    "typer._click": "provenance.capture.typer",  # typer runs its own copy of click
    "hydra": "provenance.capture.hydra",
    "jsonargparse": "provenance.capture.jsonargparse",
    "transformers.hf_argparser": "provenance.capture.huggingface",
    # Seeding libraries: the seeds a script sets (see provenance.capture.seeds).
    "random": "provenance.capture.seeds.random",
    "numpy.random": "provenance.capture.seeds.numpy",
    "torch": "provenance.capture.seeds.torch",
    "transformers.trainer_utils": "provenance.capture.seeds.transformers",
    "lightning": "provenance.capture.seeds.lightning",
    "lightning_fabric": "provenance.capture.seeds.lightning_fabric",
}


@dataclass(frozen=True)
class Resolution:
    """What one framework resolved: the one shape every adapter reports in."""

    framework: str
    # What the user chose, by name, after the framework applied defaults, env vars and files.
    params: Mapping[str, Any]
    command: str | None = None  # the command path, for subcommands: "vmaf-train fit"
    # The resolved configuration, nested, when the framework has one (Hydra, config files).
    config: Mapping[str, Any] | None = None
    config_files: tuple[str, ...] = ()
    # What declarations are looked up in (dotted keys reach into nested mappings); the params
    # when None.
    lookup: Mapping[str, Any] | None = None
    # Parsers describing the CLI's options, so that secret options are redacted by name.
    parsers: tuple[argparse.ArgumentParser, ...] = field(default_factory=tuple)
    # Whether the CLI is resolved once this is: False for a click group whose command is still
    # to come. Declarations are checked against what a complete resolution gave.
    complete: bool = True


class ParseListener(Protocol):
    def on_parsed(
        self,
        parser: argparse.ArgumentParser,
        argv: list[str],
        namespace: argparse.Namespace,
        complete: bool = True,  # False for parse_known_args: a later parse may supply more
    ) -> None: ...

    def on_parse_exit(self, exc: BaseException) -> None: ...

    def on_resolved(self, resolution: Resolution) -> None: ...

    def on_seed(self, source: str, seed: Mapping[str, Any]) -> None: ...


_listener: ContextVar[ParseListener | None] = ContextVar("provenance_parse_listener", default=None)
# Depth of nested parse calls: parse_args calls parse_known_args, subparsers parse again, and a
# framework's own parse calls argparse's underneath.
_depth: ContextVar[int] = ContextVar("provenance_parse_depth", default=0)

_lock = threading.RLock()  # a post-import hook may fire while an adapter is being patched in
_users = 0
_handles: list[tuple[Any, str, Any]] = []
_active: dict[str, ModuleType] = {}  # adapters patched in now, by watched module
_loaded: dict[str, ModuleType] = {}  # every adapter this process has used
_hooked: set[str] = set()
_failed = ModuleType("provenance.capture.failed")  # stands for an adapter that could not patch


def listener() -> ParseListener | None:
    """The listener of this context, or None outside a run."""
    return _listener.get()


@contextmanager
def parsing() -> Iterator[ParseListener | None]:
    """Enter one parse call: yields the listener for the outermost call, None for nested ones."""
    depth = _depth.get()
    token = _depth.set(depth + 1)
    try:
        yield _listener.get() if depth == 0 else None
    finally:
        _depth.reset(token)


def wrap(
    owner: Any, name: str, wrapper: Callable[..., Any], *, aliases: tuple[str, ...] = ()
) -> None:
    """Patch ``owner.name`` with a wrapt wrapper until the last run ends.

    ``aliases`` name modules that may pick the wrapper up meanwhile (a package that re-exports
    it when imported during the run, a lazy package that caches it): it is taken out of them too.
    """
    handle = wrapt.wrap_function_wrapper(owner, name, wrapper)
    _handles.extend((alias, name, handle) for alias in aliases)  # undone after ``owner``
    _handles.append((owner, name, handle))


def ignored(parser: argparse.ArgumentParser) -> bool:
    """Whether ``parser`` is a framework's own (Hydra's), not the script's CLI."""
    return any(getattr(a, "ignores", _never)(parser) for a in list(_active.values()))


def exit_status(exc: BaseException) -> tuple[int, bool] | None:
    """The exit status a framework turns ``exc`` into, and whether it reports an error (click's
    ``Exit(3)`` does not, its ``UsageError`` does); None for an exception of no framework's.

    Asked once the run's patches are gone, so every adapter used counts.
    """
    for adapter in list(_loaded.values()):
        status: tuple[int, bool] | None = getattr(adapter, "exit_status", _none)(exc)
        if status is not None:
            return status
    return None


def _never(parser: argparse.ArgumentParser) -> bool:
    return False


def _none(exc: BaseException) -> None:
    return None


def _activate(watched: str) -> None:
    """Patch in the adapter of ``watched``, whose module the script has imported."""
    if watched in _active:
        return
    try:
        adapter = importlib.import_module(_ADAPTERS[watched])
        adapter.patch()
    except Exception as err:  # noqa: BLE001 -- a framework version we cannot patch must not stop the script
        # Said, not hidden: what this framework resolves will be missing from the record.
        print(
            f"provenance: cannot capture {watched} ({type(err).__name__}: {err}); what it "
            "resolves is not recorded",
            file=sys.stderr,
            flush=True,
        )
        _active[watched] = _failed
        return
    _active[watched] = _loaded[watched] = adapter


def _on_import(watched: str) -> Callable[[ModuleType], None]:
    def hook(module: ModuleType) -> None:
        with _lock:
            if _users:
                _activate(watched)

    return hook


def _acquire() -> None:
    global _users
    with _lock:
        if _users == 0:
            for watched in _ADAPTERS:
                if watched in sys.modules:
                    _activate(watched)
                elif watched not in _hooked:
                    _hooked.add(watched)
                    wrapt.register_post_import_hook(_on_import(watched), watched)
        _users += 1


def _release() -> None:
    global _users
    with _lock:
        _users -= 1
        if _users:
            return
        _active.clear()
        while _handles:
            owner, name, handle = _handles.pop()
            if isinstance(owner, str):  # an alias (see wrap): undone where it holds the wrapper
                owner = sys.modules.get(owner)
                if owner is None or vars(owner).get(name) is not handle:
                    continue
            # If someone patched on top of us, our wrapper stays: it is inert without a
            # listener, while tearing theirs off would not be safe.
            with contextlib.suppress(wrapt.WrapperNotOutermostError, wrapt.WrapperNotFoundError):
                wrapt.unwrap_object(owner, name, handle, missing_ok=True)


def patched() -> bool:
    """Whether any framework is patched now (for tests and diagnostics)."""
    with _lock:
        return bool(_handles)


def active() -> tuple[str, ...]:
    """The adapters patched in now, by the module they watch (for tests and diagnostics)."""
    with _lock:
        return tuple(sorted(k for k, a in _active.items() if a is not _failed))


@contextmanager
def capturing(
    listener: ParseListener,
    given: tuple[tuple[Any, ...], Mapping[str, Any]] = ((), {}),
) -> Iterator[None]:
    """Report the parses made in this context to ``listener`` for the duration of the block.

    ``given`` is the call the run wraps: a framework that finished parsing before the run began
    (the decorator under ``@hydra.main`` or ``@click.command``) reports from it at the start.
    """
    _acquire()
    token = _listener.set(listener)
    depth_token = _depth.set(0)
    try:
        with _lock:
            adapters = list(_active.values())
        for adapter in adapters:
            started = getattr(adapter, "started", None)
            if started is not None:
                started(listener, given)
        yield
    finally:
        _depth.reset(depth_token)
        _listener.reset(token)
        _release()
