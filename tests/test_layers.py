"""The layers of provenance point one way: the commands (argparse, printing, exit codes) on top,
the readers, the emitters and the text helpers below them; nothing below imports a command."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "provenance"
COMMANDS = "provenance.commands"
_IMPORTERS = {"import_module", "__import__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(module: str | None, level: int, importer: str, is_package: bool) -> str:
    """What a relative ``from`` import names, absolutely."""
    if not level:
        return module or ""
    base = importer.split(".")
    base = base[: len(base) - level + (1 if is_package else 0)]
    return ".".join([*base, *([module] if module else [])])


def _is_commands(name: str) -> bool:
    return name == COMMANDS or name.startswith(COMMANDS + ".")


def command_imports(
    source: str, importer: str = "provenance.x", *, is_package: bool = False
) -> list[str]:
    """Each import in ``source`` (the module ``importer``) of the commands, as ``line: what``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if _is_commands(a.name)]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node.module, node.level, importer, is_package)
            if _is_commands(module) or any(
                _is_commands(f"{module}.{alias.name}") for alias in node.names
            ):
                found.append(f"{node.lineno}: from {module} import ...")
        elif (
            isinstance(node, ast.Call)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr in _IMPORTERS)
                or (isinstance(node.func, ast.Name) and node.func.id in _IMPORTERS)
            )
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and _is_commands(node.args[0].value)
        ):
            found.append(f"{node.lineno}: imports {node.args[0].value}")
        elif (
            isinstance(node, ast.Attribute)
            and node.attr == "commands"
            and isinstance(node.value, ast.Name)
            and node.value.id == "provenance"
        ):
            found.append(f"{node.lineno}: provenance.commands")
    return found


def below_the_commands() -> list[Path]:
    """Every module of the package but the commands and the command line that runs them."""
    return [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if not path.is_relative_to(PACKAGE / "commands")
        and path not in (PACKAGE / "cli.py", PACKAGE / "__main__.py")
    ]


def test_nothing_below_the_commands_imports_them() -> None:
    modules = below_the_commands()
    assert len(modules) > 50  # the tree was found
    assert PACKAGE / "read.py" in modules
    found = [
        f"{path.relative_to(ROOT)}:{use}"
        for path in modules
        for use in command_imports(
            path.read_text(encoding="utf-8"),
            module_name(path),
            is_package=path.name == "__init__.py",
        )
    ]
    assert found == []


@pytest.mark.parametrize(
    "source",
    [
        "from provenance.commands import plural",
        "from provenance.commands.lineage import trace",
        "from provenance import commands",
        "from provenance.commands import lineage as walk",
        "import provenance.commands",
        "import provenance.commands.verify as verify",
        "def f():\n    from provenance.commands.export import slsa_statement",
        "from .commands import warn",
        "from .commands.run import _PYTHON",
        "from . import commands",
        "import importlib\nimportlib.import_module('provenance.commands.show')",
        "__import__('provenance.commands')",
        "import provenance\nprovenance.commands.warn('x')",
    ],
)
def test_each_way_of_importing_a_command_is_caught(source: str) -> None:
    assert command_imports(source, "provenance.read") != []


@pytest.mark.parametrize(
    "source",
    [
        "from provenance.text import plural",
        "from provenance.reading.lineage import trace",
        "from provenance import read, records",
        "import provenance.commandsx",  # another name
        "from .text import printable",
        "from ..records import load",  # from provenance.emit.x: provenance.records
        "from . import slsa",
        "import importlib\nimportlib.import_module('provenance.read')",
    ],
)
def test_imports_below_the_commands_pass(source: str) -> None:
    assert command_imports(source, "provenance.emit.x") == []
