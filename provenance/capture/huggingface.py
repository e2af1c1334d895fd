"""The HfArgumentParser adapter (transformers): its dict, JSON and YAML parses.

On the command line HfArgumentParser is an argparse parser and the argparse adapter hears it.
``parse_json_file`` and ``parse_yaml_file`` (``run_glue.py args.json``) and ``parse_dict``
bypass argparse: they are wrapped here, and the file they read is config evidence.
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
    capture.wrap(HfArgumentParser, "parse_dict", _parse_wrapper)
    capture.wrap(HfArgumentParser, "parse_json_file", _parse_wrapper)
    capture.wrap(HfArgumentParser, "parse_yaml_file", _parse_wrapper)


def _parse_wrapper(
    wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if capture.listener() is None:
        return wrapped(*args, **kwargs)
    with capture.parsing() as listener:  # parse_json_file calls parse_dict: one report
        result = wrapped(*args, **kwargs)
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
