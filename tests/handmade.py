"""Records written by hand for the command tests, small projects to hold them, and a way to run
the ``provenance`` command in-process on strict stdio."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from provenance.cli import main
from tests.conftest import ROOT, fake_path

HASH_POLICY = {
    "algorithms": ["blake3", "sha256"],
    "sha256_max_bytes": 256 * 1024**2,
    "directory_digest": "provenance.tree/v1",
}
HEX = "0" * 64


def project(folder: Path) -> Path:
    """An empty project: a folder that ``pyproject.toml`` marks as a root."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text('[project]\nname = "handmade"\n')
    return folder


def digests(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "blake3": blake3.blake3(data).hexdigest()}


def file_entry(path: Path, shown: str, **extra: Any) -> dict[str, Any]:
    """The entry a run records for an existing file."""
    return {
        "path": shown,
        "exists": True,
        "kind": "file",
        "size_bytes": path.stat().st_size,
        **digests(path),
        **extra,
    }


def document(
    entrypoint: str = "script.py",
    *,
    entrypoint_digests: dict[str, str] | None = None,
    inputs: dict[str, Any] | None = None,
    outputs: dict[str, Any] | None = None,
    argv: list[str] | None = None,
    code: dict[str, str] | None = None,
    status: str = "succeeded",
    exit_code: int | None = 0,
    error: dict[str, str] | None = None,
    gates: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A schema-valid sidecar document."""
    return {
        "schema": "provenance.manifest/v1",
        **(fields or {}),
        "run_provenance": {
            "schema": "provenance.run/v1",
            "entrypoint": {
                "path": entrypoint,
                **(entrypoint_digests or {"sha256": HEX, "blake3": HEX}),
            },
            "code": code or {},
            "argv": argv or [],
            "args": {},
            "inputs": inputs or {},
            "outputs": outputs or {},
            "hash_policy": HASH_POLICY,
            "outcome": {
                "status": status,
                "exit_code": exit_code,
                "error": error,
                "gates": gates or {},
            },
        },
    }


def running_document(entrypoint: str = "script.py", **declared: str) -> dict[str, Any]:
    """What a run under way keeps beside its sidecar: status running, entries pending."""
    pending = {name: {"path": shown, "pending": True} for name, shown in declared.items()}
    return document(entrypoint, outputs=pending, status="running", exit_code=None)


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return path


def copy_fake(name: str, into: Path) -> Path:
    """A fake script copied into a project, to run there as a user would."""
    into.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy(fake_path(name), into / f"{name}.py"))


def run_in(
    folder: Path, *argv: object, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python ARGV...`` as a subprocess started in ``folder``."""
    return subprocess.run(
        [sys.executable, *map(str, argv)],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def cli_in(
    folder: Path, *argv: object, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The ``provenance`` command as a subprocess started in ``folder``."""
    return run_in(folder, "-m", "provenance", *argv, env=env)


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


class Hung(BaseException):
    """A command ran past the hang guard (a BaseException, so no handler in the command eats it)."""


@contextmanager
def hang_guard(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise Hung(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(*argv: object, encoding: str = "utf-8", guard: float = 60) -> Result:
    """``provenance ARGV...`` in this process, its stdout and stderr strict ``encoding`` streams,
    as under ``PYTHONIOENCODING=utf-8:strict`` (or ``ascii`` for a C locale)."""
    buffers = io.BytesIO(), io.BytesIO()
    streams = [
        io.TextIOWrapper(b, encoding=encoding, errors="strict", write_through=True) for b in buffers
    ]
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = streams
    try:
        with hang_guard(guard):
            code = main([os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in argv])
    except SystemExit as done:  # argparse's usage errors
        code = done.code if isinstance(done.code, int) else 2
    finally:
        for stream in streams:
            stream.flush()
        sys.stdout, sys.stderr = saved
    out, err = (b.getvalue().decode(encoding, "surrogateescape") for b in buffers)
    for stream in streams:
        stream.detach()
    return Result(code, out, err)
