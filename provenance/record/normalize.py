"""Turn arbitrary Python values (argparse results, recorded fields) into stable JSON values."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import io
import json
import math
import os
import re
import types
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

JSONValue = Any

# Reprs of ordinary objects carry their memory address, which would make reruns differ.
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_MAX_DEPTH = 64
_STANDARD_STREAMS = ("<stdin>", "<stdout>")


def display_path(path: str | os.PathLike[str], root: Path | None) -> str:
    """POSIX form of ``path``: relative to ``root`` when it lies under it, absolute otherwise."""
    absolute = Path(os.path.abspath(path))
    if root is not None:
        try:
            return absolute.relative_to(root).as_posix() or "."
        except ValueError:
            pass
    return absolute.as_posix()


def normalize(value: Any, root: Path | None = None) -> JSONValue:
    """Return ``value`` as strict, deterministic JSON data; never raises for odd values."""
    return _normalize(value, root, 0)


def _normalize(value: Any, root: Path | None, depth: int) -> JSONValue:
    if depth > _MAX_DEPTH:
        return tagged_repr(value)
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, enum.Enum):
        return _normalize(value.value, root, depth + 1)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, PurePath):
        return display_path(value, root) if isinstance(value, Path) else value.as_posix()
    if isinstance(value, Mapping):
        keyed = {_key(k, root): v for k, v in value.items()}
        return {k: _normalize(keyed[k], root, depth + 1) for k in sorted(keyed)}
    fields = _fields(value)
    if fields is not None:
        # Field by field, not by repr: a repr prints sets in hash order, which differs per process.
        return {"$fields": _normalize(fields, root, depth + 1), "$type": _type_name(value)}
    if isinstance(value, (list, tuple)):
        return [_normalize(v, root, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [_normalize(v, root, depth + 1) for v in value]
        return sorted(items, key=_sort_key)
    if isinstance(value, io.IOBase):
        return {"$file": _open_file(value, root), "$type": _type_name(value)}
    if _is_numpy(value):
        return _normalize(value.tolist(), root, depth + 1)
    return tagged_repr(value)


def _fields(value: Any) -> dict[str, Any] | None:
    """The named fields of a record-like object, or None when it is not one."""
    if isinstance(value, type):
        return None  # a class is not a record, even a dataclass
    try:
        names = getattr(type(value), "_fields", None)
        if isinstance(value, tuple) and isinstance(names, tuple):
            return dict(zip(names, value, strict=True))  # a named tuple
        if dataclasses.is_dataclass(value):
            # A field kept out of the repr is kept out of the record too, as before.
            shown = (f.name for f in dataclasses.fields(value) if f.repr)
            return {name: getattr(value, name) for name in shown if hasattr(value, name)}
        attributes = getattr(type(value), "__attrs_attrs__", None)
        if attributes is not None:
            shown = (a.name for a in attributes if a.repr is not False)
            return {name: getattr(value, name) for name in shown if hasattr(value, name)}
        if isinstance(value, (argparse.Namespace, types.SimpleNamespace)):
            return dict(vars(value))
    except Exception:  # noqa: BLE001 -- an odd object falls back to its repr, never breaks the run
        return None
    return None


def _open_file(value: io.IOBase, root: Path | None) -> dict[str, Any]:
    """Name and mode of an open file (``argparse.FileType``); never its encoding, which is the
    locale's."""
    name, mode = _attribute(value, "name"), _attribute(value, "mode")
    if name in _STANDARD_STREAMS:
        name = "-"  # as argparse.FileType is given stdin or stdout
    elif isinstance(name, (str, bytes)):
        name = display_path(os.fsdecode(name), root)
    elif not isinstance(name, int):  # an int names a file opened from its descriptor
        name = None
    return {"mode": mode if isinstance(mode, (str, int)) else None, "name": name}


def _attribute(value: Any, name: str) -> Any:
    try:
        return getattr(value, name, None)
    except Exception:  # noqa: BLE001 -- a closed or detached file may raise on any attribute
        return None


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def _float(value: float) -> JSONValue:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _key(key: Any, root: Path | None) -> str:
    # A Path key is shown like a Path value: relative to the root when under it.
    return key if isinstance(key, str) else str(normalize(key, root))


def _sort_key(value: JSONValue) -> tuple[int, float, str]:
    # Numbers sort by value, everything else by its canonical JSON text. Python compares an int
    # with a float exactly (no float() that rounds, or overflows on a huge int); equal values
    # written apart (1, 1.0, -0.0: members of two enums) are put in order by how they are
    # written, not left in the set's order, which follows the hash seed.
    if isinstance(value, bool):
        return (0, value, "")
    if isinstance(value, (int, float)):
        return (1, value, "" if isinstance(value, int) else repr(value))
    if isinstance(value, str):
        return (2, 0.0, value)
    return (3, 0.0, json.dumps(value, sort_keys=True))


def _is_numpy(value: Any) -> bool:
    # Checked by module name so that numpy is never imported just to normalize arguments.
    return type(value).__module__ == "numpy" and hasattr(value, "tolist")


def tagged_repr(value: Any) -> dict[str, str]:
    """A JSON stand-in for a value with no JSON form: its type and address-free repr."""
    try:
        text = repr(value)
    except Exception as err:  # noqa: BLE001 -- a broken __repr__ must not break the run
        text = f"<repr failed: {type(err).__name__}>"
    return {"$type": _type_name(value), "$repr": _ADDRESS.sub("", text)}
