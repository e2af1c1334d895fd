"""The jsonargparse adapter (the parser behind LightningCLI): its own parse methods.

jsonargparse's ``parse_args`` does not go through argparse's, so it is wrapped itself. The
files its ``default_config_files`` patterns found and its ``--config`` options
(``ActionConfigFile``) loaded are config evidence, and the namespace it resolved from
defaults, environment, files and the command line is the config.
"""

from __future__ import annotations

import argparse
import glob
import os
from collections.abc import Iterator, Mapping
from typing import Any

import jsonargparse
from jsonargparse._actions import ActionConfigFile  # jsonargparse re-exports it untyped

from provenance import capture

_METHODS = ("parse_args", "parse_object", "parse_string", "parse_env")


def patch() -> None:
    """Wrap the parse methods of ``jsonargparse.ArgumentParser``."""
    for name in _METHODS:
        capture.wrap(jsonargparse.ArgumentParser, name, _parse_wrapper)


def _parse_wrapper(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if capture.listener() is None or _inner(instance):
        return wrapped(*args, **kwargs)
    with capture.parsing() as listener:  # its argparse calls underneath stay unheard
        try:
            namespace = wrapped(*args, **kwargs)
        except SystemExit as exc:  # --help, --print_config or a usage error
            if listener is not None:
                listener.on_parse_exit(exc)
            raise
    if listener is not None and isinstance(namespace, jsonargparse.Namespace):
        _report(listener, instance, namespace)
    return namespace


def _inner(parser: Any) -> bool:
    """Whether ``parser`` is one jsonargparse makes for itself: the parser of a class-typed
    argument's ``init_args`` (a logger's ``name``, ``save_dir``), which it parses when it checks,
    dumps or instantiates a config (LightningCLI's config saving does). What it parses is part of
    the script's namespace already, under its own key; reported as the script's CLI, its keys
    would land at the top of ``args`` and shadow the real ones."""
    if getattr(parser, "_inner_parser", False):
        return True
    try:  # the parser jsonargparse is working for, when it is not this one
        from jsonargparse._common import parent_parser
    except ImportError:  # another jsonargparse: the marker above is all there is
        return False
    outer = parent_parser.get()
    return outer is not None and outer is not parser


def _report(
    listener: capture.ParseListener,
    parser: jsonargparse.ArgumentParser,
    namespace: jsonargparse.Namespace,
) -> None:
    config_keys = set(_config_dests(parser))
    files = _default_config_files(parser)  # read first: a --config file overrides them
    flat = dict(namespace.clone().items())
    for key in sorted(config_keys):
        for given in _as_list(flat.get(key)):
            if isinstance(given, os.PathLike):  # a file; a config given as a string is not
                files.append(os.fspath(given))
    values = namespace.clone()
    for key in config_keys:
        if key in values:
            del values[key]
    resolved = _plain(values.as_dict())
    subcommand = resolved.get("subcommand")
    # Declarations may name a --config option too (config="fit.config"), though its files are
    # recorded as config evidence already.
    lookup = _plain(namespace.clone().as_dict())
    listener.on_resolved(
        capture.Resolution(
            framework="jsonargparse",
            params=resolved,
            command=f"{parser.prog} {subcommand}" if isinstance(subcommand, str) else None,
            config=resolved if files else None,
            config_files=tuple(files),
            lookup=lookup,
            parsers=(parser,),
        )
    )


def _default_config_files(parser: jsonargparse.ArgumentParser) -> list[str]:
    """The files the parser's ``default_config_files`` patterns found, as jsonargparse finds
    them (each pattern's matches in order): the defaults it parsed with came from them."""
    found: list[str] = []
    for pattern in parser.default_config_files or ():
        for path in sorted(glob.glob(os.path.expanduser(os.fspath(pattern)))):
            if os.path.isfile(path) and path not in found:
                found.append(path)
    return found


def _config_dests(parser: argparse.ArgumentParser, prefix: str = "") -> Iterator[str]:
    """The dests of every ``--config`` option, in subcommands too (``fit.config``)."""
    for action in parser._actions:  # argparse has no public accessor for its actions
        if isinstance(action, ActionConfigFile):
            yield prefix + action.dest
        elif isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _config_dests(sub, f"{prefix}{name}.")


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [] if value is None else [value]


def _plain(value: Any) -> Any:
    """The namespace as plain data; the ``__path__`` keys jsonargparse adds are its own."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items() if not str(k).startswith("__")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike) and type(value).__module__.startswith("jsonargparse"):
        return str(value)  # as the user gave it, like a str path of argparse
    return value
