"""Declared input/output paths: resolving declarations, the project root, stat fingerprints."""

from __future__ import annotations

import argparse
import glob
import os
import stat
import string
from collections.abc import Callable, Mapping
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
    ``Glob("{out_dir}/*.onnx")``. ``**`` matches folders recursively.
    """

    pattern: str

    def dests(self) -> list[str]:
        return [f for _, f, _, _ in string.Formatter().parse(self.pattern) if f]

    def expand(self, namespace: argparse.Namespace | None) -> Declared | None:
        """The matching paths, sorted; None when a ``{dest}`` it needs was not given."""
        values: dict[str, str] = {}
        for dest in self.dests():
            value = getattr(namespace, dest, None) if namespace is not None else None
            if value is None:
                return None
            values[dest] = glob.escape(os.fspath(value))
        pattern = self.pattern.format_map(values) if values else self.pattern
        matches = sorted(os.path.abspath(m) for m in glob.glob(pattern, recursive=True))
        return Declared(tuple(matches), many=True)


# A declaration names an argparse dest (str), computes paths from the parsed args (callable),
# gives a literal path (os.PathLike) for scripts without argparse, or a Glob matched at exit.
Declaration = Union[str, "os.PathLike[str]", Glob, Callable[[argparse.Namespace], Any]]
Declarations = Mapping[str, Declaration]

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


def resolve(
    kind: str, name: str, declaration: Declaration, namespace: argparse.Namespace | None
) -> Declared | None:
    """Resolve one declaration to absolute paths; None where the value was not given."""
    if isinstance(declaration, Glob):
        return declaration.expand(namespace)
    if isinstance(declaration, os.PathLike):
        value: Any = declaration
    elif isinstance(declaration, str):
        if namespace is None or not hasattr(namespace, declaration):
            have = ", ".join(sorted(vars(namespace))) if namespace is not None else "nothing parsed"
            raise DeclarationError(
                f"{kind} {name!r} names the argparse dest {declaration!r}, which the parsed "
                f"arguments do not have (they have: {have})"
            )
        value = getattr(namespace, declaration)
    elif callable(declaration):
        try:
            value = declaration(namespace)  # type: ignore[arg-type]
        except Exception as err:
            message = f"{kind} {name!r}: its declaration raised {type(err).__name__}: {err}"
            raise DeclarationError(message) from err
    else:
        raise DeclarationError(
            f"{kind} {name!r}: a declaration is a dest name, a callable of the parsed arguments, "
            f"a path or a Glob, not {type(declaration).__name__}"
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
            raise DeclarationError(
                f"{kind} {name!r} must be a path, a list of paths or None, got {item!r}"
            )
        paths.append(os.path.abspath(os.fspath(item)))
    return Declared(tuple(paths), many)
