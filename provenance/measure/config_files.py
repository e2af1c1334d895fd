"""Read the config file a script names in ``recorded_run(config=...)``, to record its content."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from typing import Any

# Bigger than any config a person writes: a file this size is data, not a config.
MAX_CONFIG_BYTES = 4 * 2**20


def read_configs(paths: Iterable[str]) -> dict[str, Any] | None:
    """The content of the files, merged in order (a later file's keys win, at every depth), or
    None when one of them is not a JSON, TOML or YAML mapping this process can read.

    YAML is read only when the script has imported PyYAML itself: recording a config never adds
    an import of its own.
    """
    merged: dict[str, Any] = {}
    for path in paths:
        content = _read(path)
        if content is None:
            return None
        merged = _merge(merged, content)
    return merged


def _read(path: str) -> dict[str, Any] | None:
    try:
        if os.path.getsize(path) > MAX_CONFIG_BYTES:
            return None
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    suffix = os.path.splitext(path)[1].lower()
    try:
        if suffix == ".json":
            value = json.loads(data)
        elif suffix == ".toml" and sys.version_info >= (3, 11):
            import tomllib  # standard from 3.11; imported only for a TOML config

            value = tomllib.loads(data.decode("utf-8"))
        elif suffix in (".yaml", ".yml") and "yaml" in sys.modules:
            value = sys.modules["yaml"].safe_load(data)
        else:
            return None
    except Exception:  # noqa: BLE001 -- a config the script could read but we cannot: args stand in
        return None
    return value if isinstance(value, dict) else None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        out[key] = (
            _merge(old, value) if isinstance(old, dict) and isinstance(value, dict) else value
        )
    return out
