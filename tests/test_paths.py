"""Declarations, the project root, fingerprints."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from provenance.errors import DeclarationError
from provenance.measure.paths import Declared, find_root, fingerprint, in_virtualenv, resolve


class TestFindRoot:
    def test_nearest_marker_wins(self, tmp_path):
        (tmp_path / "pyproject.toml").write_text("")
        inner = tmp_path / "ai" / "sub"
        inner.mkdir(parents=True)
        (tmp_path / "ai" / ".git").mkdir()
        assert find_root(inner / "script.py") == tmp_path / "ai"

    def test_none_outside_any_project(self, tmp_path):
        assert find_root("/") is None


class TestInVirtualenv:
    def test_venv_and_site_packages(self, tmp_path):
        venv = tmp_path / ".venv"
        (venv / "lib").mkdir(parents=True)
        (venv / "pyvenv.cfg").write_text("")
        assert in_virtualenv(venv / "lib" / "x.py", tmp_path)
        assert in_virtualenv(tmp_path / "vendor" / "site-packages" / "y.py", tmp_path)
        assert not in_virtualenv(tmp_path / "ai" / "z.py", tmp_path)


def ns(**values):
    return argparse.Namespace(**values)


class TestResolve:
    def test_forms(self, tmp_path):
        args = ns(a=Path("rel/x.csv"), b=["p", Path("q")], c=None)
        assert resolve("input", "one", "a", args) == Declared(
            (os.path.abspath("rel/x.csv"),), many=False
        )
        many = resolve("input", "many", "b", args)
        assert many.many
        assert len(many.paths) == 2
        assert resolve("input", "unset", "c", args) is None
        computed = resolve("input", "computed", lambda a: a.a.with_suffix(".idx"), args)
        assert computed.paths == (os.path.abspath("rel/x.idx"),)
        assert resolve("input", "literal", tmp_path / "lit", args).paths == (str(tmp_path / "lit"),)

    def test_missing_dest_names_what_there_is(self):
        with pytest.raises(DeclarationError, match=r"'featrues'.*2 keys; closest: features\)"):
            resolve("input", "f", "featrues", ns(features=1, out=2))

    def test_bad_values_are_clear_errors(self):
        with pytest.raises(DeclarationError, match="must be a path"):
            resolve("output", "o", "o", ns(o=3))
        with pytest.raises(DeclarationError, match="declaration raised KeyError"):
            resolve("output", "o", lambda a: {}["k"], ns())
        with pytest.raises(DeclarationError, match="not int"):
            resolve("output", "o", 5, ns())


class TestFingerprint:
    def test_strict_sees_a_rewrite_with_the_same_size_and_mtime(self, tmp_path):
        path = tmp_path / "f"
        path.write_text("aaaa")
        st = path.stat()
        before = fingerprint(str(path))
        tmp = tmp_path / "g"
        tmp.write_text("bbbb")
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(tmp, path)  # new inode, same size and mtime
        after = fingerprint(str(path))
        assert not before.differs(after, strict=False)
        assert before.differs(after, strict=True)

    def test_directory_content(self, tmp_path):
        before = fingerprint(str(tmp_path))
        (tmp_path / "x").write_text("1")
        assert before.differs(fingerprint(str(tmp_path)), strict=False)

    def test_appearing_and_vanishing(self, tmp_path):
        path = tmp_path / "f"
        absent = fingerprint(str(path))
        path.write_text("")
        assert absent.differs(fingerprint(str(path)), strict=False)
