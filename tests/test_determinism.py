"""Same command, same code, same inputs: the same sidecar bytes, however the run was started.

One fake script, whose arguments hold sets inside objects and open files, is run under each hash
seed, several locales, from the checkout and from elsewhere, as a path and as a module.
"""

from __future__ import annotations

import difflib
import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAKES, ROOT, sidecar_bytes, sidecar_of
from tests.fakes import structured_args

TABLE = FAKES / "structured_args.csv"
SEEDS = ("0", "1", "random")
LOCALES = ("C", "C.UTF-8", "POSIX")  # C and POSIX put Python in UTF-8 mode, C.UTF-8 does not


def _locales() -> list[str]:
    """The locales of LOCALES this machine has (``locale -a`` spells C.UTF-8 as C.utf8)."""
    listed = ""
    if shutil.which("locale"):
        listed = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout
    have = {_spelling(name) for name in listed.split()} | {"c", "posix"}
    return [name for name in LOCALES if _spelling(name) in have]


def _spelling(locale: str) -> str:
    return locale.lower().replace("-", "")


def _run(
    how: str, cwd: Path, seed: str, locale: str, out: Path
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONUTF8", "PYTHONIOENCODING"}}
    env.update(PYTHONPATH=str(ROOT), PYTHONHASHSEED=seed, LC_ALL=locale)
    start = (
        [str(FAKES / "structured_args.py")]
        if how == "path"
        else ["-m", "tests.fakes.structured_args"]
    )
    argv = ["--table", str(TABLE), "--out", str(out)]
    return subprocess.run(
        [sys.executable, *start, *argv],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_sidecar_bytes_do_not_depend_on_how_the_run_was_started(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out" / "report.tsv"
    locales = _locales()
    assert len(locales) >= 2
    seen: dict[str, bytes] = {}
    # Every start (path or module) from every folder, under each seed; the locales take turns,
    # shifted by one for each start so that every seed meets more than one locale.
    starts = itertools.product(("path", "module"), (ROOT, elsewhere))
    for (shift, (how, cwd)), (turn, seed) in itertools.product(enumerate(starts), enumerate(SEEDS)):
        locale = locales[(shift + turn) % len(locales)]
        shutil.rmtree(out.parent, ignore_errors=True)
        proc = _run(how, cwd, seed, locale, out)
        assert proc.returncode == 0, proc.stderr
        where = "checkout" if cwd == ROOT else "elsewhere"
        seen[f"{how} from {where}, PYTHONHASHSEED={seed}, LC_ALL={locale}"] = sidecar_bytes(
            sidecar_of(out)
        )

    (first, expected), *others = seen.items()
    for way, got in others:
        if got != expected:
            diff = difflib.unified_diff(
                expected.decode().splitlines(), got.decode().splitlines(), first, way, lineterm=""
            )
            pytest.fail(f"{way} differs from {first}:\n" + "\n".join(diff))


def test_in_process_the_arguments_are_recorded_field_by_field(provenance_run, tmp_path):
    result = provenance_run(
        structured_args.main, ["--table", TABLE, "--log", "log.txt", "--out", "rows.tsv"]
    )
    args = result.block["args"]
    assert "$repr" not in json.dumps(args)
    assert args["cfg"] == {
        "$type": "tests.fakes.structured_args.Cfg",
        "$fields": {
            "name": "base",
            "tags": ["alpha", "beta", "delta", "epsilon", "gamma", "zeta"],
        },
    }
    assert args["window"]["$fields"]["skip"] == ["b", "d", "f", "h", "j", "l"]
    assert args["stages"]["$type"] == "argparse.Namespace"
    assert args["extras"]["$type"] == "types.SimpleNamespace"
    assert args["table"] == {
        "$type": "_io.TextIOWrapper",
        "$file": {"mode": "r", "name": "tests/fakes/structured_args.csv"},
    }
    assert args["log"]["$file"] == {"mode": "w", "name": (tmp_path / "log.txt").as_posix()}
    assert result.block["inputs"]["table"]["path"] == "tests/fakes/structured_args.csv"
