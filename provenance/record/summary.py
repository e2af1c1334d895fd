"""What ``provenance runs`` shows of a run and filters on, taken from its record once.

A summary is small and plain JSON, so the lineage index can keep it beside the record's rows
and a warm ``runs`` reads it instead of parsing the record again.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RunSummary:
    """One recorded run, as ``find_runs`` and ``provenance runs`` list it.

    ``params`` holds the run's arguments and its resolved config flattened to dotted keys
    (``args.lr``, ``config.trainer.epochs``), and for a run with no parsed arguments its
    command line's words as ``argv`` (shell-quoted); ``status`` is ``running`` or ``lost`` for a run
    that has no final record (yet)."""

    record: str  # the record's path, as found
    artifact: str  # the artifact it is the record of
    script: str  # the entrypoint's path as recorded
    command: str | None  # a click/typer/jsonargparse command path, when one was recorded
    status: str
    exit_code: int | None
    gates: dict[str, bool]  # each gate's verdict, by name
    params: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "record": self.record,
            "artifact": self.artifact,
            "script": self.script,
            "command": self.command,
            "status": self.status,
            "exit_code": self.exit_code,
            "gates": dict(self.gates),
            "params": dict(self.params),
        }


def flat(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    """``(dotted key, leaf)`` for each leaf of nested mappings; a list or a scalar is a leaf.
    The reader bounds a record's depth, so the recursion is bounded too."""
    if isinstance(value, dict) and (value or not prefix):
        for key, item in value.items():
            yield from flat(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value  # an empty mapping under a key is a value of its own


def summarize(block: dict[str, Any]) -> dict[str, Any]:
    """The stored part of a run's summary (all but where its record is): from a record's
    ``run_provenance`` block that passed the schema check."""
    outcome = block.get("outcome") or {}
    gates = outcome.get("gates")
    config = block.get("config")
    params = dict(flat(block.get("args") or {}, "args")) if block.get("args") else {}
    argv = block.get("argv")
    if not params and isinstance(argv, list) and argv:  # what tells apart runs of no parsed args
        params["argv"] = shlex.join(str(word) for word in argv)
    if isinstance(config, dict) and isinstance(config.get("resolved"), dict):
        params.update(flat(config["resolved"], "config") if config["resolved"] else {})
    command = block.get("command")
    exit_code = outcome.get("exit_code")
    return {
        "script": str(block["entrypoint"]["path"]),
        "command": command if isinstance(command, str) else None,
        "status": str(outcome.get("status")),
        "exit_code": exit_code if type(exit_code) is int else None,
        "gates": {
            str(name): isinstance(value, dict) and value.get("passed") is True
            for name, value in (gates.items() if isinstance(gates, dict) else ())
        },
        "params": params,
    }


def stored_text(summary: dict[str, Any]) -> str:
    """A summary as the index keeps it: ASCII JSON (a hostile record's lone surrogate too)."""
    return _STORED(summary)


# Made once: ``json.dumps`` with separators makes its encoder again at every call.
_STORED = json.JSONEncoder(separators=(",", ":")).encode


# Values equal as JSON exactly when they are of one of these types and equal: compared without
# writing them out, which is most of what filtering a hundred thousand runs costs.
_PLAIN = frozenset({str, int, bool, type(None)})


def same(a: Any, b: Any) -> bool:
    """Equal as JSON: ``true`` is not ``1``, nor ``1`` ``1.0``, as Python's ``==`` has them."""
    kind = type(a)
    if kind in _PLAIN and type(b) in _PLAIN:
        return kind is type(b) and a == b
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
