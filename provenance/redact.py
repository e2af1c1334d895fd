"""Keep secrets out of sidecars: redact argument values whose option name looks like a secret."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

REDACTED = "<redacted>"
DEFAULT_SECRET_NAMES: tuple[str, ...] = (
    "token",
    "tokens",
    "secret",
    "secrets",
    "password",
    "passwords",
    "passwd",
    "passphrase",
    "passphrases",
    "credential",
    "credentials",
    "auth",
    "authorization",
    "bearer",
    "cookie",
    "cookies",
    "api_key",
    "api_keys",
    "apikey",
    "apikeys",
    "access_key",
    "access_keys",
    "private_key",
    "private_keys",
    "ssh_key",
    "ssh_keys",
)
# Words that name a secret only as the last word of a longer name: --db-pass and --wandb-key are
# credentials, --pass-rate and --key-column are not, and a bare "key" is the key of a key/value
# pair far more often than a credential. Plural "keys" is not among them: records are full of
# metadata_keys and required_keys, lists of field names.
LAST_WORD_SECRET_NAMES: tuple[str, ...] = ("pass", "key")

_COUNTS = frozenset({"max", "min", "num", "n", "number", "total"})
_FIELDS = frozenset(
    {
        "audio",
        "cache",
        "caption",
        "column",
        "composite",
        "config",
        "data",
        "dataset",
        "dedup",
        "dict",
        "field",
        "foreign",
        "group",
        "hash",
        "id",
        "image",
        "index",
        "input",
        "item",
        "join",
        "label",
        "lookup",
        "map",
        "metric",
        "natural",
        "object",
        "output",
        "partition",
        "primary",
        "prompt",
        "public",
        "record",
        "row",
        "sample",
        "score",
        "shard",
        "sort",
        "split",
        "target",
        "text",
        "unique",
        "video",
    }
)
# The word before a secret word that makes the name mean something else: a count of tokens
# (--max-tokens), a tokenizer's special token (--pad-token), a key naming a field (--text-key).
_NOT_SECRET_AFTER: dict[str, frozenset[str]] = {
    "token": _COUNTS
    | {"pad", "bos", "eos", "unk", "mask", "sep", "cls", "special", "start", "end", "stop"},
    "tokens": _COUNTS | {"new", "special", "added", "extra", "stop"},
    "key": _FIELDS,
}

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def words(name: str) -> tuple[str, ...]:
    """Split an option or dest name into lowercase words: ``--hfApi-TOKEN`` -> hf, api, token."""
    spaced = _CAMEL.sub("_", name.lstrip("-"))
    return tuple(w for w in _NON_WORD.split(spaced.lower()) if w)


class SecretMatcher:
    """Decides whether a name names a secret, by whole words so ``--tokenizer`` is safe."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        patterns = {words(n) for n in (*DEFAULT_SECRET_NAMES, *extra)} - {()}
        self._patterns = tuple(sorted(patterns))

    def __call__(self, name: str) -> bool:
        # A path keyed by (/run/secrets/hf) is no name; a flattened one (wandb/api_key) is.
        name_words = words(name.rstrip("/").rsplit("/", 1)[-1])
        if (
            name_words
            and name_words[-1] in LAST_WORD_SECRET_NAMES
            and name_words != ("key",)
            and not _qualified(name_words, len(name_words) - 1)
        ):
            return True
        return any(self._found(name_words, pattern) for pattern in self._patterns)

    @staticmethod
    def _found(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
        n = len(needle)
        return any(
            haystack[i : i + n] == needle and not (n == 1 and _qualified(haystack, i))
            for i in range(len(haystack) - n + 1)
        )


def _qualified(name_words: tuple[str, ...], i: int) -> bool:
    return i > 0 and name_words[i - 1] in _NOT_SECRET_AFTER.get(name_words[i], frozenset())


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
