"""Run a script or module as ``__main__`` inside a ``Run``: what ``python -m provenance.launch``
does (see ``provenance.launch``)."""

from __future__ import annotations

import builtins
import importlib.util
import io
import os
import sys
import types
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import CodeType, TracebackType
from typing import Any, NoReturn

from provenance.errors import ProvenanceError
from provenance.launch import SPEC_ENVIRONMENT, Told
from provenance.measure.paths import fingerprint
from provenance.run import Run

_PASSED = ("--local_rank=", "--local-rank=")  # a launcher's word for the script, put before it


@dataclass
class _Target:
    entrypoint: str  # the file Python runs, absolute
    code: CodeType
    globals: dict[str, Any]


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Run ``SCRIPT ARGS...`` or ``-m MODULE ARGS...`` recorded; end as Python would have."""
    given = list(sys.argv[1:] if argv is None else argv)
    told = Told.decode(os.environ.pop(SPEC_ENVIRONMENT, None))  # the script's children: plain
    # deepspeed (and torch.distributed.launch) put --local_rank=N after the script they run,
    # which here is this module: it belongs to the script, first among its arguments.
    passed: list[str] = []
    while given and given[0].startswith(_PASSED):
        passed.append(given.pop(0))
    if given[:1] == ["-m"]:
        target = _module(given[1], [*passed, *given[2:]])
    else:
        target = _script(given[0], [*passed, *given[1:]])
    args = sys.argv[1:]
    run = Run(told.spec(), target.entrypoint, list(args))
    execute = _configurator(run, args)
    try:
        with run:
            for path in told.config:
                run._add_config_file(path)
            try:
                _execute(target)
            finally:
                execute()
    except (SystemExit, KeyboardInterrupt):
        raise  # Python ends by them as it would have: the exit code, or by SIGINT
    except BaseException as exc:  # noqa: BLE001 -- printed as Python prints it, then exit 1
        if isinstance(exc, ProvenanceError) and exc is run._flipped:
            sys.exit(1)  # the run's own evidence problem: said on stderr already
        trimmed = _script_frames(exc.__traceback__)
        sys.excepthook(type(exc), exc.with_traceback(trimmed), trimmed)
        sys.exit(1)
    sys.exit(0)


def _execute(target: _Target) -> None:
    # Python leaves the script's module as __main__ when it ends (atexit handlers and pickles
    # find it there), and so does this: runpy.run_path would put the old one back.
    module = types.ModuleType("__main__")
    module.__dict__.update(target.globals)
    sys.modules["__main__"] = module
    exec(target.code, module.__dict__)


def _script(path: str, args: list[str]) -> _Target:
    entrypoint = os.path.abspath(path)
    try:
        with io.open_code(entrypoint) as handle:
            source = handle.read()
    except OSError as err:
        _python_error(f"can't open file {entrypoint!r}: [Errno {err.errno}] {err.strerror}", 2)
    sys.argv = [path, *args]
    if not getattr(sys.flags, "safe_path", False):
        sys.path[0] = os.path.dirname(entrypoint)  # not the working folder -m put there
    code = _compiled(source, entrypoint)
    loader = importlib.machinery.SourceFileLoader("__main__", entrypoint)
    return _Target(
        entrypoint,
        code,
        {
            "__name__": "__main__",
            "__file__": entrypoint,
            "__cached__": None,
            "__loader__": loader,
            "__package__": None,
            "__spec__": None,
            "__builtins__": builtins,
        },
    )


def _module(name: str, args: list[str]) -> _Target:
    try:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations is not None:
            spec = importlib.util.find_spec(f"{name}.__main__")  # a package runs its __main__
        code = spec.loader.get_code(spec.name) if spec and spec.loader else None  # type: ignore[attr-defined]
    except ImportError as err:
        _python_error(f"Error while finding module specification for {name!r} ({err})", 1)
    except SyntaxError as exc:
        sys.excepthook(type(exc), exc, None)
        sys.exit(1)
    if spec is None or code is None or spec.origin is None or not os.path.isfile(spec.origin):
        _python_error(f"No module named {name}", 1)
    sys.argv = [spec.origin, *args]
    return _Target(
        os.path.abspath(spec.origin),
        code,
        {
            "__name__": "__main__",
            "__file__": spec.origin,
            "__cached__": spec.cached,
            "__loader__": spec.loader,
            "__package__": spec.parent,
            "__spec__": spec,
            "__builtins__": builtins,
        },
    )


def _compiled(source: bytes, path: str) -> CodeType:
    try:
        return compile(source, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        # Nothing ran, so nothing is recorded: Python says where, with no traceback of ours.
        sys.excepthook(type(exc), exc, None)
        sys.exit(1)


def _python_error(message: str, code: int) -> NoReturn:
    program = (getattr(sys, "orig_argv", None) or [sys.executable])[0]
    print(f"{program}: {message}", file=sys.stderr)
    sys.exit(code)


def _script_frames(tb: TracebackType | None) -> TracebackType | None:
    """The traceback from the first frame that is not this module's or runpy's: what Python
    would have printed had it run the script itself."""
    here = os.path.dirname(os.path.abspath(__file__))
    ours = {os.path.join(here, name) for name in ("__init__.py", "__main__.py", "runner.py")}
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) in ours:
        tb = tb.tb_next
    return tb


def _configurator(run: Run, args: Sequence[str]) -> Callable[[], None]:
    """Watch for an exec-style configurator (nanoGPT's ``exec(open('configurator.py').read())``);
    returns what records it once the script ends.

    A script that no framework parsed for, given ``*.py`` files and ``--key=value`` overrides,
    reads them itself: the files it opened are recorded as config files (with their digests,
    from the stat taken now), the overrides as its arguments, as the words it was given.
    """
    files = {
        os.path.abspath(a): a
        for a in args
        if not a.startswith("-") and a.endswith(".py") and os.path.isfile(a)
    }
    overrides: dict[str, str] = {}
    for arg in args:
        key, is_set, value = arg[2:].partition("=")
        if arg.startswith("--") and is_set and key:
            overrides[key] = value
    opened: list[str] = []
    if files:
        for path in files:
            run.baselines.setdefault(path, fingerprint(path))

        def heard(event: str, event_args: tuple[Any, ...]) -> None:
            if event == "open" and isinstance(event_args[0], (str, os.PathLike)):
                path = os.path.abspath(os.fspath(event_args[0]))
                if path in files and path not in opened:
                    opened.append(path)

        sys.addaudithook(heard)

    def record() -> None:
        if run.parsed:
            return  # a framework parsed the arguments: it said what they mean
        for path in opened:
            run._add_config_file(path)
        run.args.update(overrides)

    return record
