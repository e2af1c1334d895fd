"""The Makefile as a user meets it: what it says before the long, quiet install of .venv."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")

SAYS_WHY = "the first time takes a few minutes"


def planned(target: str, venv: Path) -> str:
    """What ``make TARGET`` would run and print with .venv at ``venv`` (``make -n``: nothing
    is run, echoed lines included)."""
    done = subprocess.run(
        ["make", "-n", f"VENV={venv}", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_a_cold_venv_says_what_the_wait_is_for(tmp_path):
    plan = planned("demo", tmp_path / "venv")
    assert SAYS_WHY in plan
    assert plan.index(SAYS_WHY) < plan.index("pip install")


def test_a_warm_venv_says_nothing_of_it(tmp_path):
    venv = tmp_path / "venv"
    venv.mkdir()
    stamp = venv / ".installed"
    stamp.touch()
    newest = max((ROOT / p).stat().st_mtime for p in ("pyproject.toml", "pipeline/pyproject.toml"))
    os.utime(stamp, (newest + 60, newest + 60))
    plan = planned("demo", venv)
    assert SAYS_WHY not in plan
    assert "pip install" not in plan
    assert "ai.demo" in plan
