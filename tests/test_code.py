"""Which modules count as the project's code."""

from __future__ import annotations

import sys
import types

from provenance.measure.code import imported_project_modules
from provenance.measure.hashing import sha256_file


def fake_module(monkeypatch, name, path):
    module = types.ModuleType(name)
    module.__file__ = str(path)
    monkeypatch.setitem(sys.modules, name, module)


def test_only_the_projects_own_imported_files(tmp_path, monkeypatch):
    root = tmp_path / "proj"
    (root / "ai").mkdir(parents=True)
    (root / ".venv" / "lib").mkdir(parents=True)
    (root / ".venv" / "pyvenv.cfg").write_text("")
    own = root / "ai" / "features.py"
    own.write_text("X = 1\n")
    vendored = root / ".venv" / "lib" / "numpy_like.py"
    vendored.write_text("")
    outside = tmp_path / "elsewhere.py"
    outside.write_text("")
    fake_module(monkeypatch, "ai_features_fake", own)
    fake_module(monkeypatch, "vendored_fake", vendored)
    fake_module(monkeypatch, "outside_fake", outside)
    assert imported_project_modules(root) == {"ai/features.py": sha256_file(own)}


def test_no_root_no_code(monkeypatch):
    assert imported_project_modules(None) == {}


def test_a_module_deleted_since_import_is_left_out(tmp_path, monkeypatch):
    gone = tmp_path / "gone.py"
    fake_module(monkeypatch, "gone_fake", gone)
    assert imported_project_modules(tmp_path) == {}


class TestEnclosingPackages:
    """The entrypoint's package __init__ files count whether or not ``-m`` imported them."""

    def layout(self, root, *files):
        for name in files:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"# {name}\n")
        return root

    def test_every_package_folder_up_to_the_root(self, tmp_path):
        root = self.layout(tmp_path, "pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/mod.py")
        code = imported_project_modules(root, root / "pkg" / "sub" / "mod.py")
        assert {"pkg/__init__.py", "pkg/sub/__init__.py"} <= set(code)
        assert code["pkg/__init__.py"] == sha256_file(root / "pkg" / "__init__.py")

    def test_a_folder_without_init_is_passed_over(self, tmp_path):
        root = self.layout(tmp_path, "ns/pkg/__init__.py", "ns/pkg/mod.py", "__init__.py")
        code = imported_project_modules(root, root / "ns" / "pkg" / "mod.py")
        assert {"ns/pkg/__init__.py", "__init__.py"} <= set(code)

    def test_nothing_above_the_root_or_outside_it(self, tmp_path):
        self.layout(tmp_path, "__init__.py", "proj/pkg/mod.py", "other/__init__.py")
        root = tmp_path / "proj"
        assert imported_project_modules(root, root / "pkg" / "mod.py") == {}
        assert imported_project_modules(root, tmp_path / "other" / "x.py") == {}

    def test_without_an_entrypoint_only_what_was_imported(self, tmp_path):
        root = self.layout(tmp_path, "pkg/__init__.py", "pkg/mod.py")
        assert imported_project_modules(root) == {}
