"""Which modules count as the project's code."""

from __future__ import annotations

import sys
import types

from provenance.code import imported_project_modules
from provenance.hashing import sha256_file


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
