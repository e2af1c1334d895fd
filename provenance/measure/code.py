"""Code identity: the project's own modules that the process has imported."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from provenance.measure.hashing import sha256_file
from provenance.measure.paths import in_virtualenv
from provenance.record.normalize import display_path


def imported_project_modules(
    root: Path | None, entrypoint: str | os.PathLike[str] | None = None
) -> dict[str, str]:
    """Sorted mapping of every imported module file under ``root`` to its SHA-256.

    Third-party code stays out: files outside the root, and virtual environments or
    site-packages kept inside it, are not the project's. The ``__init__.py`` of every package
    folder around ``entrypoint`` is in, imported or not (see ``enclosing_packages``).
    """
    if root is None:
        return {}
    files = [getattr(module, "__file__", None) for module in list(sys.modules.values())]
    if entrypoint is not None:
        files.extend(enclosing_packages(entrypoint, root))
    found: dict[str, str] = {}
    for filename in files:
        if not isinstance(filename, (str, Path)):
            continue
        path = Path(os.path.abspath(filename))
        if not path.is_relative_to(root) or in_virtualenv(path, root):
            continue
        shown = display_path(path, root)
        if shown in found:
            continue
        try:
            found[shown] = sha256_file(path)
        except OSError:
            continue  # a module file deleted since import has no content left to vouch for
    return dict(sorted(found.items()))


def enclosing_packages(entrypoint: str | os.PathLike[str], root: Path) -> list[Path]:
    """The ``__init__.py`` files in the entrypoint's folder and each folder above it, up to
    and including ``root``.

    ``python -m pkg.mod`` imports them and ``python pkg/mod.py`` does not; taking them either
    way keeps the record of the same code the same however the script was started.
    """
    folder = Path(os.path.abspath(entrypoint)).parent
    if not folder.is_relative_to(root):
        return []
    chain = [folder, *folder.parents[: len(folder.relative_to(root).parts)]]
    return [f / "__init__.py" for f in chain if (f / "__init__.py").is_file()]
