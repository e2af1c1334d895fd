"""``provenance replay FILE``: the command line that reproduces a run; ``--run`` runs it.

``--run`` runs only a regular file under the project root whose SHA-256 is the one the record
gives its entrypoint (``--force`` runs a changed one, after saying what differs), and judges
the record that this replay wrote, with its exit code: a non-zero exit, no record, or any
difference from the replayed record is a finding.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.commands import EXIT_FINDING, EXIT_OK, EXIT_USAGE, add_command, print_json, warn
from provenance.commands.diff import compare, readings, render_differences
from provenance.launch import RECORDED_BY
from provenance.measure.environment import ENV_NAME, recorded_variables
from provenance.measure.hashing import sha256_file
from provenance.ranks import MAX_WORLD_SIZE
from provenance.record.limits import LEFT_OUT_TEXT
from provenance.record.redact import REDACTED
from provenance.record.sidecar import RECORD_LOG
from provenance.records import Record, UnreadableRecord, declared_entries, load, sidecar_target
from provenance.text import lines_text, plural, shell_join, shell_quote, short

MAX_LOG_BYTES = 1024 * 1024  # the record log names a few records, one per line
Environment = dict[str, str | None]


def register(commands: Any) -> None:
    parser = add_command(
        commands,
        "replay",
        "print (or run) the command that made a file",
        __doc__,
        run,
        examples=[
            "provenance replay models/konvid_mos_head.onnx",
            "provenance replay model.onnx --run --python .venv/bin/python",
        ],
    )
    parser.add_argument("file", help="an artifact or its sidecar")
    parser.add_argument("--run", action="store_true", help="run it, then diff the new record")
    parser.add_argument(
        "--force",
        action="store_true",
        help="with --run: run the entrypoint even though its SHA-256 is not the recorded one",
    )
    parser.add_argument(
        "--python",
        default=None,
        help="interpreter (default: python in the printed command, this one for --run)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME",
        help="set NAME as the record gives it (repeat for each); nothing is set unless asked",
    )
    parser.add_argument(
        "--env-from-record",
        action="store_true",
        help="set the recorded variables known to carry only data (thread counts, devices, seeds)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def invocation(record: Record, python: str = "python") -> list[str]:
    """The argument vector of the run, under ``provenance run`` again when that recorded it."""
    inner = _invocation(record, python)
    if not _recorded_outside(record):
        return inner
    words = recorder_words(record)
    return inner if isinstance(words, str) else ["provenance", "run", *words, "--", *inner]


def _recorded_outside(record: Record) -> bool:
    return record.block.get("recorded_by") == RECORDED_BY


def recorder_words(record: Record) -> list[str] | str:
    """What ``provenance run`` was told, rebuilt from the record's declared paths and config
    files (``--input=NAME=PATH``, one word each, so no path is read as an option); or why it
    cannot be told so."""
    words = []
    for flag, table in (("--input", "inputs"), ("--output", "outputs")):
        for name, entry in declared_entries(record.block[table]):
            path = entry.get("path") if isinstance(entry, dict) else None
            if not isinstance(path, str):
                continue
            if "=" in name or not name:
                return f"its {table[:-1]} name {name!r} is no NAME provenance run takes"
            words.append(f"{flag}={name}={path}")
    config = record.block.get("config")
    for entry in config.get("files", []) if isinstance(config, dict) else []:
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            words.append(f"--config={entry['path']}")
    return words


def _invocation(record: Record, python: str = "python") -> list[str]:
    """The argument vector: ``python -m pkg.mod`` for a module of a package under the root
    (as it must be run to import its package), else ``python path/to/script.py``; then argv.
    Nothing before argv can be read as an option of the interpreter's own. A job of several
    ranks is started by its launcher: ``torchrun --standalone --nproc-per-node 2 script.py``,
    ``mpirun -n 4 python script.py``."""
    entrypoint = record.block["entrypoint"]["path"]
    if record.block["entrypoint"].get("kind") == "program":  # run as it is, not by Python
        program = f"./{entrypoint}" if entrypoint.startswith("-") else entrypoint
        return [program, *record.block["argv"]]
    module = _module_name(record, entrypoint)
    if module:
        head = ["-m", module]
    else:
        head = [f"./{entrypoint}" if entrypoint.startswith("-") else entrypoint]
    argv = record.block["argv"]
    job = job_launch(record)
    if job is None or job.launcher not in LAUNCHERS:
        return [python, *head, *argv]
    if job.launcher == "torchrun":
        return ["torchrun", *job.torchrun_options(), *head, *argv]
    return [LAUNCHERS[job.launcher], "-n", str(job.world_size), python, *head, *argv]


# The program each launcher is started with; torchrun runs the script with its own interpreter.
LAUNCHERS = {"torchrun": "torchrun", "openmpi": "mpirun", "pmi": "mpiexec", "slurm": "srun"}


@dataclass(frozen=True)
class JobLaunch:
    """How a job of several ranks was launched, as far as its record says, in numbers checked."""

    launcher: str
    world_size: int
    nproc_per_node: int
    nnodes: int

    def torchrun_options(self) -> list[str]:
        if self.nnodes == 1:
            # One node: its own rendezvous on a free port, as torchrun --standalone makes it.
            return ["--standalone", "--nproc-per-node", str(self.nproc_per_node)]
        return ["--nnodes", str(self.nnodes), "--nproc-per-node", str(self.nproc_per_node)]


def _count(value: object, most: int) -> int | None:
    return value if type(value) is int and 1 <= value <= most else None


def job_launch(record: Record) -> JobLaunch | None:
    """The record's launch, its numbers checked; None for a lone run. Only numbers and a known
    launcher's name are taken: no word of a command comes from the record."""
    launch = record.block.get("launch")
    if not isinstance(launch, dict):
        return None
    launcher = launch.get("launcher")
    size = _count(launch.get("world_size"), MAX_WORLD_SIZE)
    if not isinstance(launcher, str) or size is None or size < 2:
        return None
    per_node = _count(launch.get("nproc_per_node"), size)
    nodes = _count(launch.get("nnodes"), size)
    if per_node is None or nodes is None or per_node * nodes != size:
        per_node, nodes = size, 1  # a record from before they were kept: one node
    return JobLaunch(launcher, size, per_node, nodes)


def _launched(record: Record, python: str, head: list[str], argv: list[str]) -> list[str] | str:
    """The argument vector that starts a job's ranks as its launcher did, or why not."""
    job = job_launch(record)
    if job is None:
        return [python, *head, *argv]
    if job.launcher != "torchrun":
        how = (
            "RANK and WORLD_SIZE set without torchrun"
            if job.launcher == "torch.distributed"
            else job.launcher
        )
        return (
            f"it was a job of {job.world_size} ranks ({how}): --run replays torchrun jobs "
            "only; run the printed command yourself"
        )
    if job.nnodes != 1:
        return (
            f"it was a job on {job.nnodes} nodes: the record does not say how they met; run "
            "the printed command on each node yourself"
        )
    return [*torchrun_program(python), *job.torchrun_options(), *head, *argv]


def torchrun_program(python: str) -> list[str]:
    """torchrun beside the interpreter (the one its distribution installed there), else the
    interpreter running torch's own module: never a program the record names."""
    found = shutil.which(python)
    if found is not None:
        beside = Path(found).parent / "torchrun"
        if beside.is_file() and os.access(beside, os.X_OK):
            return [str(beside)]
    return [python, "-m", "torch.distributed.run"]


def _module_name(record: Record, shown: str) -> str | None:
    if record.root is None:
        return None
    place = record.place(shown, record.boundary())
    if place.written is None or place.path is None or place.written.suffix != ".py":
        return None
    if not (place.written.parent / "__init__.py").is_file():
        return None
    parts = [place.written.stem]
    folder = place.written.parent
    while (folder / "__init__.py").is_file() and folder != record.root:
        parts.insert(0, folder.name)
        folder = folder.parent
    # A name that is no identifier cannot be imported (and "-c" must never follow "-m").
    if folder != record.root or not all(part.isidentifier() for part in parts):
        return None
    return ".".join(parts)


# The variables --env-from-record sets: each is known to carry data (a count, a device list, a
# seed), never a path, a command or a module, and its value must have the shape that says so. Any
# other variable can load code (OPENSSL_CONF names a provider library, GIT_SSH_COMMAND a command,
# HF_HOME a folder of modules): it is set only when the user names it with --env.
_COUNT = re.compile(r"[0-9]{1,6}")
_DEVICE = r"(?:-?[0-9]{1,4}|(?:GPU|MIG)-[0-9A-Fa-f-]{1,64})"
_DEVICES = re.compile(rf"(?:{_DEVICE}(?:,{_DEVICE})*)?")
_FLAG = re.compile(r"[01]|true|false|TRUE|FALSE|True|False")
DATA_VARIABLES: dict[str, re.Pattern[str]] = {
    "CUBLAS_WORKSPACE_CONFIG": re.compile(r":[0-9]{1,6}:[0-9]{1,6}(?:,:[0-9]{1,6}:[0-9]{1,6})*"),
    "CUDA_DEVICE_ORDER": re.compile(r"FASTEST_FIRST|PCI_BUS_ID"),
    "CUDA_LAUNCH_BLOCKING": _FLAG,
    "CUDA_VISIBLE_DEVICES": _DEVICES,
    "HIP_VISIBLE_DEVICES": _DEVICES,
    "MKL_NUM_THREADS": _COUNT,
    "NUMEXPR_NUM_THREADS": _COUNT,
    "NVIDIA_TF32_OVERRIDE": _FLAG,
    "OMP_NUM_THREADS": _COUNT,
    "OPENBLAS_NUM_THREADS": _COUNT,
    "PYTHONHASHSEED": re.compile(r"random|[0-9]{1,10}"),
    "ROCR_VISIBLE_DEVICES": _DEVICES,
    "TF_CUDNN_DETERMINISTIC": _FLAG,
    "TF_DETERMINISTIC_OPS": _FLAG,
    "TOKENIZERS_PARALLELISM": _FLAG,
    "VECLIB_MAXIMUM_THREADS": _COUNT,
}


def carries_data(name: str, value: str | None) -> bool:
    """Whether ``--env-from-record`` may set ``name`` to ``value`` (None: unset)."""
    shape = DATA_VARIABLES.get(name)
    return shape is not None and (value is None or shape.fullmatch(value) is not None)


class Refused(Exception):
    """A variable the user named that the replay cannot set, with why."""


def to_set(
    record: Record, names: Iterable[str], from_record: bool
) -> tuple[Environment, list[str]]:
    """The variables the replay sets (None: unsets), and the recorded ones it leaves alone.

    Nothing is set unless asked: ``names`` (``--env``) are set as the record gives them, and
    ``from_record`` (``--env-from-record``) adds those of ``DATA_VARIABLES`` whose values have
    their shape. Raises ``Refused`` for a named variable the record does not give a value to.
    """
    recorded = recorded_variables(record.block.get("environment"))
    wanted: Environment = {}
    for name in names:
        if name not in recorded:
            raise Refused(f"the record names no variable {name}")
        if recorded[name] == REDACTED:
            raise Refused(f"the record holds {name} redacted: set it yourself")
        wanted[name] = recorded[name]
    if from_record:
        for name, value in recorded.items():
            if name not in wanted and value != REDACTED and carries_data(name, value):
                wanted[name] = value
    left = sorted(name for name in recorded if name not in wanted)
    return dict(sorted(wanted.items())), left


def _environment_words(wanted: Environment) -> list[str]:
    if not wanted:
        return []
    unset = [word for name, v in wanted.items() if v is None for word in ("-u", name)]
    return ["env", *unset, *(f"{name}={v}" for name, v in wanted.items() if v is not None)]


def command_line(record: Record, wanted: Environment, python: str = "python") -> str:
    words = shell_join([*_environment_words(wanted), *invocation(record, python)])
    return f"cd {shell_quote(str(record.root))} && {words}" if record.root else words


def redacted(record: Record) -> bool:
    return any(REDACTED in str(word) for word in record.block["argv"])


def left_out(record: Record) -> bool:
    """Whether an argument was too large for the record and stands there as a marker."""
    return any(str(word).startswith(LEFT_OUT_TEXT) for word in record.block["argv"])


def runnable(record: Record, python: str, force: bool) -> list[str] | str:
    """The argument vector to replay ``record`` with, or why it must not run."""
    entrypoint = record.block["entrypoint"]
    shown = entrypoint["path"]
    place = record.place(shown, record.boundary())
    if place.path is None:
        return f"its entrypoint {shown!r} is not run: {place.refused}"
    try:
        mode = os.stat(place.path).st_mode
    except OSError as err:
        return f"its entrypoint {shown!r} cannot be run: {err.strerror or err}"
    if not stat.S_ISREG(mode):
        return f"its entrypoint {shown!r} is not a regular file"
    program = entrypoint.get("kind") == "program"
    other = None if program else _runs_other_code(place.path)
    if other is not None:
        return f"its entrypoint {shown!r} is not run: {other}"
    now = sha256_file(place.path)
    if now != entrypoint["sha256"] and not force:
        return (
            f"its entrypoint {shown} has sha256 {short(now)} now, not the recorded "
            f"{short(entrypoint['sha256'])}: it is not the code that ran; --force runs it anyway"
        )
    argv = [str(word) for word in record.block["argv"]]
    if any("\0" in word for word in argv):
        return "its command holds a NUL character, which no process can be given"
    if _recorded_outside(record):  # its record is provenance run's: run it under it again
        return _under_recorder(record, place.path, program, python, argv)
    if program:
        return "it is a program that records nothing itself; run the printed command yourself"
    # As a module where the printed command has it; otherwise by the absolute path, which
    # cannot be taken for an interpreter option.
    module = _module_name(record, shown)
    if module is not None and record.root is not None:
        found = _imported_file(record.root, module)
        if found != place.path.resolve():
            what = "nothing" if found is None else repr(os.path.relpath(found, record.root))
            return f"python -m {module} would run {what}, not its entrypoint {shown!r}"
    head = ["-m", module] if module else [str(place.path)]
    return _launched(record, python, head, argv)


def _under_recorder(
    record: Record, path: Path, program: bool, python: str, argv: list[str]
) -> list[str] | str:
    """``provenance run`` (this one) told what it was told, then the command: a program by its
    absolute path, a Python script with ``python``."""
    words = recorder_words(record)
    if isinstance(words, str):
        return words
    if program:
        inner: list[str] | str = [str(path), *argv]
    else:
        module = _module_name(record, record.block["entrypoint"]["path"])
        inner = _launched(record, python, ["-m", module] if module else [str(path)], argv)
    if isinstance(inner, str):
        return inner
    recorder = [sys.executable, "-m", "provenance", "run", f"--root={record.root}", *words]
    return [*recorder, "--", *inner]


def _runs_other_code(path: Path) -> str | None:
    """Why Python, given ``path``, would run other code than its source text: a file it can
    read as a zip archive (it runs the ``__main__.py`` inside, whatever the file is called: a
    ``.npz`` or a ``.pt`` checkpoint is one), or compiled bytecode, whose digest says nothing a
    reader can check against source."""
    import zipfile
    from importlib.util import MAGIC_NUMBER

    try:
        with open(path, "rb") as handle:
            head = handle.read(2)
        archive = zipfile.is_zipfile(path)
    except OSError as err:
        return f"it cannot be read: {err.strerror or err}"
    if path.suffix in (".pyc", ".pyo") or head == MAGIC_NUMBER[:2]:
        return "it is compiled bytecode, not source"
    if archive:
        return "it is a zip archive: Python would run the __main__.py inside it"
    return None


def _imported_file(root: Path, module: str) -> Path | None:
    """The file ``python -m module`` started in ``root`` imports for each part, found as the
    import system finds it (a package folder before a module, an extension before source),
    without importing anything; the last part's file, or None when a part is not found where
    expected."""
    from importlib.machinery import (
        BYTECODE_SUFFIXES,
        EXTENSION_SUFFIXES,
        SOURCE_SUFFIXES,
        ExtensionFileLoader,
        FileFinder,
        SourceFileLoader,
        SourcelessFileLoader,
    )

    folder, origin = root, None
    parts = module.split(".")
    for i, part in enumerate(parts):
        finder = FileFinder(
            str(folder),
            (ExtensionFileLoader, EXTENSION_SUFFIXES),
            (SourceFileLoader, SOURCE_SUFFIXES),
            (SourcelessFileLoader, BYTECODE_SUFFIXES),
        )
        spec = finder.find_spec(".".join(parts[: i + 1]))
        if spec is None or spec.origin is None:
            return None
        origin = Path(spec.origin).resolve()
        if i < len(parts) - 1:
            if spec.submodule_search_locations is None:
                return None  # a module where a package must be
            folder = folder / part
        elif spec.submodule_search_locations is not None:
            return None  # a package runs its __main__, not the recorded file
    return origin


def _written(log: Path) -> list[Path]:
    """The records the replay wrote, in order, as its run appended them to the log."""
    with open(log, "rb") as handle:
        data = handle.read(MAX_LOG_BYTES)
    lines = data.decode("utf-8", "surrogateescape").splitlines()
    return [Path(line) for line in lines if line]


def _judged(record: Record, written: list[Path]) -> Path | None:
    """Of the records the replay wrote, the one for the replayed artifact (the last one
    written when none is)."""
    target = sidecar_target(Path(os.path.abspath(record.source)))
    mine = [p for p in written if sidecar_target(p) == target]
    found = mine or written
    return found[-1] if found else None


def _as_given(record: Record, written: Path) -> Path:
    """A record the replay wrote, named as the replayed record's path was given (relative where
    it was), as every command names the paths it was given; absolute when it is elsewhere."""
    given = Path(record.source)
    if written.parent == Path(os.path.abspath(given)).parent:
        return given.parent / written.name
    return written


def _not_rebuilt(old: Record, new: Record) -> list[str]:
    """Outputs the recorded run wrote that the replay did not: the same bytes still on disk
    would otherwise read as reproduced."""
    before = {n: e for n, e in declared_entries(old.block["outputs"]) if isinstance(e, dict)}
    after = {n: e for n, e in declared_entries(new.block["outputs"]) if isinstance(e, dict)}
    return [
        f"it did not write {name}"
        for name, entry in before.items()
        if entry.get("written_by_run") is not False
        and entry.get("exists")
        and after.get(name, {}).get("written_by_run") is False
    ]


def _announce(left: list[str], wanted: Environment) -> None:
    if wanted:
        warn(f"sets from the record: {', '.join(wanted)}")
    if left:
        warn(
            f"not set from the record: {', '.join(left)} (--env NAME sets one you trust; "
            "--env-from-record those known to carry only data)"
        )


_TAIL_BYTES = 64 * 1024
_MISSING_MODULE = re.compile(
    rb"^(?:ModuleNotFoundError|ImportError): No module named '([^'\n]{1,200})'", re.M
)


def _run_teed(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, bytes]:
    """Run the replay with its output (stdout and stderr both) passed on to stderr as it
    comes, kept off the result on stdout; its exit code and the last bytes it printed."""
    tail = bytearray()
    out = sys.stderr.buffer if hasattr(sys.stderr, "buffer") else None
    sys.stderr.flush()
    with subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    ) as proc:  # fmt: skip
        assert proc.stdout is not None
        while chunk := os.read(proc.stdout.fileno(), 65536):
            if out is not None:
                out.write(chunk)
                out.flush()
            tail += chunk
            del tail[:-_TAIL_BYTES]
    return proc.returncode, bytes(tail)


def _missing_module(tail: bytes) -> str | None:
    """The module a failed replay could not import, from the traceback it printed last."""
    found = _MISSING_MODULE.findall(tail)
    return found[-1].decode("utf-8", "replace") if found else None


def argv_python(argv: list[str]) -> str:
    """The interpreter a replay's words start (after a launcher such as ``mpirun -n 4``)."""
    return next((w for w in argv if Path(w).name.startswith("python")), argv[0])


def run(args: argparse.Namespace) -> int:
    record = load(args.file, args.root)
    bad = [name for name in args.env if not ENV_NAME.fullmatch(name)]
    if bad:
        warn(f"--env takes the name of a variable, not {bad[0]!r}")
        return EXIT_USAGE
    try:
        wanted, left = to_set(record, args.env, args.env_from_record)
    except Refused as err:
        warn(f"cannot replay {record.source}: {err}")
        return EXIT_USAGE
    printed = command_line(record, wanted, args.python or "python")
    if not args.run:
        if args.json:
            print_json(
                {
                    "command": printed,
                    "argv": invocation(record, args.python or "python"),
                    "environment": wanted,
                    "not_set": left,
                    "redacted": redacted(record),
                }
            )
        else:
            print(lines_text([printed]))
        _announce(left, {})
        job = job_launch(record)
        if job is not None and job.launcher not in LAUNCHERS:
            warn(
                f"a job of {job.world_size} ranks whose launcher is not known: the command "
                "starts one process; start its ranks as they were started"
            )
        if redacted(record):
            warn("the command holds redacted values; supply them to reproduce the run")
        return EXIT_OK
    if redacted(record):
        warn(f"cannot replay {record.source}: its command holds redacted values")
        return EXIT_USAGE
    if left_out(record):
        warn(f"cannot replay {record.source}: an argument was too large for the record")
        return EXIT_USAGE
    if record.embedded or record.root is None:
        warn(f"cannot replay {record.source}: replay needs the run's sidecar and project root")
        return EXIT_USAGE
    argv = runnable(record, args.python or sys.executable, args.force)
    if isinstance(argv, str):
        warn(f"cannot replay {record.source}: {argv}")
        return EXIT_USAGE
    shown = shell_join([*_environment_words(wanted), *argv])
    print(lines_text([f"$ cd {shell_quote(str(record.root))} && {shown}"]), file=sys.stderr)
    _announce(left, wanted)
    env = dict(os.environ)
    for name, value in wanted.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value

    with tempfile.TemporaryDirectory(prefix="provenance-replay-") as folder:
        log = Path(folder) / "records"
        log.touch()
        returncode, tail = _run_teed(argv, record.root, {**env, RECORD_LOG: str(log)})
        chosen = _judged(record, _written(log))
    problems = [] if returncode == 0 else [f"it exited {returncode}"]
    missing = _missing_module(tail) if returncode != 0 and chosen is None else None
    if missing is not None:
        problems.append(
            f"it could not import {missing} with {argv_python(argv)}: give the interpreter "
            "the run used with --python (a virtual environment's bin/python, say)"
        )
    new = None
    if chosen is None:
        problems.append("it wrote no record")
    else:
        try:
            new = load(chosen, record.root)
        except UnreadableRecord as err:
            problems.append(f"its record cannot be read: {err}")
    named = _as_given(record, chosen) if chosen is not None else None
    differences = compare(record, new) if new is not None else []
    read = (
        readings(differences, (record.block.get("args"), new.block.get("args")))
        if new is not None
        else []
    )
    if new is not None:
        problems += _not_rebuilt(record, new)
    if differences:
        problems.append(plural(len(read), "difference"))
    if args.json:
        print_json(
            {
                "command": printed,
                "argv": argv,
                "environment": wanted,
                "not_set": left,
                "exit_code": returncode,
                "record": str(named) if named is not None else None,
                "reproduced": not problems,
                "problems": problems,
                "differences": differences,
                "lines": read,
            }
        )
    else:
        wrote = f"new record {named}" if named is not None else "it wrote no record"
        lines = [f"replayed: exit {returncode}; {wrote}"]
        print(lines_text(lines))
        if differences:
            print(render_differences(read))
        verdict = "no differences" if not problems else "; ".join(problems)
        print(lines_text([f"{'reproduced' if not problems else 'not reproduced'}: {verdict}"]))
    return EXIT_OK if not problems else EXIT_FINDING
