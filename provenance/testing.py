"""Test helpers: run a recorded script as its command line would, and look at its record.

As a pytest plugin (registered when provenance is installed) it gives the ``provenance_run``
fixture::

    def test_my_trainer_records_its_table(provenance_run, tmp_path):
        (tmp_path / "t.csv").write_text("adm2,mos\\n0.9,4.1\\n")
        result = provenance_run(train.main, ["--table", "t.csv", "--out", "m.json"])
        assert result.exit_code == 0
        assert result.block["inputs"]["table"]["path"].endswith("t.csv")

What it runs is a ``main`` (called with ``argv`` when it takes an argument, else with no
argument and ``sys.argv`` set, as its script would), a script file (run as ``__main__``, as
``python script.py`` does) or a module name (as ``python -m`` does). The fixture runs it in the
test's temporary folder, so relative paths in ``argv`` land there. ``run_recorded`` does the
same anywhere, without pytest.

``provenance_run.command([...], outputs={...})`` (``run_recorded_command`` without pytest) runs
a command under ``provenance run`` instead, as a real subprocess, and hands back the same
result, with what the command printed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import json
import os
import runpy
import subprocess
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Union

from provenance.record.outcome import code_of, exit_code_of, exit_code_of_return
from provenance.record.sidecar import RECORD_LOG
from provenance.record.write import sidecar_watcher

# A ``main`` callable, a script file, or a module (its name, as ``python -m`` takes it).
Target = Union[Callable[..., Any], str, "os.PathLike[str]", ModuleType]


@dataclass
class RecordedResult:
    """What one run of a recorded script did: its exit code and the record(s) it wrote."""

    exit_code: int
    sidecar_path: Path | None
    sidecar: dict[str, Any] | None
    exception: BaseException | None = None  # what the script raised, other than SystemExit
    written: list[Path] = field(default_factory=list)  # every record written, in order
    # What a command printed; None for a script run in-process (pytest's capsys has that).
    stdout: str | None = None
    stderr: str | None = None

    @property
    def block(self) -> dict[str, Any]:
        """The record's ``run_provenance`` block; fails the test if no record was written,
        with the exception the script raised, or what the command said on stderr."""
        if self.sidecar is None:
            message = "the run wrote no sidecar"
            if self.exception is not None:
                told = "".join(traceback.format_exception(self.exception)).rstrip()
                message = f"{message}; the script raised:\n{told}"
            elif self.stderr is not None:
                said = self.stderr.rstrip() or "(nothing)"
                message = f"{message}; the command exited {self.exit_code}, its stderr:\n{said}"
            raise AssertionError(message)
        block: dict[str, Any] = self.sidecar["run_provenance"]
        return block


@contextlib.contextmanager
def _inside(folder: str | os.PathLike[str] | None) -> Iterator[None]:
    if folder is None:
        yield
        return
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    before = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = before


def _takes_argv(main: Callable[..., Any]) -> bool:
    """Whether ``main`` can be called with the argument list (``main(argv)``)."""
    try:
        inspect.signature(main).bind([])
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): call it as its script would
        return False
    return True


def _runner(target: Target) -> tuple[str, Callable[[list[str]], Any]]:
    """What ``sys.argv[0]`` is for ``target``, and how to run it on an argument list."""
    if isinstance(target, ModuleType):
        return _module(target.__name__)
    if isinstance(target, (str, os.PathLike)):
        given = os.fspath(target)
        if os.path.isfile(given):
            path = os.path.abspath(given)
            return path, lambda _argv: runpy.run_path(path, run_name="__main__")
        return _module(given)
    if not callable(target):
        raise TypeError(f"cannot run {target!r}: give a main, a script file or a module")
    main = target
    try:
        script = inspect.getfile(inspect.unwrap(main))
    except TypeError:
        script = sys.argv[0]
    if _takes_argv(main):
        return script, lambda argv: main(argv)
    return script, lambda _argv: main()


@contextlib.contextmanager
def _runnable_finders(name: str) -> Iterator[None]:
    """While module ``name`` runs as ``__main__``, pass over import finders whose loaders cannot
    give runpy its code, and a copy of it imported through one: pytest's assertion rewriter
    claims every module of a package it was told to rewrite (a project's ``tests``, when an
    ``*.egg-info`` in the working folder lists it), and has no ``get_code``."""
    saved = list(sys.meta_path)
    sys.meta_path[:] = [f for f in saved if type(f).__name__ != "AssertionRewritingHook"]
    imported = sys.modules.get(name)
    loader = getattr(getattr(imported, "__spec__", None), "loader", None)
    unrunnable = imported is not None and not hasattr(loader, "get_code")
    if unrunnable:
        del sys.modules[name]
    try:
        yield
    finally:
        sys.meta_path[:] = saved
        if unrunnable and imported is not None:
            sys.modules[name] = imported


def _module(name: str) -> tuple[str, Callable[[list[str]], Any]]:
    """Run the module ``name`` as ``python -m name`` does."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise ValueError(f"{name!r} is neither a script file nor a module to run")

    def run(_argv: list[str]) -> Any:
        with warnings.catch_warnings(), _runnable_finders(name):
            # A test may have imported the module already; it runs afresh all the same.
            warnings.filterwarnings("ignore", "'.*' found in sys.modules", RuntimeWarning)
            return runpy.run_module(name, run_name="__main__", alter_sys=True)

    return spec.origin, run


def run_recorded(
    target: Target,
    argv: Sequence[str | os.PathLike[str]] = (),
    *,
    cwd: str | os.PathLike[str] | None = None,
) -> RecordedResult:
    """Run ``target`` on ``argv`` as its script would run, in ``cwd``, and read its record.

    ``target`` is a ``main`` (called as ``main(argv)`` when it takes an argument, else as
    ``main()``), a script's path (run as ``__main__``) or a module or its name (run as
    ``python -m`` runs it); ``sys.argv`` is the script and ``argv`` meanwhile. ``SystemExit``
    becomes the exit code; another exception is kept in ``exception`` (with exit code 1)
    rather than raised, so a test can look at the record of a run that crashed.
    """
    written: list[Path] = []
    args = [os.fspath(a) for a in argv]
    script, run = _runner(target)
    token = sidecar_watcher.set(lambda path: written.append(Path(os.path.abspath(path))))
    exception = None
    try:
        with _inside(cwd), _argv([script, *args]):
            try:
                code = exit_code_of_return(run(list(args)))
            except SystemExit as exit_:
                code = exit_code_of(code_of(exit_))
            except Exception as err:  # noqa: BLE001 - handed back to the test, not swallowed
                code, exception = 1, err
    finally:
        sidecar_watcher.reset(token)
    path = written[-1] if written else None
    sidecar = json.loads(path.read_text("utf-8")) if path is not None else None
    return RecordedResult(code, path, sidecar, exception, written)


def run_recorded_command(
    command: Sequence[str | os.PathLike[str]],
    *,
    inputs: Mapping[str, str | os.PathLike[str]] | None = None,
    outputs: Mapping[str, str | os.PathLike[str]] | None = None,
    config: Sequence[str | os.PathLike[str]] = (),
    root: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> RecordedResult:
    """Run ``provenance run --input NAME=PATH... --output NAME=PATH... --config PATH... --
    COMMAND...`` in ``cwd``, as a real subprocess, and read the records it wrote.

    ``provenance`` and a bare ``python`` (``python3``...) as the command's first word are this
    interpreter, so the command runs in the test's environment (``os.environ``, with ``env``
    over it). The records are the ones the run noted in ``PROVENANCE_RECORD_LOG``. The exit code
    is the command's (127 when it cannot be found, negative when a signal ended it, as
    ``subprocess`` says); ``stdout`` and ``stderr`` hold what it printed.
    """
    from provenance.launch.launchers import PYTHON  # loaded when asked: the plugin stays light

    words = [os.fspath(word) for word in command]
    if not words:
        raise ValueError("no command to run")
    if PYTHON.fullmatch(words[0]):
        words[0] = sys.executable
    options = [f"--input={name}={os.fspath(path)}" for name, path in (inputs or {}).items()]
    options += [f"--output={name}={os.fspath(path)}" for name, path in (outputs or {}).items()]
    options += [f"--config={os.fspath(path)}" for path in config]
    if root is not None:
        options.append(f"--root={os.fspath(root)}")
    with tempfile.TemporaryDirectory(prefix="provenance-test-") as folder:
        log = Path(folder) / "records"
        log.touch()
        done = subprocess.run(
            [sys.executable, "-m", "provenance", "run", *options, "--", *words],
            cwd=cwd,
            env={**os.environ, **(env or {}), RECORD_LOG: str(log)},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        lines = log.read_text("utf-8", "surrogateescape").splitlines()
    written = [Path(line) for line in lines if line]
    path = written[-1] if written else None
    sidecar = json.loads(path.read_text("utf-8")) if path is not None else None
    return RecordedResult(
        done.returncode,
        path,
        sidecar,
        written=written,
        stdout=done.stdout.decode("utf-8", "replace"),
        stderr=done.stderr.decode("utf-8", "replace"),
    )


class ProvenanceRun:
    """What the ``provenance_run`` fixture is: runs a script, or a command, in one folder."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def __call__(
        self, target: Target, argv: Sequence[str | os.PathLike[str]] = ()
    ) -> RecordedResult:
        """Run a recorded script (a ``main``, a file, a module) on ``argv``, in-process."""
        return run_recorded(target, argv, cwd=self.folder)

    def command(
        self,
        command: Sequence[str | os.PathLike[str]],
        *,
        inputs: Mapping[str, str | os.PathLike[str]] | None = None,
        outputs: Mapping[str, str | os.PathLike[str]] | None = None,
        config: Sequence[str | os.PathLike[str]] = (),
        root: str | os.PathLike[str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> RecordedResult:
        """Run ``command`` under ``provenance run`` (see ``run_recorded_command``), in ``cwd``
        (relative to this folder, which it is by default)."""
        return run_recorded_command(
            command,
            inputs=inputs,
            outputs=outputs,
            config=config,
            root=root,
            cwd=self.folder / cwd if cwd is not None else self.folder,
            env=env,
        )


try:
    import pytest
except ImportError:  # pragma: no cover - the plugin is only loaded by pytest
    pass
else:

    @pytest.fixture
    def provenance_run(tmp_path: Path) -> ProvenanceRun:
        """Run a recorded script (a ``main``, a file, a module) on ``argv``, or a command under
        ``provenance run`` (``.command``), inside this test's ``tmp_path``."""
        return ProvenanceRun(tmp_path)
