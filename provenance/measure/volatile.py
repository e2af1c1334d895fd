"""Volatile evidence, opt-in: when the run started and ended, on which host, as which user.

Every one of these differs from one run to the next, so none is recorded unless asked for, by
``recorded_run(volatile=...)`` (``True``, or some of the names ``time``, ``host``, ``user``) or,
for a whole pipeline, by ``PROVENANCE_VOLATILE`` (``on``, or names separated by commas; ``off``
or empty asks for nothing). Off, the record's bytes depend only on the work. On, the record
holds a ``volatile`` object that ``provenance diff`` lists apart from the differences of the
work and that ``replay`` does not judge; the copy of the block embedded into an output leaves
it out, so the artifact's own bytes do not change with it.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from provenance.errors import ProvenanceError

VOLATILE = "PROVENANCE_VOLATILE"
NAMES = ("host", "time", "user")
_ON = frozenset({"1", "on", "true", "yes"})
_OFF = frozenset({"", "0", "off", "false", "no"})
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
VolatileDeclaration = bool | Iterable[str] | None


def declared(value: VolatileDeclaration) -> tuple[str, ...] | None:
    """What ``recorded_run(volatile=...)`` asks for: None (nothing), or the names."""
    if value is None or value is False:
        return None
    if value is True:
        return NAMES
    if isinstance(value, str):
        value = [value]
    names = tuple(value)
    bad = [n for n in names if n not in NAMES]
    if bad:
        raise ProvenanceError(f"volatile= takes True or some of {', '.join(NAMES)}, not {bad[0]!r}")
    return tuple(sorted(set(names)))


def requested(names: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """``names`` with what ``PROVENANCE_VOLATILE`` asks for; None when neither asks. A name
    the variable gives that is none of ``NAMES`` asks for nothing."""
    given = os.environ.get(VOLATILE, "").strip().lower()
    if given in _OFF:
        return names
    wanted = set(names or ())
    if given in _ON:
        wanted.update(NAMES)
    else:
        wanted.update(n for n in (w.strip() for w in given.split(",")) if n in NAMES)
    return tuple(sorted(wanted)) if wanted or names is not None else None


def utc_text(ns: int) -> str:
    """``2024-05-01T12:00:00.123456Z``: an instant in UTC, ISO 8601, to the microsecond."""
    moment = _EPOCH + timedelta(microseconds=ns // 1000)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name and no passwd entry (a container)
        return None


def evidence(names: Iterable[str], started_ns: int | None, ended_ns: int | None) -> dict[str, Any]:
    """The ``volatile`` object: the times known (a running record has no end yet), the host
    and the user, those of them asked for."""
    wanted = set(names)
    found: dict[str, Any] = {}
    if "time" in wanted:
        if started_ns is not None:
            found["started_at"] = utc_text(started_ns)
        if ended_ns is not None:
            found["ended_at"] = utc_text(ended_ns)
        if started_ns is not None and ended_ns is not None:
            # From the times as written, so the three agree to the microsecond.
            micros = max(ended_ns // 1000 - started_ns // 1000, 0)
            found["duration_seconds"] = micros / 1e6
    if "host" in wanted:
        found["host"] = socket.gethostname()
    if "user" in wanted:
        found["user"] = _user()
    return found


def changes(a: Any, b: Any) -> Iterator[dict[str, Any]]:
    """The differences between two records' volatile objects, as ``diff`` lists them apart."""
    ta = a if isinstance(a, Mapping) else {}
    tb = b if isinstance(b, Mapping) else {}
    for key in sorted({*ta, *tb}):
        if ta.get(key) != tb.get(key):
            yield {"section": "volatile", "key": key, "a": ta.get(key), "b": tb.get(key)}
