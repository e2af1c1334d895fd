"""ai/ is built on provenance's public names only: what ``provenance.__all__`` lists.

Everything else in the package may change shape from one release to the next; ai/ is the
package's first user, and what it needs from it belongs in the public API.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import provenance
import provenance.read

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = frozenset(provenance.__all__) | {"__version__", "*"}  # a star takes __all__ only
_IMPORTERS = {"import_module", "__import__"}


def private_uses(source: str, filename: str = "<source>") -> list[str]:
    """Each use in ``source`` of a provenance module or name that is not public, as
    ``line: what``."""
    tree = ast.parse(source, filename)
    found: list[str] = []
    aliases: set[str] = set()  # names the provenance package itself is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "provenance":
                    aliases.add(alias.asname or "provenance")
                elif alias.name.startswith("provenance."):
                    found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("provenance."):
                found.append(f"{node.lineno}: from {node.module} import ...")
            elif node.module == "provenance":
                found += [
                    f"{node.lineno}: from provenance import {alias.name}"
                    for alias in node.names
                    if alias.name not in PUBLIC
                ]
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0] if node.args else None
            if (
                name in _IMPORTERS
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and first.value.startswith("provenance.")
            ):
                found.append(f"{node.lineno}: {name}({first.value!r})")
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr not in PUBLIC
        ):
            found.append(f"{node.lineno}: {node.value.id}.{node.attr}")
    return sorted(found, key=lambda f: int(f.split(":")[0]))


def test_ai_uses_only_public_provenance_names() -> None:
    files = sorted((ROOT / "ai").rglob("*.py"))
    assert len(files) > 50  # the tree was found
    found = [
        f"{path.relative_to(ROOT)}:{use}"
        for path in files
        for use in private_uses(path.read_text(encoding="utf-8"), str(path))
    ]
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        "from provenance import records",
        "from provenance import recorded_run, records",
        "from provenance.records import load",
        "from provenance.reading.lineage import trace",
        "from provenance.stores import digest_cache",
        "import provenance.records",
        "import provenance.measure.hashing as hashing",
        "import provenance\nprovenance.records.load('x')",
        "import provenance as p\np.commands",
        "import importlib\nimportlib.import_module('provenance.records')",
        "__import__('provenance.stores.digest_cache')",
        "def f():\n    from provenance.record.sidecar import sidecar_path_for",
    ],
)
def test_each_way_of_reaching_a_private_name_is_caught(source: str) -> None:
    assert private_uses(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "from provenance import recorded_run, current_run, atomic_write",
        "from provenance import record_of, lineage, find_runs, verify, Checker",
        "from provenance import sidecar_path_for, MAX_LINEAGE_DEPTH",
        "from provenance import *",
        "import provenance\nprovenance.record_of('x')\nprovenance.__version__",
        "from provenancex.records import load",  # another package
        "from .records import load",  # ai's own, relative
        "import json\njson.records",
    ],
)
def test_public_names_pass(source: str) -> None:
    assert private_uses(source) == []


def test_every_public_name_resolves() -> None:
    for name in provenance.__all__:
        assert getattr(provenance, name) is not None, name


def api_page_names() -> set[str]:
    """The names docs/api.md gives as ``provenance.read``'s: each list entry's first name, and
    what its example imports."""
    page = (ROOT / "docs/api.md").read_text("utf-8")
    names = set(re.findall(r"^- `([A-Za-z_]\w*)", page, re.MULTILINE))
    for imported in re.findall(r"^from provenance import (.+)$", page, re.MULTILINE):
        names |= {n.strip() for n in imported.split(",")}
    return names


def test_every_name_the_api_page_gives_is_provenance_reads_and_provenances() -> None:
    names = api_page_names()
    assert {"record_of", "find_runs", "sidecar_path_for", "read_json"} <= names
    for name in sorted(names):
        assert name in provenance.read.__all__, name
        assert getattr(provenance.read, name) is getattr(provenance, name), name
