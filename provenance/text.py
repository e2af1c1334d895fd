"""Text for people and terminals: record values made printable on one line, counts and
sizes in words, and JSON laid out as ``json.dumps`` does, without what steers a terminal."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any

MAX_MESSAGE = 400  # characters of one line on stderr: a hostile value can be megabytes long
# What a record's text must not do to a terminal: move the cursor, start a line of its own,
# reorder what follows (bidirectional controls), or hide (format characters, Unicode category
# Cf; the other default-ignorable code points, such as U+3164 and U+FFA0; variation
# selectors): `train\u200b.py` must not read as `train.py`. Each range holds the Cf ones of
# later Unicode versions too; tests check the class against this Python's unicodedata.
_HIDDEN = (
    "\xad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5"
    "\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0"
    "\ufff0-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff"
)
# What json.dumps leaves raw (it escapes C0 itself) that could still steer a terminal.
_JSON_RAW = re.compile(f"[\x7f-\x9f{_HIDDEN}]")
_CONTROLS = re.compile(f"[\x00-\x1f\x7f-\x9f{_HIDDEN}]")
# What ``printable`` escapes: the above, and the lone surrogates a name that is not UTF-8 is
# held as, which stdout writes as ``\udcff`` anyway: escaped here, a line is as long as it prints.
ESCAPED = re.compile(f"[\x00-\x1f\x7f-\x9f{_HIDDEN}\ud800-\udfff]")


def human_size(n: int) -> str:
    """``n`` bytes as a person reads it: ``0 B``, ``812 B``, ``1.5 KiB``, ``1 TiB``."""
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        value /= 1024
        if value < 1024 or unit == "PiB":
            break
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def plural(count: int, word: str, words: str | None = None) -> str:
    """``1 record``, ``2 records``, ``0 records``; ``words`` where adding "s" is wrong."""
    return f"{count:,} {word if count == 1 else (words or word + 's')}"


def short(digest: object, width: int = 12) -> str:
    return f"{digest[:width]}…" if isinstance(digest, str) and len(digest) > width else str(digest)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """``text`` with what could steer a terminal written as escapes: one line stays one line."""
    return ESCAPED.sub(_escaped, text)


def shell_quote(word: str) -> str:
    """``word`` as a POSIX shell reads it back, shown on one line: ANSI-C quoting (``$'a\\nb'``,
    which bash, zsh and ksh read) for a word holding what ``printable`` would escape, so the
    escape is what the shell gives the program, and plain quoting for every other word."""
    if not _CONTROLS.search(word):
        return shlex.quote(word)
    out = []
    for char in word:
        if char in "\\'":
            out.append("\\" + char)
        elif _CONTROLS.match(char):
            code = ord(char)
            out.append(
                f"\\x{code:02x}"
                if code < 0x80
                else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
            )
        else:
            out.append(char)
    return "$'" + "".join(out) + "'"


def shell_join(words: Iterable[str]) -> str:
    return " ".join(shell_quote(word) for word in words)


class Escaped(str):
    """A line already made printable piece by piece (around a painted verdict): kept as is."""

    __slots__ = ()


def lines_text(lines: Iterable[str]) -> str:
    """Rendered lines as printed text, each kept to one line whatever a record put in it."""
    return "\n".join(line if isinstance(line, Escaped) else printable(line) for line in lines)


def one_line(message: str, limit: int = MAX_MESSAGE) -> str:
    """``message`` as one printable line of at most ``limit`` characters."""
    text = printable(message)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def indented_json(value: Any, *, ensure_ascii: bool) -> str:
    """``json.dumps(value, indent=2, sort_keys=True, ensure_ascii=...)``, byte for byte, faster.

    With an indent, ``json`` encodes in Python, not C: most of what printing a hundred thousand
    runs cost. Here the plain values of a dict (string keys) or a list, one after another, are
    encoded by ``json``'s C encoder in one call, with the separator of their level; a dict or
    list among them is laid out the same way, a level deeper; any other value (a tuple, a dict
    with other keys) is left to ``json.dumps`` itself, its lines indented to where it sits:
    what the indented encoder does with a value nested in another."""
    string = encode_basestring_ascii if ensure_ascii else encode_basestring
    flat: dict[str, Callable[[Any], str]] = {}  # a C encoder of plain values, by indent

    def plain(values: Any, inner: str) -> str:
        """Plain values (a dict or list of them) as the items of a container, separated."""
        if inner not in flat:
            flat[inner] = _plain_encoder(ensure_ascii, ",\n" + inner)
        return flat[inner](values)[1:-1]

    def scalar(value: Any) -> str | None:
        """A plain value (or an empty container) as JSON; None for any other. It calls nothing
        that nests: a deep value costs one frame of ``encode`` a level, as ``json``'s own."""
        kind = type(value)
        if kind is str:
            return string(value)
        if value is None:
            return "null"
        if kind is bool:
            return "true" if value else "false"
        if kind is int:
            return int.__repr__(value)
        if kind is float:
            if value != value:
                return "NaN"
            if value in (_INFINITY, -_INFINITY):
                return "Infinity" if value > 0 else "-Infinity"
            return float.__repr__(value)
        if not value and kind in _EMPTY:
            return "{}" if kind is dict else "[]"
        return None

    def encode(value: Any, indent: str) -> str:
        kind = type(value)
        if kind is str:
            return string(value)
        if kind in _PLAIN:
            return plain([value], indent)
        inner = indent + "  "
        pieces: list[str] = []
        if kind is dict and set(map(type, value)) <= _STR:
            if not value:
                return "{}"
            if len(value) <= _SMALL:  # a few keys: each written here, no C call a run of them
                for key in sorted(value):
                    item = value[key]
                    text = scalar(item)
                    pieces.append(
                        string(key) + ": " + (encode(item, inner) if text is None else text)
                    )
                return "{\n" + inner + (",\n" + inner).join(pieces) + "\n" + indent + "}"
            run: dict[str, Any] = {}
            for key in sorted(value):
                item = value[key]
                if type(item) in _PLAIN or (not item and type(item) in _EMPTY):
                    run[key] = item
                    continue
                if run:
                    pieces.append(plain(run, inner))
                    run = {}
                pieces.append(string(key) + ": " + encode(item, inner))
            if run:
                pieces.append(plain(run, inner))
            return "{\n" + inner + (",\n" + inner).join(pieces) + "\n" + indent + "}"
        if kind is list:
            if not value:
                return "[]"
            items: list[Any] = []
            for item in value:
                if type(item) in _PLAIN or (not item and type(item) in _EMPTY):
                    items.append(item)
                    continue
                if items:
                    pieces.append(plain(items, inner))
                    items = []
                pieces.append(encode(item, inner))
            if items:
                pieces.append(plain(items, inner))
            return "[\n" + inner + (",\n" + inner).join(pieces) + "\n" + indent + "]"
        text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=ensure_ascii)
        return text.replace("\n", "\n" + indent) if indent else text

    return encode(value, "")


def _plain_encoder(ensure_ascii: bool, between: str) -> Callable[[Any], str]:
    """``json.JSONEncoder(...).encode`` with sorted keys and ``between`` items, made once: the
    encoder's own ``encode`` makes its C encoder again at every call."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator in this Python
        return json.JSONEncoder(
            ensure_ascii=ensure_ascii, sort_keys=True, separators=(between, ": ")
        ).encode
    strings = encode_basestring_ascii if ensure_ascii else encode_basestring

    def refuse(value: Any) -> Any:
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    chunks = make(None, refuse, strings, None, ": ", between, True, False, True)
    return lambda value: "".join(chunks(value, 0))


# Values the C encoder writes as the indented one does, wherever they sit (a float as
# ``float.__repr__``, NaN and the infinities as ``NaN`` and ``Infinity``, in both).
_PLAIN = frozenset({str, int, float, bool, type(None)})
_EMPTY = frozenset({dict, list})  # empty, ``{}`` and ``[]`` in both
_STR = frozenset({str})
_SMALL = 12  # keys of a dict written one by one; a larger one's plain values, by C runs
_INFINITY = float("inf")


def json_for_terminal(text: str) -> str:
    """JSON text with each character that could steer a terminal as its JSON escape, not raw:
    the same value to a JSON reader."""
    if text.isascii() and "\x7f" not in text:
        return text  # most of it: nothing to look for, and one pass of C instead of the regex
    return _JSON_RAW.sub(_json_escaped, text)


def _json_escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # JSON has no escape beyond U+FFFF: a surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
