"""Capture the seeds a script sets, in the order it sets them.

Each seeding library has an adapter module here that wraps its seeding functions (scoped, with
wrapt, as every capture adapter) and reports each call to the run through ``on_seed``. Only the
outermost seeding call is heard: ``transformers.set_seed(42)`` seeds ``random``, numpy and torch
itself, and is recorded once, as what the script asked for. A call that raises seeded nothing and
is not recorded. What a seed value is recorded as never depends on running code of the value's
own (no ``repr``): a hostile value cannot break the script, and the record stays deterministic.

A function the script bound to a name of its own (``from transformers import set_seed``) before
the run began is called unwrapped; the seeds it sets are still heard, through the functions it
calls (``random.seed``, ``numpy.random.seed``, ``torch.manual_seed``).
"""

from __future__ import annotations

import inspect
import math
import numbers
import sys
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

import blake3

from provenance import capture

KEPT = 100  # seeds a record holds; past these a script seeding in a loop is only counted
_INT_BITS = 128  # a SeedSequence's own entropy is 128 bits: larger ints are kept as a digest
_TEXT_BYTES = 256
_ITEMS = 16  # a sequence of ints as a seed (numpy takes one): kept up to this many
_NAME = 200

# Above zero inside a seeding call: the seeds it sets itself are part of it.
_depth: ContextVar[int] = ContextVar("provenance_seed_depth", default=0)

# What a seeding call's bound arguments and its result say was the seed.
SeedOf = Callable[[Mapping[str, Any], Any], dict[str, Any]]


class SeedLog:
    """The seeds one run heard: the first ``KEPT``, and how many more."""

    def __init__(self) -> None:
        self.kept: list[dict[str, Any]] = []
        self.left_out = 0

    def add(self, source: str, seed: Mapping[str, Any]) -> None:
        if len(self.kept) < KEPT:
            self.kept.append({"source": source, **seed})
        else:
            self.left_out += 1

    def part(self) -> dict[str, Any]:
        """The record's part: nothing at all for a run that set no seed."""
        part: dict[str, Any] = {}
        if self.kept:
            part["seeds"] = [dict(s) for s in self.kept]
        if self.left_out:
            part["seeds_left_out"] = self.left_out
        return part


def given(name: str) -> SeedOf:
    """The seed is the argument ``name`` (None when not given, the functions' default)."""

    def seed_of(arguments: Mapping[str, Any], result: Any) -> dict[str, Any]:
        return describe(arguments.get(name))

    return seed_of


def returned(name: str) -> SeedOf:
    """The seed is what the call returns (Lightning's ``seed_everything``); ``picked`` says the
    library picked it, the argument ``name`` being None."""

    def seed_of(arguments: Mapping[str, Any], result: Any) -> dict[str, Any]:
        seed = describe(result)
        if arguments.get(name) is None:
            seed["picked"] = True
        return seed

    return seed_of


def wrap(home: str, name: str, source: str, seed_of: SeedOf, aliases: tuple[str, ...] = ()) -> None:
    """Wrap the seeding function ``name`` of module ``home``, and the same function where the
    modules ``aliases`` re-export it, each call reported as ``source``."""
    module = sys.modules[home]
    original = getattr(module, name)
    seeded = _wrapper(source, seed_of)
    for alias in aliases:
        there = sys.modules.get(alias)
        if there is not None and there is not module and vars(there).get(name) is original:
            capture.wrap(there, name, seeded)
    # An alias imported, or a lazy package resolved, during the run picks up the wrapper of
    # ``home``: it is taken out of those too when the run ends.
    capture.wrap(module, name, seeded, aliases=aliases)


def _wrapper(source: str, seed_of: SeedOf) -> Callable[..., Any]:
    def seeded(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        listener = capture.listener()
        depth = _depth.get()
        if listener is None or depth:
            return wrapped(*args, **kwargs)
        token = _depth.set(depth + 1)
        try:
            result = wrapped(*args, **kwargs)
        finally:
            _depth.reset(token)
        _report(listener, source, seed_of, wrapped, args, kwargs, result)
        return result

    return seeded


def _report(
    listener: capture.ParseListener,
    source: str,
    seed_of: SeedOf,
    wrapped: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    result: Any,
) -> None:
    try:
        arguments = inspect.signature(wrapped).bind(*args, **kwargs).arguments
        listener.on_seed(source, seed_of(arguments, result))
    except Exception as err:  # noqa: BLE001 -- recording a seed must never break the seeding
        # Said, not hidden; the message is the error's type alone: the value may be hostile.
        print(
            f"provenance: cannot record the seed set by {source} ({type(err).__name__}); it is "
            "missing from the record",
            file=sys.stderr,
            flush=True,
        )


def describe(value: Any) -> dict[str, Any]:
    """What the record says of a seed value: the value itself when it is small and JSON-safe;
    None as drawn from the OS; else its type, with its size and digest when it has bytes of its
    own. Never raises, and never calls the value's ``repr``."""
    try:
        return _describe(value)
    except Exception:  # noqa: BLE001 -- a hostile value: what it is, no more
        return {"type": _type_name(value)}


def _describe(value: Any) -> dict[str, Any]:
    if value is None:
        return {"value": None, "from_os": True}
    if isinstance(value, numbers.Integral):
        number = int(value)
        if number.bit_length() <= _INT_BITS:
            return {"value": number}
        return {"type": "int", "bits": number.bit_length(), **_digest(format(number, "x"))}
    if isinstance(value, float):
        return (
            {"value": value} if math.isfinite(value) else {"type": "float", **_digest(repr(value))}
        )
    if isinstance(value, str):
        data = value.encode("utf-8", "surrogatepass")
        if len(data) <= _TEXT_BYTES and not _surrogates(value):
            return {"value": value}
        return {"type": "str", "bytes": len(data), **_digest(data)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
        return {"type": type(value).__name__, "bytes": len(data), **_digest(data)}
    items = _ints(value)
    if items is not None:
        if len(items) <= _ITEMS and all(i.bit_length() <= _INT_BITS for i in items):
            return {"value": items}
        return {
            "type": _type_name(value),
            "items": len(items),
            **_digest(",".join(map(hex, items))),
        }
    if _type_name(value) == "numpy.random.bit_generator.SeedSequence":
        # What a SeedSequence stands for: its entropy and where it was spawned from.
        seed = describe(value.entropy)
        spawned = _ints(value.spawn_key)
        return {**seed, "type": "numpy.random.SeedSequence", "spawn_key": spawned or []}
    return {"type": _type_name(value)}


def _ints(value: Any) -> list[int] | None:
    """A list, tuple or one-dimensional numpy array of ints as a list, or None."""
    if type(value) in (list, tuple):
        items = list(value)
    elif _type_name(value) == "numpy.ndarray" and value.ndim == 1 and value.dtype.kind in "iu":
        items = value.tolist()
    else:
        return None
    if not all(isinstance(i, numbers.Integral) for i in items):
        return None
    return [int(i) for i in items]


def _surrogates(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


def _digest(data: str | bytes) -> dict[str, Any]:
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return {"blake3": blake3.blake3(raw).hexdigest()}


def _type_name(value: Any) -> str:
    try:
        kind = type(value)
        name = f"{kind.__module__}.{kind.__qualname__}"
    except Exception:  # noqa: BLE001 -- a type that hides its own name
        return "<unknown>"
    return name[:_NAME] if isinstance(name, str) else "<unknown>"
