"""Declared input/output paths: resolving declarations, the project root, stat fingerprints."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import glob
import os
import stat
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import blake3

from provenance.errors import DeclarationError
from provenance.measure.hashing import TreeEntry, walk_tree


@dataclass(frozen=True)
class Glob:
    """Paths matched when the run ends, for outputs whose names the script does not choose
    (``model.onnx.data`` beside ``model.onnx``). ``{dest}`` fields are filled from the parsed
    arguments, with glob characters in their values taken literally: ``Glob("{out}.data")``,
    ``Glob("{out_dir}/*.onnx")``. A field may be a dotted key of any framework's namespace
    (``{fit.trainer.default_root_dir}``). ``**`` matches folders recursively.
    """

    pattern: str

    def dests(self) -> list[str]:
        """The keys its fields name; a pattern that cannot be filled is a ``DeclarationError``."""
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(self.pattern) if f is not None]
        except ValueError as err:
            raise DeclarationError(f"Glob({self.pattern!r}) is not a pattern: {err}") from None
        if "" in fields or any(f.isdigit() for f in fields):
            raise DeclarationError(
                f"Glob({self.pattern!r}) has a field without a name: each {{}} names a key"
            )
        return fields

    def expand(self, namespace: Any) -> Declared | None:
        """The matching paths, sorted; None when a ``{dest}`` it needs was not given."""
        formatter = string.Formatter()
        parts: list[str] = []
        self.dests()  # a broken pattern is said as such, not as a KeyError
        for literal, dest, spec, conversion in formatter.parse(self.pattern):
            parts.append(literal)
            if dest is None:
                continue
            found, value = lookup(namespace, dest)
            if not found or value is None:
                return None
            try:
                if conversion:
                    value = formatter.convert_field(value, conversion)
                text = format(value, spec) if spec else _text(value)
            except (TypeError, ValueError) as err:
                raise DeclarationError(
                    f"Glob({self.pattern!r}) cannot fill {{{dest}}} with {value!r}: {err}"
                ) from None
            parts.append(glob.escape(text))
        pattern = "".join(parts)
        matches = sorted(os.path.abspath(m) for m in glob.glob(pattern, recursive=True))
        return Declared(tuple(matches), many=True)


def _text(value: Any) -> str:
    return os.fspath(value) if isinstance(value, (str, os.PathLike)) else str(value)


_ABSENT = object()


def lookup(namespace: Any, name: str) -> tuple[bool, Any]:
    """Whether ``namespace`` has the key ``name``, and its value. A dotted name reaches into
    nested namespaces of every framework: argparse and jsonargparse namespaces, mappings
    (Hydra's DictConfig, click's params), dataclasses (HfArgumentParser's); a key that itself
    holds a dot (an argparse dest ``"data.path"``) is found too."""
    value = _step(namespace, name)
    if value is not _ABSENT:
        return True, value
    head, dot, rest = name.partition(".")
    while dot:
        inner = _step(namespace, head)
        if inner is not _ABSENT:
            found, value = lookup(inner, rest)
            if found:
                return True, value
        more, dot, rest = rest.partition(".")
        head = f"{head}.{more}"
    return False, None


def _step(holder: Any, key: str) -> Any:
    """The value of one key of ``holder``, or ``_ABSENT``; never an attribute of a plain value
    (``"out.upper"`` is no key of a string)."""
    try:
        if isinstance(holder, Mapping):
            return holder.get(key, _ABSENT)
        if isinstance(holder, argparse.Namespace):
            return vars(holder).get(key, _ABSENT)
        if dataclasses.is_dataclass(holder) and not isinstance(holder, type):
            names = {f.name for f in dataclasses.fields(holder)}
            return getattr(holder, key) if key in names else _ABSENT
    except Exception:  # noqa: BLE001 -- a missing value (OmegaConf's ???) is no value
        return _ABSENT
    return _ABSENT


def keys_of(namespace: Any, prefix: str = "") -> list[str]:
    """Every key ``lookup`` finds in ``namespace``, nested ones by their dotted path."""
    if isinstance(namespace, Mapping):
        items = [(str(k), v) for k, v in namespace.items()]
    elif isinstance(namespace, argparse.Namespace):
        items = [(str(k), v) for k, v in vars(namespace).items()]
    elif dataclasses.is_dataclass(namespace) and not isinstance(namespace, type):
        items = [(f.name, getattr(namespace, f.name, None)) for f in dataclasses.fields(namespace)]
    else:
        return []
    keys: list[str] = []
    for key, value in items:
        keys.append(prefix + key)
        keys.extend(keys_of(value, f"{prefix}{key}."))
    return keys


def closest(name: str, keys: list[str]) -> str:
    """A short, one-line account of ``keys`` for an error about ``name``: the few closest to it
    (``difflib``), never the whole list."""
    if not keys:
        return "no keys"
    unique = sorted(set(keys))
    near = difflib.get_close_matches(name, unique, n=3, cutoff=0.6)
    tail = name.rpartition(".")[2]
    near += [k for k in unique if k.rpartition(".")[2] == tail and k not in near][: 3 - len(near)]
    count = f"{len(unique)} key{'s' if len(unique) != 1 else ''}"
    if near:
        return f"{count}; closest: {', '.join(near)}"
    shown = ", ".join(unique[:5])
    return f"{count}, none close; first: {shown}" + (", ..." if len(unique) > 5 else "")


# A declaration names an argparse dest (str), computes paths from the parsed args (callable),
# gives literal paths (os.PathLike, or a list of paths) for scripts without argparse, or a Glob
# matched at exit.
Declaration = Union[
    str,
    "os.PathLike[str]",
    Glob,
    Callable[[argparse.Namespace], Any],
    Sequence[Union[str, "os.PathLike[str]"]],
]
Declarations = Mapping[str, Declaration]


def is_literal(declaration: Any) -> bool:
    """Whether a declaration gives its paths itself: a path, or a list or tuple of paths."""
    return isinstance(declaration, (os.PathLike, list, tuple))


def names_in(declaration: Any) -> list[str]:
    """The keys of the parsed arguments a declaration names: its dest, or a Glob's fields."""
    if isinstance(declaration, str):
        return [declaration]
    if isinstance(declaration, Glob):
        return declaration.dests()
    return []


def check_declaration(kind: str, name: Any, declaration: Any) -> None:
    """Check what can be checked of a declaration before anything runs; a mistake is a
    one-line ``DeclarationError``."""
    if not isinstance(name, str) or not name:
        raise DeclarationError(f"{kind} names must be non-empty strings, not {name!r}")
    if isinstance(declaration, str):
        if not declaration:
            raise DeclarationError(f"{kind} {name!r} names an empty dest")
        return
    if isinstance(declaration, Glob):
        if not isinstance(declaration.pattern, str) or not declaration.pattern:
            raise DeclarationError(f"{kind} {name!r}: a Glob takes a non-empty pattern string")
        declaration.dests()
        return
    if is_literal(declaration):
        as_declared(kind, name, declaration)  # each item a non-empty path
        return
    if callable(declaration):
        return
    raise DeclarationError(
        f"{kind} {name!r}: a declaration is a dest name, a callable of the parsed arguments, "
        f"a path, a list of paths or a Glob, not {type(declaration).__name__}"
    )


def check_declarations(kind: str, declarations: Any) -> dict[str, Declaration]:
    """``inputs``/``outputs`` as given to ``recorded_run``, checked: a mapping of names to
    declarations."""
    if declarations is None:
        return {}
    if not isinstance(declarations, Mapping):
        raise DeclarationError(
            f"{kind}s must map names to declarations ({{'model': 'out'}}), "
            f"not a {type(declarations).__name__}"
        )
    for name, declaration in declarations.items():
        check_declaration(kind, name, declaration)
    return dict(declarations)


ROOT_MARKERS = (".git", "pyproject.toml")


def find_root(
    start: str | os.PathLike[str], known: dict[str, Path | None] | None = None
) -> Path | None:
    """The nearest ancestor of ``start`` holding ``.git`` or ``pyproject.toml``, if any.

    ``known``: the folders already looked up by one command, each with its root, so that the
    many records of a tree look at each of their folders once."""
    here = os.path.abspath(start)
    if known is not None and here in known:
        return known[here]
    if not os.path.isdir(here):
        here = os.path.dirname(here)
    passed = []
    found = None
    folder = here
    while True:
        if known is not None and folder in known:
            found = known[folder]
            break
        passed.append(folder)
        if any(os.path.exists(os.path.join(folder, marker)) for marker in ROOT_MARKERS):
            found = Path(folder)
            break
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    if known is not None:
        known.update(dict.fromkeys(passed, found))
    return found


def in_virtualenv(path: Path, root: Path) -> bool:
    """True when ``path`` lies in a virtual environment or site-packages kept under ``root``."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return False
    if "site-packages" in parts or "dist-packages" in parts:
        return True
    folder = root
    for part in parts[:-1]:
        folder = folder / part
        if (folder / "pyvenv.cfg").exists():
            return True
    return False


@dataclass(frozen=True)
class Fingerprint:
    """What a stat says of a path, to tell later whether it changed."""

    exists: bool
    identity: tuple[Any, ...] = ()
    content: tuple[Any, ...] = ()

    def differs(self, other: Fingerprint, *, strict: bool) -> bool:
        """``strict`` compares inode and ctime too (did anyone write it?), else size and mtime."""
        if self.exists != other.exists:
            return True
        if strict:
            return (self.identity, self.content) != (other.identity, other.content)
        return self.content != other.content


def fingerprint(path: str) -> Fingerprint:
    """Stat ``path`` (a directory: every entry below it) without reading any file."""
    try:
        st = os.stat(path)
    except OSError:
        return Fingerprint(False)
    if not stat.S_ISDIR(st.st_mode):
        return Fingerprint(
            True, (st.st_dev, st.st_ino, st.st_ctime_ns), (st.st_size, st.st_mtime_ns)
        )
    stats = TreeStats()
    for entry in walk_tree(path):  # already in path order, and streamed
        stats.add(entry)
    return stats.fingerprint()


def changed_since(path: str, moment_ns: int) -> bool:
    """Whether ``path`` (a directory: it or anything below it) changed at or after ``moment_ns``
    by the filesystem's clock: its ctime moves on every write, rename or chmod."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if st.st_ctime_ns >= moment_ns:
        return True
    if not stat.S_ISDIR(st.st_mode):
        return False
    return any(e.stat is not None and e.stat.st_ctime_ns >= moment_ns for e in walk_tree(path))


def names_beside(path: str) -> frozenset[str]:
    """Names in ``path``'s folder that start with its name (``model.onnx.data`` for
    ``model.onnx``), itself excluded: where a library puts side files it writes."""
    folder, name = os.path.split(path)
    try:
        with os.scandir(folder or ".") as entries:
            return frozenset(e.name for e in entries if e.name.startswith(name) and e.name != name)
    except OSError:
        return frozenset()


class TreeStats:
    """A directory's fingerprint, fed one walk entry at a time: by ``fingerprint``'s own walk,
    or by the walk that hashes the directory, so that the tree is walked once, not twice."""

    def __init__(self) -> None:
        self._identity, self._content = blake3.blake3(), blake3.blake3()
        self.entries = 0

    def add(self, entry: TreeEntry) -> None:
        s = entry.stat
        fields = (s.st_size, s.st_mtime_ns) if s is not None else (None, None)
        self._content.update(repr((entry.relpath, entry.kind, *fields)).encode())
        if s is not None:
            self._identity.update(repr((entry.relpath, s.st_ino, s.st_ctime_ns)).encode())
        self.entries += 1

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(True, (self._identity.hexdigest(),), (self._content.hexdigest(),))


@dataclass(frozen=True)
class Declared:
    """The resolved paths of one declared name: ``many`` when the declaration gave a list."""

    paths: tuple[str, ...]
    many: bool


class Resolved(argparse.Namespace):
    """What declarations read once a framework resolved the run's configuration.

    Attributes and items both work, nested mappings are namespaces too, and a dotted name
    reaches into them: ``"data.train_path"`` is ``cfg.data.train_path``.
    """

    def __init__(self, values: Mapping[str, Any]) -> None:
        super().__init__(**{str(k): _viewed(v) for k, v in values.items()})

    def __getattr__(self, name: str) -> Any:
        # Only reached when no attribute has this name: try it as a dotted path.
        head, dot, rest = name.partition(".")
        if not dot or name.startswith("__") or head not in vars(self):
            raise AttributeError(name)
        value = vars(self)[head]
        if not isinstance(value, Resolved):
            raise AttributeError(name)
        return getattr(value, rest)

    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self, name)
        except AttributeError as err:
            raise KeyError(name) from err


def _viewed(value: Any) -> Any:
    return Resolved(value) if isinstance(value, Mapping) else value


def resolve(kind: str, name: str, declaration: Declaration, namespace: Any) -> Declared | None:
    """Resolve one declaration to absolute paths; None where the value was not given."""
    if isinstance(declaration, Glob):
        return declaration.expand(namespace)
    if is_literal(declaration):
        value: Any = declaration
    elif isinstance(declaration, str):
        found, value = lookup(namespace, declaration)
        if not found:
            have = closest(declaration, keys_of(namespace)) if namespace is not None else None
            raise DeclarationError(
                f"{kind} {name!r} names the key {declaration!r}, which the parsed arguments do "
                f"not have ({have or 'nothing parsed'})"
            )
    elif callable(declaration):
        try:
            value = declaration(namespace)
        except Exception as err:
            message = f"{kind} {name!r}: its declaration raised {type(err).__name__}: {err}"
            raise DeclarationError(" ".join(message.split())) from err
    else:
        raise DeclarationError(
            f"{kind} {name!r}: a declaration is a dest name, a callable of the parsed arguments, "
            f"a path, a list of paths or a Glob, not {type(declaration).__name__}"
        )
    return as_declared(kind, name, value)


def as_declared(kind: str, name: str, value: Any) -> Declared | None:
    """Check and absolutize a declared value: one path, a list of paths, or None."""
    if value is None:
        return None
    many = isinstance(value, (list, tuple))
    items = list(value) if many else [value]
    paths = []
    for item in items:
        if not isinstance(item, (str, os.PathLike)) or not os.fspath(item):
            shown = repr(item)  # a whole config section would make a page of a line
            shown = shown if len(shown) <= 80 else f"{shown[:77]}..."
            raise DeclarationError(
                f"{kind} {name!r} must be a path, a list of paths or None, got {shown}"
            )
        paths.append(os.path.abspath(os.fspath(item)))
    return Declared(tuple(paths), many)
