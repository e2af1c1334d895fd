"""Keep secrets out of sidecars: redact argument values whose option name looks like a secret."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

REDACTED = "<redacted>"
DEFAULT_SECRET_NAMES: tuple[str, ...] = (
    "token",
    "secret",
    "secrets",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "credential",
    "credentials",
)

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def words(name: str) -> tuple[str, ...]:
    """Split an option or dest name into lowercase words: ``--hfApi-TOKEN`` -> hf, api, token."""
    spaced = _CAMEL.sub("_", name.lstrip("-"))
    return tuple(w for w in _NON_WORD.split(spaced.lower()) if w)


class SecretMatcher:
    """Decides whether an option name names a secret, by whole words so ``--tokenizer`` is safe."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._patterns = tuple({words(n) for n in (*DEFAULT_SECRET_NAMES, *extra) if words(n)})

    def __call__(self, name: str) -> bool:
        name_words = words(name)
        return any(_contains(name_words, pattern) for pattern in self._patterns)


def _contains(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def _items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _may_be_secret(value: Any) -> bool:
    # A number argparse parsed (--max-token-length 512) is never a credential; keeping it
    # visible keeps the record useful.
    return any(i is not None and not isinstance(i, (bool, int, float)) for i in _items(value))


def redact_args(args: Mapping[str, Any], is_secret: SecretMatcher) -> dict[str, Any]:
    """Copy of ``args`` with the value of every secret-named key replaced, numbers excepted."""
    return {k: (REDACTED if is_secret(k) and _may_be_secret(v) else v) for k, v in args.items()}


def secret_values(args: Mapping[str, Any], is_secret: SecretMatcher) -> set[str]:
    """The string forms of the values held under secret-named keys."""
    found: set[str] = set()
    for key, value in args.items():
        if not is_secret(key) or not _may_be_secret(value):
            continue
        found.update(str(item) for item in _items(value) if str(item))
    return found


def secret_options(
    parsers: Iterable[argparse.ArgumentParser], is_secret: SecretMatcher
) -> dict[str, int | str | None]:
    """Option strings (``--api-token``, ``-t``) of secret actions, mapped to their ``nargs``."""
    options: dict[str, int | str | None] = {}
    for action in _actions(parsers):
        numeric = action.type in (int, float)
        if (
            action.option_strings
            and action.nargs != 0
            and not numeric
            and _action_is_secret(action, is_secret)
        ):
            for option in action.option_strings:
                options[option] = action.nargs
    return options


def _action_is_secret(action: argparse.Action, is_secret: SecretMatcher) -> bool:
    return is_secret(action.dest) or any(is_secret(o) for o in action.option_strings)


def _actions(parsers: Iterable[argparse.ArgumentParser]) -> Iterator[argparse.Action]:
    seen: set[int] = set()
    stack = list(parsers)
    while stack:
        parser = stack.pop()
        if id(parser) in seen:
            continue
        seen.add(id(parser))
        for action in parser._actions:  # argparse exposes no public accessor for its actions
            yield action
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())


def redact_argv(
    argv: Sequence[str],
    options: Mapping[str, int | str | None],
    values: set[str],
) -> list[str]:
    """Copy of ``argv`` with secret option values and any token carrying a secret value redacted."""
    out: list[str] = []
    pending = 0
    for token in argv:
        token = str(token)
        if pending:
            out.append(REDACTED)
            pending -= 1
            continue
        option, eq, _ = token.partition("=")
        if eq and option in options:
            out.append(f"{option}={REDACTED}")
        elif token in options:
            out.append(token)
            pending = _values_taken(options[token])
        else:
            out.append(_redact_values(token, values))
    return out


def _values_taken(nargs: int | str | None) -> int:
    if nargs is None or nargs == "?":
        return 1
    if isinstance(nargs, int):
        return nargs
    return 1  # "*" and "+": the first value at least; any further one is caught by value


def _redact_values(token: str, values: set[str]) -> str:
    for value in values:
        if token == value:
            return REDACTED
        if token.endswith(value):
            # --api-tok=secret (an abbreviation) or -psecret (a short option stuck to its value)
            prefix = token[: len(token) - len(value)]
            short = len(prefix) == 2 and prefix[0] == "-" and prefix[1] != "-"
            if short or (prefix.startswith("-") and prefix.endswith("=")):
                return prefix + REDACTED
    return token


def redact_text(text: str) -> str:
    """``text`` with secrets recognised by their shape replaced (credentials in URLs, ...)."""
    return text
