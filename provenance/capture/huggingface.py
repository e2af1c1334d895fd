"""The HfArgumentParser adapter (transformers): its dict, JSON and YAML parses.

``parse_args_into_dataclasses`` (the command line), ``parse_json_file`` and ``parse_yaml_file``
(``run_glue.py args.json``) and ``parse_dict`` are wrapped here, and each reports the fields of
the dataclasses it made, after their ``__post_init__``: so a run from the command line and one
from a JSON file of the same values record the same args. The file read is config evidence.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Any

from transformers.hf_argparser import HfArgumentParser

from provenance import capture


def patch() -> None:
    """Wrap the parses of ``HfArgumentParser`` that do not go through argparse."""
    capture.wrap(HfArgumentParser, "parse_args_into_dataclasses", _parse_wrapper)
    capture.wrap(HfArgumentParser, "parse_dict", _parse_wrapper)
    capture.wrap(HfArgumentParser, "parse_json_file", _parse_wrapper)
    capture.wrap(HfArgumentParser, "parse_yaml_file", _parse_wrapper)


def _parse_wrapper(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if capture.listener() is None:
        return wrapped(*args, **kwargs)
    # parse_json_file calls parse_dict, parse_args_into_dataclasses argparse: one report.
    with capture.parsing() as listener:
        try:
            result = wrapped(*args, **kwargs)
        except SystemExit as exc:  # --help or a usage error: nothing was parsed
            if listener is not None:
                listener.on_parse_exit(exc)
            raise
    if listener is not None:
        bound = inspect.signature(wrapped).bind(*args, **kwargs).arguments
        given = bound.get("json_file", bound.get("yaml_file"))
        files = (os.fspath(given),) if given is not None else ()
        params = _fields(result)
        listener.on_resolved(
            capture.Resolution(
                framework="HfArgumentParser",
                params=params,
                config=params if files else None,
                config_files=files,
                parsers=(instance,),
            )
        )
    return result


def _fields(result: Any) -> dict[str, Any]:
    """The fields of the dataclasses parsed, by name, as ``parse_args_into_dataclasses`` gives
    them to argparse."""
    params: dict[str, Any] = {}
    for obj in result if isinstance(result, tuple) else ():
        if dataclasses.is_dataclass(obj):
            for f in dataclasses.fields(obj):
                if f.init and hasattr(obj, f.name):
                    params[f.name] = getattr(obj, f.name)
    return params
