"""Code identity: the project's own modules that the process has imported."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from provenance.hashing import sha256_file
from provenance.normalize import display_path
from provenance.paths import in_virtualenv


def imported_project_modules(root: Path | None) -> dict[str, str]:
    """Sorted mapping of every imported module file under ``root`` to its SHA-256.

    Third-party code stays out: files outside the root, and virtual environments or
    site-packages kept inside it, are not the project's.
    """
    if root is None:
        return {}
    found: dict[str, str] = {}
    for module in list(sys.modules.values()):
        filename = getattr(module, "__file__", None)
        if not isinstance(filename, str):
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
