"""Keep secrets out of records: by name, by the shape of a value, and by a value given.

- By name: the value of an option, argument, field, gate value or key whose name looks like a
  secret (``--api-token``, ``db_password``, ``{"api_key": ...}``).
- By shape: credentials in URLs, ``Bearer``/``Basic`` credentials, ``NAME=value`` and
  ``name: value`` with a secret-looking name, JSON objects, well-known token formats.
- By value: a secret the script was given, wherever else it appears, when it is long enough.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import functools
import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, quote_plus

REDACTED = "<redacted>"
# A secret value is hidden everywhere else it appears only from this length on (NIST SP 800-63B's
# least password length). A shorter one is hidden only where it was given: replacing it elsewhere
# would mangle ordinary text, and show the reader which ordinary value equals the secret.
MIN_KNOWN_LENGTH = 8

_E = TypeVar("_E", bound=BaseException)

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
    # Java keytool's passwords.
    "storepass",
    "keypass",
    "srcstorepass",
    "deststorepass",
    "srckeypass",
    "destkeypass",
    # The variables command-line tools read a password from.
    "mysql_pwd",
    "sshpass",
    "pgpassword",
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


# Letters of other scripts that look like Latin ones, as a name spelled to slip past is spelled.
_LOOK_ALIKES = str.maketrans(
    "\u0430\u0435\u043e\u0440\u0441\u0443\u0445\u0456\u0455\u043a\u0391\u0392\u0395\u0396"
    "\u0397\u0399\u039a\u039c\u039d\u039f\u03a1\u03a4\u03a5\u03a7\u03bf\u0410\u0412\u0415"
    "\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0425",
    "aeopcyxiskABEZHIKMNOPTYXoABEKMHOPCTX",
)
_INVISIBLE = re.compile("[\u00ad\u200b-\u200f\u2060-\u2064\ufeff]")


def _plain_letters(name: str) -> str:
    """``name`` as it reads: full-width letters as ASCII (NFKC), invisible characters gone, and
    Cyrillic or Greek look-alikes as the Latin letters they mimic."""
    if name.isascii():
        return name
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", name)).translate(_LOOK_ALIKES)


def words(name: str) -> tuple[str, ...]:
    """Split an option or dest name into lowercase words: ``--hfApi-TOKEN`` -> hf, api, token."""
    spaced = _CAMEL.sub("_", _plain_letters(name).lstrip("-"))
    return tuple(w for w in _NON_WORD.split(spaced.lower()) if w)


class SecretMatcher:
    """Decides whether a name names a secret, by whole words so ``--tokenizer`` is safe."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        patterns = {words(n) for n in (*DEFAULT_SECRET_NAMES, *extra)} - {()}
        self._patterns = tuple(sorted(patterns))
        # Every secret name holds one of these words, whole, in its lowercased letters: a name
        # without any is judged at the cost of one search (free text asks of every word).
        stems = {w for p in self._patterns for w in p} | set(LAST_WORD_SECRET_NAMES)
        self._stems = re.compile("|".join(sorted(map(re.escape, stems), key=len, reverse=True)))
        self._seen: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        if name.isascii() and self._stems.search(name.lower()) is None:
            return False
        found = self._seen.get(name)
        if found is None:
            name_words = self._words(name)
            found = self._by_last_word(name_words) or self._by_pattern(name_words)
            if len(self._seen) < 4096:
                self._seen[name] = found
        return found

    def named(self, name: str) -> bool:
        """Whether ``name`` holds a secret's own name (``token``, ``password``), not only a last
        word that often means something else (``--pass`` may count passes, ``--key`` pick one)."""
        return self._by_pattern(self._words(name))

    @staticmethod
    def _words(name: str) -> tuple[str, ...]:
        # A path keyed by (/run/secrets/hf) is no name; a flattened one (wandb/api_key) is.
        return words(name.rstrip("/").rsplit("/", 1)[-1])

    @staticmethod
    def _by_last_word(name_words: tuple[str, ...]) -> bool:
        return (
            bool(name_words)
            and name_words[-1] in LAST_WORD_SECRET_NAMES
            and name_words != ("key",)
            and not _qualified(name_words, len(name_words) - 1)
        )

    def _by_pattern(self, name_words: tuple[str, ...]) -> bool:
        return any(self._found(name_words, pattern) for pattern in self._patterns)

    @staticmethod
    def _found(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
        n = len(needle)
        return any(
            haystack[i : i + n] == needle and not (n == 1 and _qualified(haystack, i))
            for i in range(len(haystack) - n + 1)
        )


# Words after a secret word that make the name a measure or a kind of it, not it:
# --token-limit, --password-min-length, --auth-timeout, token_type=bearer, auth_mode=oauth.
_MEASURES = frozenset(
    {"count", "length", "len", "size", "limit", "budget", "retries", "timeout", "ttl", "bits"}
    | {"min", "max", "num", "expiry", "expires", "lifetime", "rotation", "days", "seconds"}
    | {"type", "mode", "kind", "policy", "method", "scheme", "provider", "strategy", "format"}
    | {"endpoint", "url", "uri", "host", "enabled", "required", "name", "id"}
)


def _qualified(name_words: tuple[str, ...], i: int) -> bool:
    if i + 1 < len(name_words) and name_words[i + 1] in _MEASURES:
        return True
    if name_words[i] in ("token", "tokens") and _COUNTS & set(name_words[:i]):
        return True  # a count with words between: num_input_tokens_seen, max_prompt_tokens
    return i > 0 and name_words[i - 1] in _NOT_SECRET_AFTER.get(name_words[i], frozenset())


_DEFAULT_MATCHER = SecretMatcher()

# -- values under a secret name ----------------------------------------------------------------


# Words a framework takes as a boolean or a choice (transformers' "no"/"steps"/"epoch"): under
# a name that happens to hold a secret word they are settings, never a credential.
_SETTINGS = frozenset(
    {"no", "yes", "true", "false", "none", "null", "auto", "on", "off", "steps", "epoch"}
    | {"always", "never", "all", "best", "end", "default", "disabled", "enabled"}
)


def _plain(value: Any, numbers: bool = True) -> bool:
    """Whether ``value`` holds only booleans, nulls and setting words (and numbers, unless
    ``numbers`` is false), none of which is a credential."""
    if value is None or isinstance(value, bool) or (numbers and isinstance(value, (int, float))):
        return True
    if isinstance(value, str) and value.lower() in _SETTINGS:
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v, numbers) for v in value)
    if isinstance(value, Mapping):
        return all(_plain(v, numbers) for v in value.values())
    return False


def _hide(value: Any) -> Any:
    # A count a script records under a secret-looking name (tokens: [101, 2023]) is no
    # credential; keeping it visible keeps the record useful.
    return value if _plain(value) else REDACTED


def _hide_given(value: Any) -> Any:
    # What a script was given for a secret option is the secret whatever ``type=`` made of it
    # (a hex key parsed to an int); a flag, or an option not given, says nothing of it.
    return value if _plain(value, numbers=False) else REDACTED


_NAME_KEYS = ("name", "key", "Name", "Key")
_VALUE_KEYS = frozenset({"value", "Value", "secret", "valueFrom"})


def _named_secret_value(mapping: Mapping[Any, Any], is_secret: SecretMatcher) -> frozenset[str]:
    """The keys holding a secret's value in a name/value pair held as data:
    ``{"name": "DB_PASSWORD", "value": ...}``, as Kubernetes' env lists and key/value tables
    write them."""
    for key in _NAME_KEYS:
        name = mapping.get(key)
        if isinstance(name, str) and is_secret(name):
            return frozenset(k for k in mapping if k in _VALUE_KEYS)
    return frozenset()


def _secret_pair(items: Sequence[Any], is_secret: SecretMatcher) -> bool:
    """Whether ``items`` is a (name, value) pair whose name is a secret's: ``["password", ...]``,
    as a list of headers or of pairs holds it."""
    return (
        len(items) == 2
        and isinstance(items[0], str)
        and not isinstance(items[1], (Mapping, list, tuple))
        and is_secret(items[0])
    )


def _harvest(value: Any, is_secret: SecretMatcher, under: bool = False) -> Iterator[str]:
    """The strings held under secret names anywhere in ``value``."""
    if isinstance(value, Mapping):
        named = _named_secret_value(value, is_secret)
        for key, item in value.items():
            yield from _harvest(item, is_secret, under or is_secret(str(key)) or key in named)
    elif isinstance(value, (list, tuple)):
        if _secret_pair(value, is_secret):
            yield from _harvest(value[1], is_secret, True)
            return
        for item in value:
            yield from _harvest(item, is_secret, under)
    elif under and isinstance(value, (str, os.PathLike)):
        yield str(os.fspath(value))


def _long_values(values: Iterable[str]) -> tuple[str, ...]:
    """The values worth hiding wherever they appear, longest first, so the order is fixed."""
    found = {v for v in values if len(v) >= MIN_KNOWN_LENGTH and REDACTED not in v}
    return tuple(sorted(found, key=lambda v: (-len(v), v)))


def redact_args(
    args: Mapping[str, Any],
    is_secret: SecretMatcher,
    parsers: Iterable[argparse.ArgumentParser] = (),
) -> dict[str, Any]:
    """Copy of ``args`` with each secret key's value hidden: by its name, or as a secret's dest."""
    dests = _secret_dests(parsers, is_secret)
    return {
        k: _hide_given(v) if k in dests or is_secret.named(k) else _hide(v) if is_secret(k) else v
        for k, v in args.items()
    }


# -- argparse options ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Option:
    nargs: int | str | None
    secret: bool

    @property
    def takes_values(self) -> bool:
        return self.nargs != 0


def _all_parsers(
    parsers: Iterable[argparse.ArgumentParser],
) -> Iterator[argparse.ArgumentParser]:
    """``parsers`` and every subparser under them, each once."""
    seen: set[int] = set()
    stack = list(parsers)
    while stack:
        parser = stack.pop()
        if id(parser) in seen:
            continue
        seen.add(id(parser))
        yield parser
        for action in parser._actions:  # argparse exposes no public accessor for its actions
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())


def _actions(parsers: Iterable[argparse.ArgumentParser]) -> Iterator[argparse.Action]:
    for parser in _all_parsers(parsers):
        yield from parser._actions


def _named_secret(action: argparse.Action, is_secret: SecretMatcher) -> bool:
    """Whether the action holds a secret, by its dest or any option string, whatever its
    ``type=`` makes of the value; except that a name secret only by an ambiguous last word
    (``--pass``, ``--key``) declared ``type=int`` or ``float`` counts something."""
    names = (action.dest, *action.option_strings)
    if any(is_secret.named(n) for n in names):
        return True
    return any(is_secret(n) for n in names) and action.type not in (int, float)


def _secret_dests(
    parsers: Iterable[argparse.ArgumentParser], is_secret: SecretMatcher
) -> frozenset[str]:
    """Dests of secret actions: ``-p/--password`` stored as ``pw`` is still a password."""
    return frozenset(a.dest for a in _actions(parsers) if _named_secret(a, is_secret))


def _prefixes(parsers: Iterable[argparse.ArgumentParser]) -> str:
    """The characters that start an option in any of ``parsers`` (``prefix_chars="-+"``)."""
    found = {"-", *(char for parser in _all_parsers(parsers) for char in parser.prefix_chars)}
    return "".join(sorted(found))


def _option_table(
    parsers: Iterable[argparse.ArgumentParser], is_secret: SecretMatcher
) -> dict[str, _Option]:
    """Every option string of ``parsers`` and its subparsers, with its nargs and secrecy: a
    secret option's value is secret whatever its ``type=`` makes of it."""
    table: dict[str, _Option] = {}
    for action in _actions(parsers):
        option = _Option(action.nargs, action.nargs != 0 and _named_secret(action, is_secret))
        for name in action.option_strings:
            # One string in two parsers: the reading that hides more wins.
            old = table.get(name)
            if (
                old is None
                or (option.secret and not old.secret)
                or (not old.secret and option.takes_values and not old.takes_values)
            ):
                table[name] = option
    return table


# -- argv ------------------------------------------------------------------------------------------

_NEGATIVE_NUMBER = re.compile(r"-\d+|-\d*\.\d+")
_OPTION, _VALUE, _SECRET, _LOOSE = "option", "value", "secret", "loose"


@dataclass(frozen=True)
class _Slot:
    """One argv token read as argparse reads it: ``prefix`` is kept, ``value`` is judged.

    option: a whole option or flag cluster; value: the value of a known, non-secret option;
    secret: a secret option's value; loose: a positional or an unknown option's value.
    """

    prefix: str
    value: str
    kind: str


def _option_like(token: str, prefixes: str = "-") -> bool:
    return (
        token[:1] != ""
        and token[0] in prefixes
        and len(token) > 1
        and not _NEGATIVE_NUMBER.fullmatch(token)
    )


def _is_long(token: str, prefixes: str) -> bool:
    """``--name`` or ``++name``: argparse takes a second prefix character as a long option."""
    return len(token) > 1 and token[0] in prefixes and token[1] in prefixes


@dataclass(frozen=True)
class _Arity:
    count: int  # values still to take
    open: bool  # "*", "+" and REMAINDER take any number
    swallow: bool  # REMAINDER takes option-like tokens too


def _arity(nargs: int | str | None) -> _Arity:
    if isinstance(nargs, int):
        return _Arity(nargs, False, False)
    if nargs in ("*", "+"):
        return _Arity(0, True, False)
    if nargs == argparse.REMAINDER:
        return _Arity(0, True, True)
    return _Arity(1, False, False)  # None and "?"


def _attached(prefix: str, value: str, secret: bool) -> _Slot:
    return _Slot(prefix, value, _SECRET if secret else _VALUE)


def _read_option(
    token: str, table: Mapping[str, _Option], is_secret: SecretMatcher, prefixes: str
) -> tuple[_Slot, _Option | None]:
    """Read one option-like token; the option returned takes the tokens that follow."""
    if token in table:
        option = table[token]
        return _Slot(token, "", _OPTION), option if option.takes_values else None
    name, eq, value = token.partition("=")
    if eq and name in table:
        return _attached(name + eq, value, table[name].secret), None
    long = _is_long(token, prefixes)
    prefix = name if long else token
    # An abbreviation (--api-tok, or -pass for -password): argparse takes any unique prefix.
    matches = sorted(
        o for o in table if o.startswith(prefix) and len(o) > 2 and _is_long(o, prefixes) == long
    )
    if matches:
        option = next((table[o] for o in matches if table[o].secret), table[matches[0]])
        if long and eq:
            return _attached(name + eq, value, option.secret), None
        return _Slot(token, "", _OPTION), option if option.takes_values else None
    if not long:
        found = _read_cluster(token, table)
        if found is not None:
            return found
    # Unknown here (parse_known_args leaves it over): judged by its name alone.
    unknown = is_secret(name)
    if eq:
        return _Slot(name + eq, value, _SECRET if unknown else _LOOSE), None
    return _Slot("", token, _LOOSE), _Option(None, True) if unknown else None


def _read_cluster(token: str, table: Mapping[str, _Option]) -> tuple[_Slot, _Option | None] | None:
    """``-vpSECRET``: flags, then at most one option that takes the rest of the token as value."""
    for i in range(1, len(token)):
        option = table.get(token[0] + token[i])
        if option is None:
            return None if i == 1 else (_Slot(token[:i], token[i:], _LOOSE), None)
        if option.takes_values:
            head, rest = token[: i + 1], token[i + 1 :]
            if rest.startswith("="):
                head, rest = head + "=", rest[1:]
            if rest:
                return _attached(head, rest, option.secret), None
            return _Slot(token, "", _OPTION), option
    return _Slot(token, "", _OPTION), None


def _read_argv(
    argv: Sequence[str],
    table: Mapping[str, _Option],
    is_secret: SecretMatcher,
    prefixes: str = "-",
) -> list[_Slot]:
    slots: list[_Slot] = []
    taking: _Arity | None = None
    secret = False
    positional_only = False
    for token in map(str, argv):
        if positional_only:
            slots.append(_Slot("", token, _LOOSE))
            continue
        if taking is not None:
            if token == "--" or (_option_like(token, prefixes) and not taking.swallow):
                taking = None
            else:
                slots.append(_Slot("", token, _SECRET if secret else _VALUE))
                if not taking.open:
                    taking = _Arity(taking.count - 1, False, False) if taking.count > 1 else None
                continue
        if token == "--":
            slots.append(_Slot(token, "", _OPTION))
            positional_only = True
        elif not _option_like(token, prefixes):
            slots.append(_Slot("", token, _LOOSE))
        else:
            slot, option = _read_option(token, table, is_secret, prefixes)
            slots.append(slot)
            if option is not None:
                taking, secret = _arity(option.nargs), option.secret
                if taking.count == 0 and not taking.open:
                    taking = None
    return slots


def _loose(slot: _Slot, parsed: Sequence[str], prefixes: str = "-") -> str | None:
    """A positional or an unknown option's value redacted if it carries a parsed secret."""
    for value in parsed:
        if slot.value == value:
            return slot.prefix + REDACTED
        head = slot.value[: len(slot.value) - len(value)]
        if (
            slot.value.endswith(value)
            and _option_like(head, prefixes)
            and (len(head) == 2 or head[-1] == "=")
        ):
            # -pVALUE or --api-tok=VALUE in a form the option table could not read.
            return slot.prefix + head + REDACTED
    return None


def redact_argv(
    argv: Sequence[str],
    parsers: Iterable[argparse.ArgumentParser] = (),
    is_secret: SecretMatcher | None = None,
    *,
    args: Mapping[str, Any] | None = None,
    known: Iterable[str] = (),
) -> list[str]:
    """Copy of ``argv`` with every secret option's value redacted, read as argparse reads it.

    Options are read with their aliases, ``--opt=value``, abbreviations and clustered short
    flags; an unknown option (a ``parse_known_args`` leftover) by its name. A positional equal to
    a parsed secret is redacted, and every other token gets ``redact_text``.
    """
    matcher = is_secret or _DEFAULT_MATCHER
    parser_list = list(parsers)
    prefixes = _prefixes(parser_list)
    slots = _read_argv(argv, _option_table(parser_list, matcher), matcher, prefixes)
    dests = _secret_dests(parser_list, matcher)
    parsed = sorted(
        {
            v
            for k, item in (args or {}).items()
            for v in _harvest(item, matcher, matcher(k) or k in dests)
            if v
        },
        key=lambda v: (-len(v), v),
    )
    found = [s.value for s in slots if s.kind == _SECRET]
    redactor = _Redactor(matcher, (*known, *found, *parsed))
    out = []
    for slot in slots:
        hidden = _loose(slot, parsed, prefixes) if slot.kind == _LOOSE else None
        if slot.kind == _SECRET:
            out.append(slot.prefix + REDACTED)
        elif hidden is not None:
            out.append(hidden)
        else:
            out.append(redactor.text(slot.prefix) + redactor.text(slot.value))
    return out


def known_secrets(
    argv: Sequence[str],
    args: Mapping[str, Any],
    parsers: Iterable[argparse.ArgumentParser],
    is_secret: SecretMatcher,
    config: Any = None,
) -> tuple[str, ...]:
    """The secrets the script was given, longest first: hidden wherever they appear from
    ``MIN_KNOWN_LENGTH`` on, and in messages at any length.

    They are the values of secret options in ``argv`` (leftovers of ``parse_known_args`` too),
    the credentials of tools in command lines ``argv`` holds (``mysql -p...``), and the strings
    under secret names or dests in ``args`` and the resolved config. Values a script records
    under secret names are hidden where they stand but not spread: a name misjudged as secret
    must not wipe an ordinary value from the whole record.
    """
    parser_list = list(parsers)
    dests = _secret_dests(parser_list, is_secret)
    table = _option_table(parser_list, is_secret)
    slots = _read_argv(argv, table, is_secret, _prefixes(parser_list))
    values = [s.value for s in slots if s.kind == _SECRET]
    for token in argv:  # a command line given as one argument: its tools' credentials
        if isinstance(token, str):
            values.extend(v for m in _TOOL_CREDENTIAL.finditer(token) for v in _tool_values(m))
    for key, value in args.items():
        values.extend(_harvest(value, is_secret, is_secret(key) or key in dests))
    values.extend(_harvest(config, is_secret))  # a resolved config: under secret keys only
    return tuple(sorted({v for v in values if v and REDACTED not in v}, key=lambda v: (-len(v), v)))


# -- free text ---------------------------------------------------------------------------------

_HEX64 = re.compile(r"(?<![0-9a-fA-F])[0-9a-f]{64}(?![0-9a-fA-F])")
# Command lines held in a string, whose tools take a credential by a short option: the
# password glued to mysql's -p, curl's and wget's user:password, sshpass's and redis-cli's
# password. What a tool's --password=... takes is a pair, hidden by its name.
_CREDENTIAL_TOOLS = (
    *("curl", "wget", "mysql", "mariadb", "sshpass", "redis-cli", "docker", "podman", "twine"),
    *("az", "helm", "oras", "zip", "7z", "smbclient", "rpcclient", "smbmap"),
)
# A tool's name as a word of its own: not the start of another program's (mysql-connector).
_TOOL = r"(?<![\w-])(?:{})(?![\w-])"
# One shell word: single-quoted (joined by '\'' as a shell quotes a quote), double-quoted, bare,
# or cut short after its opening quote.
_SHELL_WORD = r"(?:'[^'\n]*'(?:\\''[^'\n]*')*|\"(?:[^\"\\\n]|\\.)*\"|[^\s\"']+|['\"][^\s\"']+)"


def _after_tool(names: str) -> str:
    """A tool's name, then the rest of its command up to an option: never past the tool's name
    again, so a line naming it many times is read once, not once from each name."""
    tool = _TOOL.format(names)
    return tool + r"(?:(?!" + tool + r")[^\n|;&])*?"


_TOOL_CREDENTIAL = re.compile(
    r"(?P<head>(?:" + _after_tool("curl|wget") + r"[ \t](?:-[A-Za-z]*[uU]|--user|--proxy-user)"
    r"[ \t=]*(?P<user>)(?=['\"]?[^\s:'\"]*:)"  # user:password (a user alone is no secret)
    r"|" + _after_tool("wget") + r"[ \t]--(?:http-|ftp-|proxy-)?password[ \t]+"
    r"|" + _after_tool("mysql|mysqldump|mysqladmin|mariadb|mariadb-dump") + r"[ \t]-p(?=[^\s])"
    r"|" + _after_tool("sshpass") + r"[ \t]-p[ \t]*"
    r"|" + _after_tool("redis-cli") + r"[ \t](?:-a|--pass)[ \t]+"
    r"|" + _after_tool("docker|podman|twine|az|helm|oras") + r"[ \t]-p[ \t]+"
    r"|" + _after_tool("zip") + r"[ \t]-P[ \t]+"
    r"|" + _after_tool("7z|7za|7zz|7zr") + r"[ \t]-p(?=[^\s])"
    r"|" + _after_tool("smbclient|rpcclient|smbmap") + r"[ \t](?:-U|--user)[ \t=]*[^\s%]+%))"
    r"(?P<credential>(?!['\"]?<redacted>)" + _SHELL_WORD + ")"  # case kept: mysql's -P is the port
)
# Only text holding one of these (lowercased) can hold a secret by its shape.
_SHAPE_MARKS = (
    "=",
    ":",
    "{",
    "@",
    "bearer",
    "basic",
    "hf_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "sk-",
    "xox",
    "akia",
    "asia",
    *(f"gl{kind}-" for kind in ("pat", "dt", "rt", "rtr", "ptt", "ft", "soat", "cbt", "imt")),
    "gloas-",
    "glagent-",
    "aiza",
    "_live_",
    "_test_",
    "npm_",
    "eyj",
    "sig",
    "-----begin",
    "2f%",  # a URL encoded once or more: %3A%2F%2F, %253A%252F%252F
    "//",
    "\uff1d",
    "\uff1a",
    "ya29.",
    "r8_",
    "_v1_",
    "xapp-",
    "dapi",
    "shp",
    "hvs.",
    "hvb.",
    "hvr.",
    "atatt3",
    "age-secret-key-",
    "glsa_",
    "lin_api_",
    "gsk_",
    "tskey-",
    "</",
    "bot",
    "hooks.slack",
    "webhooks",
    *_CREDENTIAL_TOOLS,
)
# A scheme is at most 32 characters: one without a bound ran along every long run of its
# characters from each of its word starts, as a name did.
# Its userinfo may hold '#' and a quote: a password is what the user typed, not what a browser
# would make of it.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]{0,31}://)(?P<info>[^\s/?\"@]+)@")
# A scheme-relative URL (//user:password@host), with the ':' that makes its userinfo a pair.
_RELATIVE_USERINFO = re.compile(r"(?P<scheme>(?<![\w:/%])//)(?P<info>[^\s/?\"@:]+:[^\s/?\"@]*)@")
# The same URL percent-encoded, as it stands in another URL's query: https%3A%2F%2Fuser%3Apw%40h
# Encoded again and again (%253A is %3A encoded), as a URL in a URL in a URL's query is.
_ENCODED_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]{0,31}%(?:25)*3[Aa]%(?:25)*2[Ff]%(?:25)*2[Ff])"
    r"(?P<info>(?:(?!%(?:25)*2[Ff]|%(?:25)*3[Ff]|%(?:25)*23)[^\s/?#\"'&])+?)(?P<at>%(?:25)*40)"
)
# Query parameters that name a credential by a short name no option would take for one: a
# password, an API key (?key= of Google's APIs), an OAuth authorization code.
_QUERY_PASSWORD = re.compile(
    r"(?P<head>[?&;](?:pwd|pw|pass|passwd|key|apikey|api-key|code)=)(?P<credential>[^&#\s\"'<>]+)",
    re.I,
)
# NAME value, as env dumps, `aws configure set`, .netrc files, command lines and prose put it:
# `--password VALUE`, `DB_PASSWORD VALUE`, `password VALUE`, `the password is VALUE`,
# `password -> VALUE`. After an option (one or two dashes) any value goes; after a bare name
# only one that looks like a credential, not a word of prose (`the password is required`).
_SPACED_PAIR = re.compile(
    r"(?<![\w.\-])(?P<dashes>-{0,2})(?P<key>[^\W\d][\w.\-]{0,127})[ \t]+"
    r"(?:(?:is|was|are|->|=>|:=)[ \t]+)?"
    r"(?P<credential>(?!-|<redacted>)[^\s\"',;]+)"
)
_PROSE_WORD = re.compile(r"[A-Za-z]?[a-z]+|[0-9]+")
# URLs whose path is the credential: Slack's and Discord's webhooks, Telegram's bot API.
_WEBHOOKS = re.compile(
    r"(?P<head>https://(?:hooks\.slack\.com/services|(?:canary\.|ptb\.)?discord(?:app)?\.com"
    r"/api/webhooks)/)(?P<credential>[^\s\"'<>?#&)\]}]{8,})"
    r"|(?P<bot>https://api\.telegram\.org/(?:file/)?bot)(?P<token>[^\s/\"'<>?#]{8,})"
)
_BEARER = re.compile(r"(?P<head>\bbearer[ \t]+)(?P<credential>[A-Za-z0-9\-._~+/]+=*)", re.I)
_BASIC = re.compile(
    r"(?P<head>\bbasic[ \t]+)(?P<credential>[A-Za-z0-9+/]{4,}={0,2})(?![\w+/=])", re.I
)
# Token formats that say what they are: Hugging Face, GitHub, OpenAI and Anthropic, Slack, AWS
# access key ids, GitLab, Google API keys, Stripe secret and restricted keys, npm, JSON Web Tokens.
_TOKEN_FORMATS = re.compile(
    r"\b(?:hf_[A-Za-z0-9]{30,}"
    r"|gh[pousr]_[A-Za-z0-9]{36,}"
    r"|github_pat_[A-Za-z0-9_]{22,}"
    r"|sk-[A-Za-z0-9_\-]{20,}"
    r"|xox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|A[KS]IA[0-9A-Z]{16}"
    r"|glpat-[A-Za-z0-9_\-]{20,}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{20,}"
    r"|npm_[A-Za-z0-9]{36}"
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"
    r"|ya29\.[0-9A-Za-z_\-]{20,}"  # Google OAuth access tokens
    r"|r8_[A-Za-z0-9]{20,}"  # Replicate
    r"|do[opr]_v1_[a-f0-9]{64}"  # DigitalOcean
    r"|gl(?:pat|dt|rt|rtr|ptt|ft|soat|cbt|imt|oas|agent)-[A-Za-z0-9_\-]{20,}"  # GitLab
    r"|xapp-[0-9]+-[A-Z0-9]+-[0-9]+-[a-f0-9]{32,}"  # Slack app-level
    r"|dapi[a-f0-9]{32}(?:-[0-9]+)?"  # Databricks
    r"|shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"  # Shopify
    r"|hv[sbr]\.[A-Za-z0-9_\-]{24,}"  # HashiCorp Vault
    r"|ATATT3[A-Za-z0-9_\-=]{20,}"  # Atlassian
    r"|AGE-SECRET-KEY-1[0-9A-Z]{20,}"  # age
    r"|glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}"  # Grafana service accounts
    r"|lin_api_[A-Za-z0-9]{30,}"  # Linear
    r"|gsk_[A-Za-z0-9]{30,}"  # Groq
    r"|tskey-(?:auth|api|client|scim|webhook)-[A-Za-z0-9\-]{20,})"  # Tailscale
    r"(?![A-Za-z0-9_\-])"
)
# The signature of a presigned URL is its credential, whatever the query calls it: AWS
# (Signature, X-Amz-Signature), Google Cloud (X-Goog-Signature), Azure SAS (sig).
_URL_SIGNATURE = re.compile(
    r"(?P<head>[?&](?:[A-Za-z0-9]+-)*(?:signature|sig)=)(?P<value>[^&#\s\"'<>]+)", re.I
)
# A PEM private key, up to its END line or, cut short, to the end of the text.
_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
    r".*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
    re.S,
)
# NAME=value, name: value, "name": "value", 'name': 'value', and \"name\": \"value\" (JSON
# held as a string in JSON or in a message); a ':' that starts '//' is a URL's.
# A name is at most 128 characters: each "." or "-" of a long run of name characters starts
# one, and one that ran to the end of the run made a long line cost its length squared.
# Spaces around the sign may be any a keyboard or a word processor makes (NBSP, ideographic), and
# the sign full-width; '=>' is an arrow of PHP and Perl.
_SPACE = "[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]"
_PAIR = re.compile(
    r"(?<!\w)(?P<quote>\\?[\"']?)(?P<key>[^\W\d][\w.\-\u00ad\u200b-\u200f\u2060]{0,127})(?P=quote)"
    rf"{_SPACE}*(?:[=\uff1d](?!=)>?|(?P<colon>[:\uff1a])(?!//)){_SPACE}*"
)
# A pair as a tuple of two strings: ('password', 'value'), as items() and a list of pairs print.
_TUPLE_PAIR = re.compile(
    r"\(\s*(?P<quote>[\"'])(?P<key>[A-Za-z_][\w.\-]{0,127})(?P=quote)\s*,\s*(?P<colon>)"
)
# What ends the line of a YAML key whose value starts on the next: nothing, or a block
# scalar's indicator (|, >-, |2), then maybe a comment.
_YAML_BLOCK_START = re.compile(r"(?:[|>][+-]?[0-9]?[+-]?)?[ \t]*(?:#[^\n]*)?(?=\n)")
# <password>VALUE</password>: an XML element named like a secret.
_XML_ELEMENT = re.compile(
    r"<(?P<key>[^\W\d][\w.\-:]{0,127})(?:[ \t][^<>]{0,1000})?>(?P<credential>[^<]{1,4096})"
    r"</(?P=key)>"
)
# {"name": "DB_PASSWORD", "value": "..."}: a secret's name held as data, its value beside it,
# as Kubernetes' env lists and key/value tables write them.
_NAMED_VALUE = re.compile(
    r"(?P<q1>[\"'])(?:name|key|Name|Key)(?P=q1)[ \t]*:[ \t]*(?P<q2>[\"'])(?P<key>[^\"'\n]{1,128})"
    r"(?P=q2)[ \t]*,[ \t]*(?P<q3>[\"'])(?:value|Value|secret)(?P=q3)[ \t]*(?P<colon>:)[ \t]*"
)
# A string literal's prefix in a repr: b'...', rb"...", u'...'.
_LITERAL_PREFIX = re.compile(r"[bBrRuUfF]{1,2}(?=[\"'])")
_SCHEME = re.compile(r"(?:bearer|basic|token|digest|negotiate|ntlm|hoba)[ \t]+(?=\S)", re.I)
# A scheme followed by its parameters (Digest username="a", response="..."): all of them go.
_SCHEME_PARAMETERS = re.compile(r"[A-Za-z][\w-]*=")
_BARE_VALUE = re.compile(r"[^\s,;&\"')\]}]+")
_HARMLESS = frozenset({"", "None", "null", "true", "false", "True", "False"})
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_MAX_DEPTH = 100


def _closing_quote(text: str, start: int) -> int | None:
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i
        i += 1
    return None


def _closing_bracket(text: str, start: int) -> int:
    pairs = {"{": "}", "[": "]", "(": ")"}
    depth, stack = 0, []
    for i in range(start, len(text)):
        if text[i] in pairs:
            stack.append(pairs[text[i]])
            depth += 1
        elif stack and text[i] == stack[-1]:
            stack.pop()
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def _value_span(text: str, start: int, header: bool) -> tuple[int, int] | None:
    """Where the value of a pair that starts at ``start`` lies; None when there is none to hide.

    In a header (``Authorization: token ghp_...``, ``authorization=Token ...``) the value may be
    a scheme and a credential: both go, a scheme word being no safer than the rest.
    """
    if start >= len(text) or text.startswith(REDACTED, start):
        return None
    literal = _LITERAL_PREFIX.match(text, start)
    if literal is not None:  # b'...': the prefix is no value of its own
        start = literal.end()
    first = text[start]
    if first == "\\" and text[start + 1 : start + 2] in ('"', "'"):
        # An escaped quote opens the value of an escaped pair: it ends at the same escape.
        escaped = text.find(text[start : start + 2], start + 2)
        if escaped == -1:
            bare = _BARE_VALUE.match(text, start + 2)
            return (start + 2, bare.end()) if bare else None
        return (start + 2, escaped)
    if first in "\"'":
        end = _closing_quote(text, start)
        if end is None:
            bare = _BARE_VALUE.match(text, start + 1)
            return (start + 1, bare.end()) if bare else None
        return (start + 1, end)
    if first in "{[(":
        try:
            json.JSONDecoder().raw_decode(text, start)
        except (ValueError, RecursionError):
            return (start, _closing_bracket(text, start))
        return None  # JSON: its secret parts were hidden by structure already
    scheme = _SCHEME.match(text, start) if header else None
    if scheme is not None:
        if text.startswith(REDACTED, scheme.end()):
            return None  # Bearer <redacted>: hidden already, and its scheme is worth keeping
        if _SCHEME_PARAMETERS.match(text, scheme.end()):
            end = text.find("\n", start)
            return (start, len(text) if end == -1 else end)
        bare = _BARE_VALUE.match(text, scheme.end())
        return (start, bare.end()) if bare else None
    bare = _BARE_VALUE.match(text, start)
    call = text.find("(", start, bare.end()) if bare is not None else -1
    if call != -1:  # SecretStr('...'): the whole call goes, its arguments are the value
        return (start, _closing_bracket(text, call))
    return (start, bare.end()) if bare else None


def _basic(match: re.Match[str]) -> str:
    credential = match["credential"]
    try:  # padding is often left off: it says nothing the length does not
        decoded = base64.b64decode(credential + "=" * (-len(credential) % 4), validate=True)
    except (binascii.Error, ValueError):
        return match[0]
    return match["head"] + REDACTED if b":" in decoded else match[0]


def _tool_values(match: re.Match[str]) -> list[str]:
    """The value of a tool's credential as the tool gets it, and a curl password alone."""
    import shlex  # only for text that holds one

    word = match["credential"]
    try:
        [value] = shlex.split(word)
    except ValueError:  # not one word after all (an unclosed quote): taken as it stands
        value = word
    return [value, value.partition(":")[2]] if match["user"] is not None else [value]


def _tool_credential(match: re.Match[str], found: list[str]) -> str:
    """A tool's credential hidden; its values added to ``found``."""
    found.extend(_tool_values(match))
    return match["head"] + REDACTED


def _userinfo(match: re.Match[str]) -> str:
    return match[0] if match["info"] == REDACTED else f"{match['scheme']}{REDACTED}@"


def _webhook(match: re.Match[str]) -> str:
    return (match["head"] or match["bot"]) + REDACTED


def _yaml_block(text: str, key_start: int, after: int) -> tuple[int, int] | None:
    """The lines of a YAML value that starts on the line after its key (``password:`` or
    ``password: |``): those indented deeper than the key. None when there are none."""
    line_start = text.rfind("\n", 0, key_start) + 1
    column = key_start - line_start
    start = end = text.find("\n", after) + 1
    at = start
    while at < len(text):
        line_end = text.find("\n", at)
        line_end = len(text) if line_end == -1 else line_end
        line = text[at:line_end]
        indent = len(line) - len(line.lstrip(" \t"))
        if line.strip() and indent <= column:
            break
        if line.strip():
            end = line_end
        at = line_end + 1
    if end == start:
        return None
    first = start + len(text[start:end]) - len(text[start:end].lstrip())
    return (first, end)


# Credential formats kept by detect-secrets' plugins, a maintained catalogue, where it has them:
# AWS, GitHub, GitLab, Slack, Stripe, Telegram, OpenAI, PyPI, SendGrid, Discord, Twilio,
# Mailchimp, Square, Azure storage. The rules above keep what it lacks (Hugging Face, Google,
# npm, JWTs with their signature, DigitalOcean, Replicate, ...). Its plugins are loaded only
# for a text holding a mark of one of its formats, so most records never import it.
_DETECTORS = (
    ("aws", "AWSKeyDetector"),
    ("azure_storage_key", "AzureStorageKeyDetector"),
    ("discord", "DiscordBotTokenDetector"),
    ("github_token", "GitHubTokenDetector"),
    ("gitlab_token", "GitLabTokenDetector"),
    ("mailchimp", "MailchimpDetector"),
    ("openai", "OpenAIDetector"),
    ("pypi_token", "PypiTokenDetector"),
    ("sendgrid", "SendGridDetector"),
    ("slack", "SlackDetector"),
    ("square_oauth", "SquareOAuthDetector"),
    ("stripe", "StripeDetector"),
    ("telegram_token", "TelegramBotTokenDetector"),
    ("twilio", "TwilioKeyDetector"),
)
# What a text must hold for one of those formats to be in it: loose forms of the plugins' own
# patterns, so that a path or a number never costs the import.
_DETECTOR_MARKS = re.compile(
    r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}"
    r"|['\"][0-9a-zA-Z/+]{40}['\"]"
    r"|gh[pousr]_[A-Za-z0-9_]{36}|GR1348941|gl[a-z]{1,7}-[A-Za-z0-9_\-]{20}"
    r"|xox[a-z]-|hooks\.slack\.com|[rs]k_live_[0-9a-zA-Z]{24}|T3BlbkFJ|pypi-AgE"
    r"|[0-9]{8,10}:[0-9A-Za-z_-]{35}|SG\.[\w-]{22}\.|[MNO][\w-]{23,25}\.[\w-]{6}\."
    r"|(?:AC|SK)[a-z0-9]{32}|[0-9a-z]{32}-us[0-9]|sq0csp-|AccountKey="
)
_DETECTED_MIN = 16  # no format of the catalogue is shorter


@functools.cache
def _detectors() -> tuple[Any, ...]:
    import importlib

    return tuple(
        getattr(importlib.import_module(f"detect_secrets.plugins.{module}"), name)()
        for module, name in _DETECTORS
    )


def detected(text: str) -> str:
    """``text`` with every credential that detect-secrets' format plugins find in it hidden."""
    if len(text) < _DETECTED_MIN or not _DETECTOR_MARKS.search(text):
        return text
    found = {
        secret
        for plugin in _detectors()
        for secret in plugin.analyze_string(text)
        if isinstance(secret, str) and len(secret) >= _DETECTED_MIN and REDACTED not in secret
    }
    for secret in sorted(found, key=lambda v: (-len(v), v)):
        text = text.replace(secret, REDACTED)
    return text


class _Redactor:
    """Applies the three rules with one matcher and one set of known values."""

    def __init__(self, is_secret: SecretMatcher, known: Iterable[str]) -> None:
        self.is_secret = is_secret
        known = tuple(known)
        short = sorted(
            {v for v in known if 0 < len(v) < MIN_KNOWN_LENGTH and v not in _HARMLESS},
            key=lambda v: (-len(v), v),
        )
        self.short = (
            re.compile(
                r"(?<![A-Za-z0-9])(?:" + "|".join(map(re.escape, short)) + r")(?![A-Za-z0-9])"
            )
            if short
            else None
        )
        values = _long_values(known)
        # A value inside a JSON string appears with its escapes, and in a URL percent-encoded.
        escaped = (json.dumps(v, ensure_ascii=False)[1:-1] for v in values)
        encoded = (form for v in values for form in (quote(v, safe=""), quote_plus(v, safe="")))
        self.known = _long_values((*values, *escaped, *encoded))

    # -- text --

    def text(self, text: str, *, message: bool = False) -> str:
        """``text`` with secrets hidden by value and by shape; a ``message`` (an error, a
        warning) also loses the run's known secrets shorter than ``MIN_KNOWN_LENGTH``."""
        text = self._known(text)
        lowered = text.lower()
        if any(mark in lowered for mark in _SHAPE_MARKS):
            text = self._shapes(text)
        if "(" in text:
            text = self._pairs(text, _TUPLE_PAIR)
        if "</" in text:
            text = _XML_ELEMENT.sub(self._element, text)
        if "alue" in text or "ecret" in text:
            text = self._pairs(text, _NAMED_VALUE)
        if " " in text or "\t" in text:
            text = self._spaced_pairs(text)
        text = detected(text)
        return self._short_known(text) if message and self.short else text

    def _shapes(self, text: str) -> str:
        text = _PEM_PRIVATE_KEY.sub(REDACTED, text)
        text = self._json(text)
        text = _USERINFO.sub(_userinfo, text)
        text = _RELATIVE_USERINFO.sub(_userinfo, text)
        text = _ENCODED_USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}{m['at']}", text)
        text = _WEBHOOKS.sub(_webhook, text)
        text = _URL_SIGNATURE.sub(lambda m: m["head"] + REDACTED, text)
        text = _QUERY_PASSWORD.sub(lambda m: m["head"] + REDACTED, text)
        text = _BEARER.sub(lambda m: m["head"] + REDACTED, text)
        text = _BASIC.sub(_basic, text)
        text = _TOKEN_FORMATS.sub(REDACTED, text)
        found: list[str] = []
        text = _TOOL_CREDENTIAL.sub(lambda m: _tool_credential(m, found), text)
        if found:  # the same password said again in the string: an echo, a retry, a variable
            text = self._known(text, _long_values(found))
        return self._pairs(text, _PAIR)

    def _element(self, match: re.Match[str]) -> str:
        if not self.is_secret(match["key"]) or match["credential"].strip() in _HARMLESS:
            return match[0]
        start, end = match.span("credential")
        return match[0][: start - match.start()] + REDACTED + match[0][end - match.start() :]

    def _short_known(self, text: str) -> str:
        # A short secret is hidden where it stands as a word of its own: inside another word
        # it would be a guess, and would show the reader where the secret's letters are.
        return self.short.sub(REDACTED, text) if self.short is not None else text

    def _spaced_pairs(self, text: str) -> str:
        # Each word may be the name of the next pair ("set aws_secret_access_key VALUE"): the
        # search goes on after the name, not after the value it did not take.
        out, last, at = [], 0, 0
        while (pair := _SPACED_PAIR.search(text, at)) is not None:
            at = pair.end("key")
            value = pair["credential"]
            if not self.is_secret(pair["key"]) or value in _HARMLESS:
                continue
            if not pair["dashes"] and (len(value) < 6 or _PROSE_WORD.fullmatch(value)):
                continue
            out += [text[last : pair.start("credential")], REDACTED]
            last = at = pair.end()
        out.append(text[last:])
        return "".join(out)

    def _known(self, text: str, known: tuple[str, ...] | None = None) -> str:
        spans = []
        for value in self.known if known is None else known:
            at = text.find(value)
            while at != -1:
                spans.append((at, at + len(value)))
                at = text.find(value, at + 1)
        if not spans:
            return text
        # A digest is never partly rewritten: only a secret that is the whole digest goes.
        digests = [m.span() for m in _HEX64.finditer(text)]
        spans = [
            (s, e)
            for s, e in spans
            if not any(ds <= s and e <= de and (s, e) != (ds, de) for ds, de in digests)
        ]
        merged: list[tuple[int, int]] = []
        for start, end in sorted(spans):
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        out, last = [], 0
        for start, end in merged:
            out += [text[last:start], REDACTED]
            last = end
        out.append(text[last:])
        return "".join(out)

    def _json(self, text: str) -> str:
        decoder = json.JSONDecoder()
        out, last, at = [], 0, text.find("{")
        while at != -1:
            try:
                found, end = decoder.raw_decode(text, at)
            except (ValueError, RecursionError):
                at = text.find("{", at + 1)
                continue
            hidden = self.value(found)
            if hidden != found:
                out.append(text[last:at])
                out.append(json.dumps(hidden, ensure_ascii=False))
                last = end
            at = text.find("{", end)
        out.append(text[last:])
        return "".join(out)

    def _pairs(self, text: str, pattern: re.Pattern[str]) -> str:
        out, last, at = [], 0, 0
        while (pair := pattern.search(text, at)) is not None:
            at = pair.end()
            if not self.is_secret(pair["key"]):
                continue  # the value may itself hold a pair: NAME=WANDB_API_KEY=...
            block = _YAML_BLOCK_START.match(text, pair.end()) if pair["colon"] else None
            if block is not None:
                span = _yaml_block(text, pair.start("key"), block.end())
            else:
                header = bool(pair["colon"]) or words(pair["key"])[-1:] in (
                    ("auth",),
                    ("authorization",),
                )
                span = _value_span(text, pair.end(), header)
            if span is None:
                continue
            start, end = span
            if text[start:end] in _HARMLESS:
                continue
            out.append(text[last:start])
            out.append(REDACTED)
            last = at = end
        out.append(text[last:])
        return "".join(out)

    # -- structure --

    def value(self, value: Any, depth: int = 0, *, message: bool = False) -> Any:
        """``value`` with its text redacted and every value under a secret key hidden."""
        if depth > _MAX_DEPTH:
            return REDACTED  # deeper than any record this package writes
        if isinstance(value, str):
            return self.text(value, message=message)
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            named = _named_secret_value(value, self.is_secret)
            for key, item in value.items():
                hidden = self.value(item, depth + 1, message=message)
                secret = self.is_secret(str(key)) or str(key) in named
                self._put(out, str(key), _hide(hidden) if secret else hidden)
            return out
        if isinstance(value, (list, tuple)):
            if _secret_pair(value, self.is_secret):
                return [value[0], _hide(value[1])]
            return [self.value(item, depth + 1, message=message) for item in value]
        return value

    def _put(self, out: dict[str, Any], key: str, value: Any) -> None:
        # A key may itself hold a secret; two redacted keys must not collapse into one.
        key = self.text(key)
        unique, n = key, 1
        while unique in out:
            n += 1
            unique = f"{key}#{n}"
        out[unique] = value

    def argv_token(self, token: str) -> str:
        name, eq, value = token.partition("=")
        if eq and _option_like(name):
            if self.is_secret(name) and not _NUMBER.fullmatch(value) and value not in _HARMLESS:
                return f"{name}={REDACTED}"
            return f"{self.text(name)}={self.text(value)}"
        return self.text(token)

    def entry(self, entry: Any) -> Any:
        if isinstance(entry, list):
            return [self.entry(e) for e in entry]
        if not isinstance(entry, Mapping):
            return entry
        out = dict(entry)
        if isinstance(out.get("path"), str):
            out["path"] = self.text(out["path"])
        if isinstance(out.get("error"), str):
            out["error"] = self.text(out["error"], message=True)
        if isinstance(out.get("errors"), list):
            out["errors"] = [
                self.text(e, message=True) if isinstance(e, str) else e for e in out["errors"]
            ]
        return out

    def gates(self, gates: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, gate in gates.items():
            if isinstance(gate, Mapping):
                secret = self.is_secret(name)
                hidden = self.value({k: v for k, v in gate.items() if k != "passed"})
                values = {k: _hide(v) for k, v in hidden.items()} if secret else hidden
                gate = {**({"passed": gate["passed"]} if "passed" in gate else {}), **values}
            else:
                gate = self.value(gate)
            self._put(out, name, gate)
        return out

    def outcome(self, outcome: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in outcome.items():
            if key in ("status", "exit_code"):
                out[key] = value
            elif key == "gates" and isinstance(value, Mapping):
                out[key] = self.gates(value)
            else:  # the error: a message, whose words a short secret may be
                out[key] = self.value(value, message=key == "error")
        return out

    def block(self, block: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in block.items():
            if key in ("schema", "hash_policy"):
                out[key] = value
            elif key == "argv" and isinstance(value, list):
                out[key] = [self.argv_token(str(t)) for t in value]
            elif key == "outcome" and isinstance(value, Mapping):
                out[key] = self.outcome(value)
            elif key in ("inputs", "outputs") and isinstance(value, Mapping):
                out[key] = {}
                for name, entry in value.items():
                    self._put(out[key], name, self.entry(entry))
            elif key in ("entrypoint", "shared_trainer"):
                out[key] = self.entry(value)
            elif key == "config" and isinstance(value, Mapping):
                out[key] = {
                    k: self.entry(v) if k == "files" else self.value(v) for k, v in value.items()
                }
            elif key == "code" and isinstance(value, Mapping):
                out[key] = {}
                for path, digest in value.items():
                    self._put(out[key], path, digest)
            else:
                out[key] = self.value(value)
        return out


def redact_text(
    text: str,
    *,
    known: Iterable[str] = (),
    is_secret: SecretMatcher | None = None,
    message: bool = False,
) -> str:
    """``text`` with secrets hidden by their shape, and each of ``known`` wherever it appears.

    Known values count from ``MIN_KNOWN_LENGTH`` on; in a ``message`` (an error, a warning),
    where blanking an ordinary word is the lesser harm, at any length, as words of their own.
    Shapes: the userinfo of a URL
    (``https://user:pass@host``), ``Bearer`` credentials, ``Basic`` ones that decode to
    ``user:pass``, ``NAME=value`` and ``name: value`` pairs (quoted or not, in JSON objects too)
    whose name looks like a secret, and token formats that say what they are (``hf_``, ``ghp_``,
    ``sk-``, AWS key ids, JWTs, ...), the signature of a presigned URL, and PEM private keys.
    """
    return _Redactor(is_secret or _DEFAULT_MATCHER, known).text(text, message=message)


def redact_error(err: _E, *, known: Iterable[str], is_secret: SecretMatcher) -> _E:
    """``err`` with secrets hidden from its message: it may be raised, and Python prints what is
    raised."""
    message = redact_text(str(err), known=known, is_secret=is_secret, message=True)
    return err if message == str(err) else type(err)(message)


def redact_block(
    block: Mapping[str, Any], is_secret: SecretMatcher, known: Iterable[str] = ()
) -> dict[str, Any]:
    """A ``run_provenance`` block, or part of one, with secrets hidden from every string.

    argv, args, gates and the error get the name, shape and known-value rules; paths the shape
    and known-value rules. Digests, the schema and the hash policy are left as they are.
    """
    given = _harvest(block.get("args"), is_secret)
    config = block.get("config")
    found = _harvest(config.get("resolved") if isinstance(config, Mapping) else None, is_secret)
    return _Redactor(is_secret, (*known, *given, *found)).block(block)


def redact_document(
    document: Mapping[str, Any], is_secret: SecretMatcher, known: Iterable[str] = ()
) -> dict[str, Any]:
    """A whole sidecar document with secrets hidden from its fields and its ``run_provenance``."""
    block = document.get("run_provenance")
    known = (
        *known,
        *_harvest(block.get("args") if isinstance(block, Mapping) else None, is_secret),
    )
    redactor = _Redactor(is_secret, known)
    out: dict[str, Any] = {}
    for key, value in document.items():
        if key == "schema":
            out[key] = value
        elif key == "run_provenance" and isinstance(value, Mapping):
            out[key] = redact_block(value, is_secret, known)
        else:
            hidden = redactor.value(value, 1)
            redactor._put(out, key, _hide(hidden) if is_secret(key) else hidden)
    return out
