"""``provenance diff A B``: what differs between two runs.

Volatile evidence (start, end, duration, host, user: docs/revision.md) differs between any two
runs: it is listed apart, after the differences, and never counts as one.

Read per key: a changed argv as the tokens that changed, a gate or a recorded field that holds
a mapping as the metrics in it that changed, the resolved config as the keys that changed
(``config trainer.epochs: 50 -> 5``), and a list as the items that changed, were removed or were
added. Values read as JSON (``true``, ``null``, ``"text"``). A span of argv or of a list whose
counts differ reads as what it removed, after ``-``, and what it added, after ``+``, aligned on
lines of their own. ``--json`` gives one item per gate, field and config.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import shlex
from collections.abc import Iterator
from itertools import zip_longest
from typing import Any, NamedTuple

from provenance.commands import EXIT_FINDING, EXIT_OK, add_command, print_json, style
from provenance.measure import environment, volatile
from provenance.record.summary import flat
from provenance.records import Record, declared_entries, load
from provenance.text import Escaped, lines_text, plural, printable, short

# What of an entry tells two versions of a path apart.
ENTRY_KEYS = ("path", "exists", "kind", "size_bytes", "blake3", "sha256", "file_count", "error")


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "diff",
        "what differs between two runs",
        __doc__,
        run,
        examples=[
            "provenance diff models/seed0.npz models/seed1.npz",
            "provenance diff old/model.onnx.manifest.json model.onnx --json",
        ],
    )
    parser.add_argument("a", help="an artifact or sidecar")
    parser.add_argument("b", help="another artifact or sidecar")
    parser.add_argument("--json", action="store_true", help="print the differences as JSON")


def _changed(section: str, key: str, a: Any, b: Any) -> dict[str, Any]:
    return {"section": section, "key": key, "a": a, "b": b}


def _mapping(section: str, a: Any, b: Any) -> list[dict[str, Any]]:
    """The keys whose values differ, and the keys one side lacks (a key holding null is not a
    key that is absent); an absent side is null in the item, which says ``absent``."""
    a, b = (a if isinstance(a, dict) else {}), (b if isinstance(b, dict) else {})
    found = []
    for k in sorted({*a, *b}):
        if k in a and k in b and _same(a[k], b[k]):
            continue
        item = _changed(section, k, a.get(k), b.get(k))
        if k not in a or k not in b:
            item["absent"] = "a" if k not in a else "b"
        found.append(item)
    return found


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
    if "revision" in ba or "revision" in bb:
        found += _mapping("revision", ba.get("revision"), bb.get("revision"))
    if ba.get("argv") != bb.get("argv"):
        found.append(_changed("command", "argv", ba.get("argv"), bb.get("argv")))
    if ba.get("command") != bb.get("command"):
        found.append(_changed("command", "command", ba.get("command"), bb.get("command")))
    found += _mapping("args", ba.get("args"), bb.get("args"))
    found += _config(ba.get("config"), bb.get("config"))
    found += _seeds(ba, bb)
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


def volatile_changes(a: Record, b: Record) -> list[dict[str, Any]]:
    """What differs in the volatile evidence: expected of two runs, so not a difference."""
    return list(volatile.changes(a.block.get("volatile"), b.block.get("volatile")))


def _seeds(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """The seeds set, position by position (the order they were set in is part of them), and
    how many each record left out."""
    sa, sb = (s if isinstance(s := r.get("seeds"), list) else [] for r in (a, b))
    found = [
        _changed("seeds", f"seeds[{i}]", x, y)
        for i, (x, y) in enumerate(zip_longest(sa, sb))
        if not _same(x, y)
    ]
    if not _same(a.get("seeds_left_out", 0), b.get("seeds_left_out", 0)):
        found.append(
            _changed("seeds", "left_out", a.get("seeds_left_out", 0), b.get("seeds_left_out", 0))
        )
    return found


def seed_text(seed: Any) -> str:
    """One recorded seed as it reads: what set it, and with what (docs/seeds.md)."""
    if not isinstance(seed, dict):
        return "(absent)" if seed is None else "(malformed seed)"
    return f"{seed.get('source')}: {_seed_value(seed)}"


def _seed_value(seed: dict[str, Any]) -> str:
    if seed.get("from_os"):
        return "none given: drawn from the OS, not reproducible"
    kind, value = seed.get("type"), seed.get("value")
    if kind is None:
        text = json.dumps(value, ensure_ascii=False)
        return text + (" (picked by the library)" if seed.get("picked") else "")
    if "value" in seed:  # a SeedSequence, by its entropy
        return f"{kind}, entropy {json.dumps(value)}, spawn key {seed.get('spawn_key')}"
    size = "".join(f", {seed[k]} {k}" for k in ("bits", "bytes", "items") if k in seed)
    if "blake3" in seed:
        return f"type {kind}{size}, blake3 {short(str(seed['blake3']))}"
    return f"type {kind}, its value not recorded"


def _per_key(a: Any, b: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    """The leaves that differ between two nested mappings, by dotted key, in a stable order."""
    fa, fb = dict(flat(a, prefix)), dict(flat(b, prefix))
    missing = _Absent()
    return [
        (k, fa.get(k, missing), fb.get(k, missing))
        for k in sorted({*fa, *fb})
        if k not in fa or k not in fb or not _same(fa[k], fb[k])
    ]


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON: ``true`` is not ``1``, nor ``1`` ``1.0``, as Python's ``==`` has them."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


class _Absent:
    """A key one side lacks, shown as such: not the same as a key holding null."""

    def __str__(self) -> str:
        return "(absent)"


NONE = "(none)"  # the side of a span that holds no item


class Line(NamedTuple):
    """One difference as it reads: its key, the text of each side, and whether it is a span
    (items removed or added, not one item for another)."""

    key: str
    a: str
    b: str
    span: bool = False


# A token that starts with a dash but is a number (``-1``, ``-.5``, ``-1e3``) is a value.
_NUMBER = re.compile(r"-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
POSITIONAL = "positional"


def _is_option(token: str) -> bool:
    return token.startswith("-") and token != "-" and not _NUMBER.fullmatch(token)


def _takes(option: str, args: Any) -> int | None:
    """How many values ``option`` takes, as the record's parsed ``args`` tell by its dest: a
    flag (a bool) none, a list any number (None), anything else or unknown one."""
    dest = option.lstrip("-").replace("-", "_")
    value = args.get(dest) if isinstance(args, dict) and option.startswith("--") else None
    if isinstance(value, bool):
        return 0
    return None if isinstance(value, list) else 1


def labels(argv: list[str], args: Any = None) -> list[str]:
    """What each token of an argument list is: the option it is or gives a value to (``--k``
    for ``--k=v``, and for ``v`` in ``--k v``; ``-k`` for ``-kv``), ``--`` for the separator,
    or ``positional``, as every token after ``--`` is. ``args`` (the record's parsed
    arguments) tells a flag, which takes no value, from an option taking a list."""
    found: list[str] = []
    owner: str | None = None  # the option the next token may be a value of
    room: int | None = 0  # how many more values it takes (None: any number)
    rest = False
    for token in argv:
        if rest:
            found.append(POSITIONAL)
        elif token == "--":
            found.append("--")
            rest, owner = True, None
        elif _is_option(token):
            name, eq, _ = token.partition("=")
            if not token.startswith("--"):
                name, eq = token[:2], "=" if len(token) > 2 else ""
            found.append(name)
            owner, room = (None, 0) if eq else (name, _takes(name, args))
        elif owner is not None and room != 0:
            found.append(owner)
            room = None if room is None else room - 1
        else:
            found.append(POSITIONAL)
            owner = None
    return found


def _tokens(a: list[str], b: list[str], args_a: Any = None, args_b: Any = None) -> list[Line]:
    """Each changed token of two argument lists: ``argv[i]`` with what the token is (see
    ``labels``), the token before and the token after, as a shell would read them; a span
    where the counts differ reads as the words removed and the words added."""
    found = []
    la, lb = labels(a, args_a), labels(b, args_b)
    for tag, i1, i2, j1, j2 in _opcodes(a, b):
        if tag == "replace" and i2 - i1 == j2 - j1:
            for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
                names = list(dict.fromkeys([la[i], lb[j]]))
                found.append(
                    Line(f"argv[{i}] ({', '.join(names)})", shlex.quote(a[i]), shlex.quote(b[j]))
                )
            continue
        names = list(dict.fromkeys([*la[i1:i2], *lb[j1:j2]]))
        found.append(
            Line(
                f"{_where('argv', i1, i2)} ({', '.join(names)})",
                shlex.join(a[i1:i2]) or NONE,
                shlex.join(b[j1:j2]) or NONE,
                span=True,
            )
        )
    return found


def _opcodes(a: list[Any], b: list[Any]) -> Iterator[tuple[str, int, int, int, int]]:
    """The spans that differ between two sequences, as ``difflib`` finds them."""
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    return (op for op in matcher.get_opcodes() if op[0] != "equal")


def _where(key: str, i1: int, i2: int) -> str:
    return f"{key}[{i1}]" if i2 - i1 <= 1 else f"{key}[{i1}:{i2}]"


def _items(key: str, a: list[Any], b: list[Any]) -> list[Line]:
    """Two lists as the items that changed, were added or were removed, by the index on the
    first side: an item replaced by one item reads on its own line, any other span as the
    items removed and the items added."""
    ja = [json.dumps(x, sort_keys=True) for x in a]
    jb = [json.dumps(x, sort_keys=True) for x in b]
    found = []
    for tag, i1, i2, j1, j2 in _opcodes(ja, jb):
        if tag == "replace" and i2 - i1 == j2 - j1:
            found += [
                Line(f"{key}[{i}]", _show(a[i]), _show(b[j]))
                for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
            ]
        else:
            found.append(
                Line(
                    _where(key, i1, i2),
                    ", ".join(_show(x) for x in a[i1:i2]) or NONE,
                    ", ".join(_show(x) for x in b[j1:j2]) or NONE,
                    span=True,
                )
            )
    return found


def _pair(key: str, a: Any, b: Any) -> list[Line]:
    """One changed value: two lists by their items, anything else whole."""
    if isinstance(a, list) and isinstance(b, list):
        return _items(key, a, b)
    return [Line(key, _show(a), _show(b))]


def _lines_of(item: dict[str, Any], args: tuple[Any, Any] = (None, None)) -> list[Line]:
    """One difference as the ``(key, a, b)`` lines it reads as; ``args``: each record's parsed
    arguments, which tell what each argv token is."""
    section, key, a, b = item["section"], item["key"], item["a"], item["b"]
    if item.get("absent") == "a":
        a = _Absent()
    elif item.get("absent") == "b":
        b = _Absent()
    if section == "command" and key == "argv" and _strings(a) and _strings(b):
        return _tokens(a, b, *args)
    if section == "seeds" and key != "left_out":
        return [Line(key, _cut(seed_text(a)), _cut(seed_text(b)))]
    nested = section in ("gates", "fields") or (section, key) == ("config", "resolved")
    if nested and isinstance(a, dict) and isinstance(b, dict):
        prefix = "" if section == "config" else key
        return [line for k, x, y in _per_key(a, b, prefix) for line in _pair(k, x, y)]
    return _pair(key, a, b)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _config(a: Any, b: Any) -> list[dict[str, Any]]:
    """The config files (each by its identity) and the resolved config, as one item whose
    text reads per key; a config that is not an object is one whole value."""
    # A record without a config has no config keys: against one with, each key is added.
    a, b = ({"files": [], "resolved": {}} if c is None else c for c in (a, b))
    if not isinstance(a, dict) or not isinstance(b, dict):
        return [] if _same(a, b) else [_changed("config", "config", a, b)]
    files = [
        {f"files[{i}]": _identity(e) for i, e in enumerate(c.get("files") or [])}
        if isinstance(c.get("files") or [], list)
        else {"files": c.get("files")}
        for c in (a, b)
    ]
    found = _mapping("config", *files)
    if not _same(a.get("resolved"), b.get("resolved")):
        found.append(_changed("config", "resolved", a.get("resolved"), b.get("resolved")))
    return found


def _show(value: Any) -> str:
    """A recorded value as JSON reads it (``true``, ``null``, ``"text"``); a path's entry as its
    path and digest; a key one side lacks as ``(absent)``."""
    if isinstance(value, _Absent):
        return str(value)
    if isinstance(value, dict) and ("blake3" in value or "sha256" in value or "exists" in value):
        if not value.get("exists", True):
            return f"{value.get('path')} (missing)"
        digest = value.get("blake3") or value.get("sha256")
        return f"{value.get('path')} ({short(digest)})"
    return _cut(json.dumps(value, sort_keys=True, ensure_ascii=False))


def _cut(text: str) -> str:
    return text if len(text) <= 80 else text[:79] + "…"


def readings(
    differences: list[dict[str, Any]], args: tuple[Any, Any] = (None, None)
) -> list[dict[str, str]]:
    """The differences as the lines they read as, one ``{section, key, a, b}`` (texts) each:
    what the text prints, and what the count of differences counts."""
    return [
        {"section": item["section"], "key": line.key, "a": line.a, "b": line.b}
        | ({"span": True} if line.span else {})
        for item in differences
        for line in _lines_of(item, args)
    ]


def render_differences(lines: list[dict[str, Any]]) -> str:
    """One line per difference, ``key: a -> b``; a span as its key, then what it removed and
    what it added on lines of their own, aligned, each after its marker (the markers alone
    painted where colour is on)."""
    out: list[str] = []
    for x in lines:
        head = f"  {x['section']:<8} {x['key']}"
        if not x.get("span"):
            out.append(f"{head}: {x['a']} -> {x['b']}")
            continue
        out.append(f"{head}:")
        indent = " " * 11
        for sign, side in (("-", x["a"]), ("+", x["b"])):
            if side != NONE:
                out.append(Escaped(f"{indent}{style.mark(sign)} {printable(str(side))}"))
    return lines_text(out)


def render_volatile(items: list[dict[str, Any]]) -> str:
    return render_differences([x | {"a": _show(x["a"]), "b": _show(x["b"])} for x in items])


def run(args: argparse.Namespace) -> int:
    a, b = load(args.a, args.root), load(args.b, args.root)
    differences = compare(a, b)
    lines = readings(differences, (a.block.get("args"), b.block.get("args")))
    apart = volatile_changes(a, b)
    if args.json:
        print_json(
            {
                "a": str(a.source),
                "b": str(b.source),
                "same": not differences,
                "count": len(lines),
                "lines": lines,
                "differences": differences,
                **({"volatile": apart} if apart else {}),
            }
        )
    else:
        if differences:
            print(
                lines_text([str(a.source), str(b.source), f"{plural(len(lines), 'difference')}:"])
            )
            print(render_differences(lines))
        else:
            print(lines_text([str(a.source), str(b.source), "no differences"]))
        if apart:
            print(lines_text(["volatile, as expected of two runs (not a difference):"]))
            print(render_volatile(apart))
    return EXIT_FINDING if differences else EXIT_OK
