"""``provenance diff A B``: what differs between two runs."""

from __future__ import annotations

import argparse
from typing import Any

from provenance import environment
from provenance.commands import (
    EXIT_FINDING,
    EXIT_OK,
    add_command,
    declared_entries,
    lines_text,
    print_json,
    short,
)
from provenance.records import Record, load

# What of an entry tells two versions of a path apart.
ENTRY_KEYS = ("path", "exists", "kind", "size_bytes", "blake3", "sha256", "file_count", "error")


def register(commands: Any) -> None:
    parser = add_command(commands, "diff", "what differs between two runs", __doc__, run)
    parser.add_argument("a", help="an artifact or sidecar")
    parser.add_argument("b", help="another artifact or sidecar")
    parser.add_argument("--json", action="store_true", help="print the differences as JSON")


def _changed(section: str, key: str, a: Any, b: Any) -> dict[str, Any]:
    return {"section": section, "key": key, "a": a, "b": b}


def _mapping(section: str, a: Any, b: Any) -> list[dict[str, Any]]:
    a, b = (a if isinstance(a, dict) else {}), (b if isinstance(b, dict) else {})
    return [
        _changed(section, k, a.get(k), b.get(k)) for k in sorted({*a, *b}) if a.get(k) != b.get(k)
    ]


def _identity(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return entry
    return {k: entry[k] for k in ENTRY_KEYS if k in entry}


def compare(a: Record, b: Record) -> list[dict[str, Any]]:
    """Every difference between two records, section by section, in a stable order."""
    ba, bb = a.block, b.block
    found = []
    for key in ("entrypoint", "shared_trainer"):
        if ba.get(key) != bb.get(key):
            found.append(_changed("code", key, ba.get(key), bb.get(key)))
    found += _mapping("code", ba.get("code"), bb.get("code"))
    if ba.get("argv") != bb.get("argv"):
        found.append(_changed("command", "argv", ba.get("argv"), bb.get("argv")))
    found += _mapping("args", ba.get("args"), bb.get("args"))
    for section in ("inputs", "outputs"):
        ea = {n: _identity(e) for n, e in declared_entries(ba.get(section))}
        eb = {n: _identity(e) for n, e in declared_entries(bb.get(section))}
        found += _mapping(section, ea, eb)
    oa, ob = ba.get("outcome") or {}, bb.get("outcome") or {}
    for key in ("status", "exit_code", "error"):
        if oa.get(key) != ob.get(key):
            found.append(_changed("outcome", key, oa.get(key), ob.get(key)))
    found += _mapping("gates", oa.get("gates"), ob.get("gates"))
    found += _mapping("fields", a.fields, b.fields)
    found += environment.changes(ba.get("environment"), bb.get("environment"))
    return found


def _show(value: Any) -> str:
    if isinstance(value, dict) and ("blake3" in value or "sha256" in value or "exists" in value):
        if not value.get("exists", True):
            return f"{value.get('path')} (missing)"
        digest = value.get("blake3") or value.get("sha256")
        return f"{value.get('path')} ({short(digest)})"
    text = str(value)
    return text if len(text) <= 80 else text[:79] + "…"


def render_differences(differences: list[dict[str, Any]]) -> str:
    lines = []
    for item in differences:
        lines.append(
            f"  {item['section']:<8} {item['key']}: {_show(item['a'])} -> {_show(item['b'])}"
        )
    return lines_text(lines)


def run(args: argparse.Namespace) -> int:
    a, b = load(args.a, args.root), load(args.b, args.root)
    differences = compare(a, b)
    if args.json:
        print_json(
            {
                "a": str(a.source),
                "b": str(b.source),
                "same": not differences,
                "differences": differences,
            }
        )
    elif differences:
        print(lines_text([str(a.source), str(b.source), f"{len(differences)} difference(s):"]))
        print(render_differences(differences))
    else:
        print(lines_text([str(a.source), str(b.source), "no differences"]))
    return EXIT_FINDING if differences else EXIT_OK
