"""Environment evidence, opt-in: the interpreter, the platform, the distributions a run
imported, and the environment variables the user names.

Off unless asked for, by ``recorded_run(environment=...)`` (``True``, or the names of variables
to record) or, for a whole pipeline, by ``PROVENANCE_ENVIRONMENT`` (``on``, or names separated
by commas; ``off`` or empty asks for nothing). It is worked out when the record is built, at the
end of the run, so a module imported late still counts; on the same machine, with the same
environment, it is the same, byte for byte. Values of the named variables go through
``provenance.record.redact``: a variable named like a secret is recorded as redacted, whatever
it holds.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from provenance.errors import ProvenanceError
from provenance.record.redact import REDACTED, SecretMatcher, redact_text

ENVIRONMENT = "PROVENANCE_ENVIRONMENT"
_ON = frozenset({"1", "on", "true", "yes"})
_OFF = frozenset({"", "0", "off", "false", "no"})
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
EnvironmentDeclaration = bool | Iterable[str] | None


def declared(value: EnvironmentDeclaration) -> tuple[str, ...] | None:
    """What ``recorded_run(environment=...)`` asks for: None (nothing), or the variable names."""
    if value is None or value is False:
        return None
    if value is True:
        return ()
    if isinstance(value, str):
        value = [value]
    names = tuple(value)
    bad = [n for n in names if not isinstance(n, str) or not ENV_NAME.fullmatch(n)]
    if bad:
        raise ProvenanceError(
            f"environment= takes True or names of environment variables, not {bad[0]!r}"
        )
    return names


def requested(names: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """``names`` with what ``PROVENANCE_ENVIRONMENT`` asks for; None when neither asks."""
    given = os.environ.get(ENVIRONMENT, "").strip()
    if given.lower() in _OFF:
        return names
    wanted = set(names or ())
    if given.lower() not in _ON:
        wanted.update(n for n in (w.strip() for w in given.split(",")) if ENV_NAME.fullmatch(n))
    return tuple(sorted(wanted))


def distributions() -> dict[str, str]:
    """``{distribution: version}`` of the distributions whose top-level modules are imported."""
    from importlib import metadata

    owners = metadata.packages_distributions()
    imported = {name.partition(".")[0] for name in list(sys.modules)}
    found: dict[str, str] = {}
    for top in imported & owners.keys():
        for distribution in owners[top]:
            try:
                found[distribution] = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                continue  # metadata without a version: nothing true to record
    return dict(sorted(found.items()))


def variables(names: Iterable[str], is_secret: SecretMatcher) -> dict[str, str | None]:
    """The named variables (None when unset), each value redacted as any recorded text is."""
    found: dict[str, str | None] = {}
    for name in sorted(set(names)):
        value = os.environ.get(name)
        if value is not None:
            value = REDACTED if is_secret(name) else redact_text(value, is_secret=is_secret)
        found[name] = value
    return found


def evidence(names: tuple[str, ...], is_secret: SecretMatcher) -> dict[str, Any]:
    """The ``environment`` object of a record."""
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "distributions": distributions(),
        "variables": variables(names, is_secret),
    }


# -- reading a record's environment (hostile: the schema is checked, the values are anything) --


def _table(environment: Any, key: str) -> Mapping[str, Any]:
    table = environment.get(key) if isinstance(environment, Mapping) else None
    return table if isinstance(table, Mapping) else {}


def recorded_variables(environment: Any) -> dict[str, str | None]:
    """The variables a record names, as a replay sets them: a value, or None for unset. A
    name no shell takes, or a value no process environment can hold, is left out."""
    return {
        name: value if isinstance(value, str) else None
        for name, value in sorted(_table(environment, "variables").items())
        if ENV_NAME.fullmatch(name) and not (isinstance(value, str) and "\0" in value)
    }


def changes(a: Any, b: Any) -> Iterator[dict[str, Any]]:
    """The differences between two records' environments, as ``diff`` lists them: key
    ``python``, ``platform``, a distribution's name, or ``$NAME`` for a variable."""
    if a is None and b is None:
        return
    for key in ("python", "platform"):
        va = a.get(key) if isinstance(a, Mapping) else None
        vb = b.get(key) if isinstance(b, Mapping) else None
        if va != vb:
            yield {"section": "environment", "key": key, "a": va, "b": vb}
    for table, prefix in (("distributions", ""), ("variables", "$")):
        ta, tb = _table(a, table), _table(b, table)
        for name in sorted({*ta, *tb}):
            if ta.get(name) != tb.get(name):
                key = f"{prefix}{name}"
                yield {"section": "environment", "key": key, "a": ta.get(name), "b": tb.get(name)}
