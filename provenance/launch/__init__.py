"""Run a Python script or module inside a recorded run, as ``provenance run`` starts it.

``python -m provenance.launch SCRIPT ARGS...`` (or ``-m MODULE ARGS...``) runs the script as
``python SCRIPT ARGS...`` would: as ``__main__``, with ``sys.argv`` and ``sys.path[0]`` set as
Python sets them, and ``__main__`` left in place when it ends. Around it is a ``Run`` made of
what ``provenance run`` was told (``--input``, ``--output``, ``--config``), handed over in the
``PROVENANCE_RUN`` environment variable, so the script is recorded as a decorated one is: its
arguments through the framework adapters, its files, its outcome, its gates and its rank.
"""

from __future__ import annotations

import builtins
import importlib.util
import io
import json
import os
import sys
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, TracebackType
from typing import Any, NoReturn

from provenance.errors import ProvenanceError
from provenance.measure.paths import fingerprint
from provenance.run import Run, RunSpec

SPEC_ENVIRONMENT = "PROVENANCE_RUN"
MODULE = "provenance.launch"
_PASSED = ("--local_rank=", "--local-rank=")


@dataclass(frozen=True)
class Told:
    """What ``provenance run`` was told about a command: names to paths, config files, root."""

    inputs: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    config: tuple[str, ...] = ()
    root: str | None = None

    def encode(self) -> str:
        return json.dumps(
            {
                "inputs": dict(self.inputs),
                "outputs": dict(self.outputs),
                "config": list(self.config),
                "root": self.root,
            },
            sort_keys=True,
        )

    @classmethod
    def decode(cls, text: str | None) -> Told:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            inputs={str(k): str(v) for k, v in data.get("inputs", {}).items()},
            outputs={str(k): str(v) for k, v in data.get("outputs", {}).items()},
            config=tuple(str(p) for p in data.get("config", [])),
            root=data.get("root"),
        )

    def spec(self, **more: Any) -> RunSpec:
        """The run's spec: every path a literal one, as for a script without argparse."""
        return RunSpec(
            inputs={n: Path(p) for n, p in self.inputs.items()},
            outputs={n: Path(p) for n, p in self.outputs.items()},
            root=self.root,
            **more,
        )


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
    ours = {os.path.join(here, "__init__.py"), os.path.join(here, "__main__.py")}
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
