"""Record a command that has no decorator: provenance run [options] -- COMMAND ARGS...

A Python script or module (python x.py, python -m pkg.mod, a console script, or such a command
behind torchrun, accelerate launch, deepspeed, mpirun, mpiexec or srun) runs inside a recorded
run, captured as a decorated script is. Any other command runs as a child and is recorded from
outside: its program, its arguments, the declared files and its exit code. The record goes
beside the first --output (or where the script's own --manifest-out says). The command's output,
exit code and the signal that ends it pass through unchanged; a command that is not found exits
127, as in a shell.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from provenance.commands import EXIT_USAGE, add_command, warn
from provenance.errors import ProvenanceError
from provenance.launch import MODULE, SPEC_ENVIRONMENT, Told
from provenance.launch.launchers import (
    BY_MODULE,
    BY_PROGRAM,
    PYTHON,
    Launcher,
    options_of,
    rewrite,
)
from provenance.measure.paths import find_root
from provenance.record.outcome import Terminated

EXIT_NOT_FOUND, EXIT_NOT_EXECUTABLE = 127, 126  # what a shell exits with
# Launchers given a whole command line (python and its arguments come after their options).
_COMMAND_LAUNCHERS = frozenset({"mpirun", "mpiexec", "srun"})
# Python's options that take a value as the next word (or the rest of the word).
_VALUED_SHORT = frozenset("WX")
_VALUED_LONG = frozenset({"--check-hash-based-pycs"})
_FORWARDED = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "run",
        "run a command and record it, with no change to its code",
        __doc__,
        run,
        examples=[
            "provenance run --input data=data/ --output model=model.pt -- python train.py",
            "provenance run --output out=ckpt/ -- torchrun --nproc-per-node 4 train.py",
        ],
    )
    parser.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a file or folder the command reads (repeat for each)",
    )
    parser.add_argument(
        "--output",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="a file or folder the command writes; the record goes beside the first",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="PATH",
        help="a config file the command reads (repeat for each)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")


class UsageError(ProvenanceError, ValueError):
    """What ``provenance run`` was given will not do."""


def _named(given: Iterable[str], option: str) -> dict[str, str]:
    named: dict[str, str] = {}
    for item in given:
        name, is_set, path = item.partition("=")
        if not is_set or not name or not path:
            raise UsageError(f"{option} takes NAME=PATH, not {item!r}")
        if name in named:
            raise UsageError(f"{option} {name} is given twice")
        named[name] = os.path.abspath(path)
    return named


def run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not hasattr(signal, "sigtimedwait"):  # how it waits on the command and its signals
        warn("provenance run needs signal.sigtimedwait, which this system lacks (Linux has it)")
        return EXIT_USAGE
    try:
        if not command:
            raise UsageError("no command to run: provenance run [options] -- COMMAND ARGS...")
        told = Told(
            inputs=_named(args.input, "--input"),
            outputs=_named(args.output, "--output"),
            config=tuple(os.path.abspath(p) for p in args.config),
            root=os.path.abspath(args.root) if args.root else _working_root(),
        )
        program = _program(command[0])
    except UsageError as err:
        warn(str(err))
        return EXIT_USAGE
    if program is None:
        warn(f"{command[0]}: command not found")
        return EXIT_NOT_FOUND
    python = python_command(command, program)
    if python is not None:
        env = dict(os.environ, **{SPEC_ENVIRONMENT: told.encode()})
        try:
            return _ended_like(_start(python, env)[0])
        except OSError as err:
            return _not_started(command, err)
    if not told.outputs:
        warn(
            f"{command[0]} is not a Python script, so its record goes beside its first output: "
            "give one with --output NAME=PATH"
        )
        return EXIT_USAGE
    return _record_outside(told, program, command)


def _program(name: str) -> str | None:
    """The file a shell would run for ``name``."""
    found = shutil.which(name) if os.sep not in name else name
    if found is None or not os.path.exists(found):
        return None
    return os.path.abspath(found)


def python_command(command: Sequence[str], program: str) -> list[str] | None:
    """``command`` rewritten so its Python part runs under ``provenance.launch``; None when no
    part of it is a Python script or module that can be recorded from inside."""
    name = os.path.basename(program)
    if name in BY_PROGRAM:
        return _behind_launcher(BY_PROGRAM[name], command, 1)
    if name in _COMMAND_LAUNCHERS:
        for at, word in enumerate(command[1:], 1):
            if PYTHON.fullmatch(os.path.basename(word)):
                rewritten = _python_part(command[at:])
                return None if rewritten is None else [*command[:at], *rewritten]
        return None
    if PYTHON.fullmatch(name):
        return _python_part(command)
    interpreter = _python_shebang(program)
    if interpreter is not None:  # a console script, or an executable x.py
        return [*interpreter, "-m", MODULE, program, *command[1:]]
    return None


def _python_part(command: Sequence[str]) -> list[str] | None:
    """``python [options] SCRIPT|-m MODULE ARGS...`` with ``-m provenance.launch`` put before
    the script; None for ``-c``, stdin, the REPL, or ``--help``-like options."""
    at = 1
    while at < len(command):
        word = command[at]
        if word == "--":
            at += 1
            break
        if word in _VALUED_LONG:
            at += 2
            continue
        if word.startswith("--"):
            if word.partition("=")[0] in _VALUED_LONG:
                at += 1
                continue
            return None  # --help, --version
        if not word.startswith("-") or word == "-":
            break
        for place, flag in enumerate(word[1:], 1):
            rest = word[place + 1 :]
            if flag == "m":
                module = rest or (command[at + 1] if at + 1 < len(command) else "")
                after = at + 1 if rest else at + 2
                if not module:
                    return None
                if module in BY_MODULE:  # python -m torch.distributed.run: a launcher
                    return _behind_launcher(BY_MODULE[module], command, after)
                flags = [word[:place]] if place > 1 else []  # -um pkg: keep the -u
                return [*command[:at], *flags, "-m", MODULE, "-m", module, *command[after:]]
            if flag == "c":
                return None
            if flag in _VALUED_SHORT:
                at += 0 if rest else 1
                break
        at += 1
    if at >= len(command) or command[at] == "-":
        return None
    return [*command[:at], "-m", MODULE, *command[at:]]


def _behind_launcher(launcher: Launcher, command: Sequence[str], at: int) -> list[str] | None:
    """``command`` with the script the launcher's options (from ``at`` on) lead to put under
    ``provenance.launch``; the launcher's own words kept as they are."""
    head = at + len(launcher.subcommand)
    if tuple(command[at:head]) != launcher.subcommand:
        return None  # accelerate config, accelerate env: nothing of Python to record
    rewritten = rewrite(options_of(launcher), command[head:], _python_program)
    return None if rewritten is None else [*command[:head], *rewritten]


def _python_program(name: str) -> tuple[list[str], str] | None:
    """The interpreter and file of a program given by name whose ``#!`` line runs Python."""
    program = _program(name)
    interpreter = None if program is None else _python_shebang(program)
    return None if program is None or interpreter is None else (interpreter, program)


def _python_shebang(program: str) -> list[str] | None:
    """The interpreter of a script whose ``#!`` line runs Python, as words to run it by."""
    try:
        with open(program, "rb") as handle:
            first = handle.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!"):
        return None
    words = os.fsdecode(first[2:]).split()
    if not words:
        return None
    if os.path.basename(words[0]) == "env":
        named = [w for w in words[1:] if not w.startswith("-")]
        return words if named and PYTHON.fullmatch(os.path.basename(named[0])) else None
    return words if PYTHON.fullmatch(os.path.basename(words[0])) else None


def _start(argv: Sequence[str], env: dict[str, str] | None = None) -> tuple[int, int | None]:
    """Run ``argv`` to its end, passing on the signals sent to this process; its return code
    (negative: the signal that killed it) and the first signal this process was sent."""
    waited = {*_FORWARDED, signal.SIGCHLD}
    before = signal.pthread_sigmask(signal.SIG_BLOCK, waited)
    try:
        child = subprocess.Popen(
            list(argv),
            env=env,
            # The child starts with the signals as they were: it is not the one waiting.
            preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, before),
        )
        received: int | None = None
        while True:
            info = signal.sigtimedwait(waited, 1.0)
            code = child.poll()
            if code is not None:
                return code, received
            if info is None or info.si_signo == signal.SIGCHLD:
                continue
            received = received or info.si_signo
            # A signal the terminal sent (Ctrl-C, a hangup) reached the whole process group, the
            # child too; one sent to this process alone (kill, a scheduler) is passed on.
            if info.si_code <= 0:
                child.send_signal(info.si_signo)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _not_started(command: Sequence[str], err: OSError) -> int:
    warn(f"{command[0]}: {err.strerror or err}")
    return EXIT_NOT_FOUND if isinstance(err, FileNotFoundError) else EXIT_NOT_EXECUTABLE


def _ended_like(code: int) -> int:
    """The exit code to end with; a child killed by a signal ends this process by it too."""
    if code >= 0:
        return code
    signum = -code
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
    except (OSError, ValueError):
        pass  # SIGKILL and SIGSTOP keep their default, which is what is wanted
    os.kill(os.getpid(), signum)
    return 128 + signum


def _working_root() -> str:
    """The project a command is run in: the root found from the working folder, else that
    folder. Not the entrypoint's: a module run with ``-m`` may live in the interpreter's own
    tree (``python -m json.tool``), which is no project of the user's."""
    found = find_root(os.getcwd())
    return os.fspath(found) if found is not None else os.getcwd()


def _record_outside(told: Told, program: str, command: list[str]) -> int:
    """Run a command that is not Python as a child and record it: argv, files, exit code."""
    from provenance.run import Run  # only a run needs it: the other commands start light

    spec = told.spec(imported_code=False)
    run_ = Run(spec, program, command[1:])
    code = 0
    try:
        with run_:
            for path in told.config:
                run_._add_config_file(path)
            try:
                code, _ = _start(command)
            except OSError as err:
                code = _not_started(command, err)
            if code == -signal.SIGINT:
                raise KeyboardInterrupt
            if code < 0 and -code in _FORWARDED:
                raise Terminated(-code)
            run_.returned(128 - code if code < 0 else code)
    except (KeyboardInterrupt, Terminated):
        pass  # the record says interrupted; now end as the child did
    except ProvenanceError as err:
        if err is not run_._flipped:
            warn(str(err))
        return 1
    return _ended_like(code)
