"""What a record may hold, for the reader that refuses more and the writer that keeps within it.

The ``provenance`` command reads records as hostile input (provenance.records) and refuses one
that is too large, too deep, holds numbers no writer produces or declares too many paths. A run
must never write a record that its own reader then refuses, so both sides take these limits
from here, and the writer fits each record within them before it writes it (``fit``):

- an integer of more digits than a reader takes becomes a marker (its size and digest);
- paths past ``MAX_DECLARED`` are left out, the longest lists cut first, each list keeping its
  first entries; the block's ``left_out`` says, per name, how many were left out and the digest
  of the whole list as it would have been recorded;
- while the record is still over ``MAX_RECORD_BYTES`` or ``MAX_VALUES``, its largest recorded
  values (fields, arguments, the resolved config, gate values) and its largest texts (argv
  items, error messages) are replaced by markers saying how big they were and their digest,
  largest first; ``left_out`` lists where.

What still does not fit is refused (``OverLimit``): the run then fails for want of evidence,
as for any record it cannot write. See docs/sidecar.md ("What a record leaves out").
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from typing import Any

import blake3

from provenance.errors import SidecarWriteError

MAX_RECORD_BYTES = 64 * 1024 * 1024
# A record's values (arrays, objects and the items in them), counted before parsing: memory
# for a document grows with them, not only with its bytes ("[]," is three bytes, a list 56).
# The count is of the bytes "[", "{" and ",", wherever they are, strings included.
MAX_VALUES = 2_000_000
MAX_DEPTH = 100  # a recorded value is cut at 64 levels (normalize); the block adds a few
MAX_INT_DIGITS = 64  # sizes and exit codes need 20; Python refuses 4300 with a ValueError
MAX_PATH_BYTES = 4096
# Paths one record declares: checking each against the schema takes about half a millisecond,
# so this keeps a record to seconds. A script with more files to name declares their folder.
MAX_DECLARED = 20_000
# A folder's listing (the files a run hashed in it, beside its record): the entries it names,
# and its bytes. A folder with more is recorded without one (``listed: false``).
MAX_LISTED = 100_000
MAX_LISTING_BYTES = 32 * 1024 * 1024
# A rank's part holds its record and the outputs it opened (no more than its record names).
MAX_PART_BYTES = 2 * MAX_RECORD_BYTES + 1024 * 1024
# Texts shorter than this are never replaced: a marker is about as long.
_MIN_TEXT = 256

LEFT_OUT = "$left_out"
LEFT_OUT_TEXT = "<left out: "  # how a text left out starts


class OverLimit(SidecarWriteError):
    """A record, even with what could be left out left out, that a reader would refuse: it
    is not written, as a record that cannot be written is not."""


class Refused(Exception):
    """A value strict JSON, or any writer of records, does not produce."""


# -- reading -----------------------------------------------------------------------------------


def refusal(data: bytes, kind: str = "sidecar", limit: int = MAX_RECORD_BYTES) -> str | None:
    """Why a reader refuses ``data`` before parsing it (its size, its values), or None."""
    if len(data) > limit:
        return f"over {size_text(limit)}: not a {kind}"
    if value_count(data) > MAX_VALUES:
        return f"over {MAX_VALUES:,} values: not a {kind}"
    return None


def openings(data: bytes) -> int:
    """How many ``[`` and ``{`` bytes ``data`` holds: no document parsed from it nests deeper
    (each array or object it holds opens with one), so ``depth_over`` need not look."""
    return data.count(b"[") + data.count(b"{")


def value_count(data: bytes) -> int:
    return data.count(b"[") + data.count(b"{") + data.count(b",")


def strict_loads(text: str) -> Any:
    """Parse strict JSON as a reader does: no NaN or infinities, no integer of more than
    ``MAX_INT_DIGITS`` digits, no duplicate key (``Refused``); ``ValueError`` for bad JSON,
    ``RecursionError`` for nesting Python cannot parse."""
    return json.loads(
        text,
        parse_constant=_refuse_constant,
        parse_float=_finite_float,
        parse_int=_bounded_int,
        object_pairs_hook=_unique_keys,
    )


def size_text(limit: int) -> str:
    return f"{limit // 2**20} MiB" if limit % 2**20 == 0 else f"{limit:,} bytes"


def _refuse_constant(name: str) -> Any:
    raise Refused(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Refused(f"the number {text[:20]}… is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise Refused(f"an integer of {len(text)} digits")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise Refused(f"duplicate key {key[:40]!r}")
            seen.add(key)
    return document


def depth_over(document: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``document`` nests deeper than ``limit``, found without recursion (see
    ``openings`` for a bound found faster)."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                return True
            items = value.values() if isinstance(value, dict) else value
            stack.extend((item, depth + 1) for item in items if isinstance(item, (dict, list)))
    return False


def declared_count(document: Any) -> int:
    """How many paths a document's inputs and outputs declare, whatever their shape."""
    block = document.get("run_provenance") if isinstance(document, dict) else None
    tables = [block.get(t) for t in ("inputs", "outputs")] if isinstance(block, dict) else []
    return sum(
        len(slot) if isinstance(slot, list) else 1
        for table in tables
        if isinstance(table, dict)
        for slot in table.values()
    )


def unreadable(data: bytes, kind: str = "sidecar") -> str | None:
    """Why the reader would refuse ``data`` as a record before its schema check, or None."""
    why = refusal(data, kind)
    if why is not None:
        return why
    try:
        document = strict_loads(data.decode("utf-8"))
    except UnicodeDecodeError as err:
        return f"not UTF-8 at byte {err.start}"
    except Refused as err:
        return f"not strict JSON: {err}"
    except RecursionError:
        return f"nested too deeply to be a {kind}"
    except ValueError as err:
        return f"not JSON: {err}"
    if openings(data) > MAX_DEPTH and depth_over(document):
        return f"nested deeper than {MAX_DEPTH} levels: not a {kind}"
    block = document.get("run_provenance") if isinstance(document, dict) else None
    if isinstance(block, dict) and declared_count(document) > MAX_DECLARED:
        return f"declares over {MAX_DECLARED:,} paths: not a {kind}"
    return None


# -- writing -----------------------------------------------------------------------------------


def compact(value: Any) -> bytes:
    """``value`` as JSON with sorted keys and no spaces, UTF-8: what a marker's size and digest
    are of."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogateescape")


def _digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def int_marker(value: int) -> dict[str, Any]:
    """What stands for an integer too long for a record: its size in bits, and the digest of
    its hexadecimal form (which, unlike its decimal one, Python writes at any size)."""
    text = format(value, "x")  # "-ff" for -255
    return {
        LEFT_OUT: f"an integer of {value.bit_length():,} bits: over the {MAX_INT_DIGITS} digits "
        "a record holds",
        "$bits": value.bit_length(),
        "$blake3_of_hex": _digest(text.encode("ascii")),
    }


def value_marker(data: bytes, why: str) -> dict[str, Any]:
    """What stands for a value left out: its size as compact JSON and that JSON's digest."""
    return {
        LEFT_OUT: f"a value of {len(data):,} bytes of JSON: {why}",
        "$bytes": len(data),
        "$blake3": _digest(data),
    }


def text_marker(text: str, why: str) -> str:
    """What stands for a text left out where only a text may stand (argv, an error message)."""
    data = text.encode("utf-8", "surrogateescape")
    return f"{LEFT_OUT_TEXT}a text of {len(data):,} bytes, blake3 {_digest(data)}: {why}>"


def _is_marker(value: Any) -> bool:
    return isinstance(value, dict) and LEFT_OUT in value


def bounded_ints(value: Any, where: str = "", places: list[str] | None = None) -> Any:
    """A copy of ``value`` with every integer a reader would refuse replaced by its marker;
    where each was (a JSON pointer below ``where``) goes into ``places``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        # Fewer than 213 bits is fewer than 65 digits; past that, compare without str().
        if value.bit_length() < 213 or abs(value) < 10**MAX_INT_DIGITS:
            return value
        if places is not None:
            places.append(where)
        return int_marker(value)
    if isinstance(value, dict):
        return {k: bounded_ints(v, f"{where}/{_escape(k)}", places) for k, v in value.items()}
    if isinstance(value, list):
        return [bounded_ints(v, f"{where}/{i}", places) for i, v in enumerate(value)]
    return value


TOO_LARGE = "too large for a record"


def fit(
    document: dict[str, Any], encode: Callable[[dict[str, Any]], bytes]
) -> tuple[dict[str, Any], bytes]:
    """``document`` made to fit the reader's limits (see the module's docstring), and the bytes
    ``encode`` gives for it; ``OverLimit`` when it cannot be. ``document`` is left as it is:
    what is changed is a copy."""
    places: list[str] = []
    document = bounded_ints(document, "", places)  # a copy; json cannot write 4300 digits
    block = document.get("run_provenance")
    if places and isinstance(block, dict):
        _left_out(block)["values"] = sorted(places)
    data = encode(document)
    if unreadable(data) is None:
        return document, data
    if isinstance(block, dict):
        _trim_declared(block, MAX_DECLARED)
        data = encode(document)
        if unreadable(data) is None:
            return document, data
    for _ in range(64):
        if not _shrink(document, len(data), value_count(data)):
            break
        data = encode(document)
        if unreadable(data) is None:
            return document, data
    # Long paths in many entries: fewer entries, each cut halving what is kept.
    keep = min(MAX_DECLARED, declared_count(document))
    while keep > 1 and isinstance(block, dict):
        keep //= 2
        _trim_declared(block, keep)
        data = encode(document)
        if unreadable(data) is None:
            return document, data
    raise OverLimit(f"the record cannot be made readable: {unreadable(data)}")


def _left_out(block: dict[str, Any]) -> dict[str, Any]:
    found = block.get("left_out")
    if not isinstance(found, dict):
        found = block["left_out"] = {}
    return found


def _trim_declared(block: dict[str, Any], keep: int) -> None:
    """Keep at most ``keep`` declared entries: each list is cut to one length, as long as
    lets the rest fit (the longest lists lose most), keeping its first entries."""
    tables: dict[str, dict[str, Any]] = {
        t: block[t] for t in ("inputs", "outputs") if isinstance(block.get(t), dict)
    }
    lists = [(t, n, s) for t, tab in tables.items() for n, s in tab.items() if isinstance(s, list)]
    singles = len([s for tab in tables.values() for s in tab.values() if not isinstance(s, list)])
    total = singles + sum(len(s) for _, _, s in lists)
    if total <= keep:
        return
    room = max(keep - singles, 0)
    lengths = sorted(len(s) for _, _, s in lists)
    cap, used = 0, 0
    for index, length in enumerate(lengths):
        # Every list from here on gets ``cap`` entries: as many as the room left allows.
        share = (room - used) // (len(lengths) - index)
        if length <= share:
            used += length
            cap = length
            continue
        cap = share
        break
    else:
        return
    paths = _left_out(block).setdefault("paths", [])
    earlier = {(p["table"], p["name"]): p for p in paths if "rank" not in p}
    for table, name, slot in lists:
        if len(slot) <= cap:
            continue
        tables[table][name] = slot[:cap]
        before = earlier.get((table, name))
        if before is not None:  # cut again: the whole list is the one first measured
            before["kept"] = cap
            before["left_out"] = before["total"] - cap
            continue
        whole = compact(slot)
        paths.append(
            {
                "table": table,
                "name": name,
                "total": len(slot),
                "kept": cap,
                "left_out": len(slot) - cap,
                "blake3": _digest(whole),
            }
        )
    tables_left = sorted(paths, key=lambda p: (p["table"], p["name"]))
    paths[:] = tables_left


def _candidates(document: dict[str, Any]) -> Iterator[tuple[Any, Any, str, bool]]:
    """Every value that may be left out: (its container, its key, where, free-form), where a
    free-form one may become an object marker and any other only a text marker."""
    block = document.get("run_provenance")
    for key in sorted(k for k in document if k not in ("schema", "run_provenance")):
        yield from _values(document, key, f"/{_escape(key)}", free=True)
    if not isinstance(block, dict):
        return
    base = "/run_provenance"
    for key in sorted(block):
        where = f"{base}/{_escape(key)}"
        value = block[key]
        if key == "args" and isinstance(value, dict):
            for name in sorted(value):
                yield from _values(value, name, f"{where}/{_escape(name)}", free=True)
        elif key == "config" and isinstance(value, dict) and "resolved" in value:
            resolved = value["resolved"]
            if isinstance(resolved, dict):
                for name in sorted(resolved):
                    yield from _values(resolved, name, f"{where}/resolved/{_escape(name)}", True)
        elif key == "outcome" and isinstance(value, dict):
            for name, verdict in sorted((value.get("gates") or {}).items()):
                if isinstance(verdict, dict):
                    for item in sorted(k for k in verdict if k != "passed"):
                        yield from _values(verdict, item, f"{where}/gates/{name}/{item}", True)
            yield from _texts(value.get("error"), f"{where}/error")
        elif key not in ("inputs", "outputs", "left_out"):
            yield from _texts(value, where)


def _values(
    container: Any, key: Any, where: str, free: bool
) -> Iterator[tuple[Any, Any, str, bool]]:
    yield container, key, where, free


def _texts(value: Any, where: str) -> Iterator[tuple[Any, Any, str, bool]]:
    """Every long text below ``value``, which only a text marker may replace."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        node, at = stack.pop()
        items: Any = (
            sorted(node.items())
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else ()
        )
        for key, item in items:
            here = f"{at}/{_escape(str(key))}"
            if isinstance(item, str) and len(item) >= _MIN_TEXT:
                yield node, key, here, False
            elif isinstance(item, (dict, list)):
                stack.append((item, here))


def _escape(key: Any) -> str:
    key = str(key)
    text = key.replace("~", "~0").replace("/", "~1")
    return text if len(text) <= _MIN_TEXT else text_marker(text, TOO_LARGE)


def _shrink(document: dict[str, Any], size: int, values: int) -> bool:
    """Replace the largest values (by what is over: bytes or values) until the estimate fits;
    whether anything was replaced."""
    measured = []
    for container, key, where, free in _candidates(document):
        value = container[key]
        if _is_marker(value) or (isinstance(value, str) and value.startswith("<left out: ")):
            continue
        if not free and not isinstance(value, str):
            continue
        data = compact(value)
        # What it takes in the record, indented: its compact form, plus each line's indent.
        length = len(data) + data.count(b",") * 3 + data.count(b"{") * 3 + data.count(b"[") * 3
        measured.append((length, value_count(data), where, container, key, free, data, value))
    over_bytes = size > MAX_RECORD_BYTES
    measured.sort(key=lambda m: (-(m[0] if over_bytes else m[1]), m[2]))
    block = document.get("run_provenance")
    places = _left_out(block).setdefault("values", []) if isinstance(block, dict) else []
    changed = False
    for length, count, where, container, key, free, data, value in measured:
        if size <= MAX_RECORD_BYTES * 0.9 and values <= MAX_VALUES * 0.9:
            break
        if container[key] is not value:
            continue  # replaced already, as part of a larger value
        if free:
            container[key] = value_marker(data, TOO_LARGE)
        else:
            container[key] = text_marker(value, TOO_LARGE)
        size -= length
        values -= count
        places.append(where)
        changed = True
    places.sort()
    return changed
