"""``provenance replay FILE``: the command line that reproduces a run; ``--run`` runs it.

``--run`` runs only a regular file under the project root whose SHA-256 is the one the record
gives its entrypoint (``--force`` runs a changed one, after saying what differs), and judges
the record that this replay wrote, with its exit code: a non-zero exit, no record, or any
difference from the replayed record is a finding.
"""

from __future__ import annotations

import argparse
import os
import shlex
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from provenance.commands import (
    EXIT_FINDING,
    EXIT_OK,
    EXIT_USAGE,
    add_command,
    declared_entries,
    lines_text,
    print_json,
    short,
    warn,
)
from provenance.commands.diff import compare, render_differences
from provenance.environment import recorded_variables
from provenance.hashing import sha256_file
from provenance.records import Record, UnreadableRecord, load, sidecar_target
from provenance.redact import REDACTED
from provenance.sidecar import RECORD_LOG

MAX_LOG_BYTES = 1024 * 1024  # the record log names a few records, one per line


def register(commands: Any) -> None:
    parser = add_command(
        commands, "replay", "print (or run) the command that made a file", __doc__, run
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
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def invocation(record: Record, python: str = "python") -> list[str]:
    """The argument vector: ``python -m pkg.mod`` for a module of a package under the root
    (as it must be run to import its package), else ``python path/to/script.py``; then argv.
    Nothing before argv can be read as an option of the interpreter's own."""
    entrypoint = record.block["entrypoint"]["path"]
    module = _module_name(record, entrypoint)
    if module:
        head = ["-m", module]
    else:
        head = [f"./{entrypoint}" if entrypoint.startswith("-") else entrypoint]
    return [python, *head, *record.block["argv"]]


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


# Variables that decide what code runs, or where the run's evidence goes: a record (hostile, or
# only from another machine) that set them would get past the entrypoint's digest check.
_LOADER_PREFIXES = ("LD_", "DYLD_", "PYTHON", "OPENLINEAGE_", "PROVENANCE_")
_LOADER_NAMES = frozenset(
    {"PATH", "BASH_ENV", "ENV", "PERL5LIB", "PERL5OPT", "RUBYOPT", "NODE_OPTIONS", "GCONV_PATH"}
    | {"HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"}
)


def changes_what_runs(name: str) -> bool:
    """Whether setting ``name`` can load other code than the recorded one, or send evidence
    elsewhere."""
    return name in _LOADER_NAMES or name.upper().startswith(_LOADER_PREFIXES)


def restored(record: Record) -> dict[str, str | None]:
    """The environment variables the record names, as the replay sets them (None: unset);
    a redacted value is left as the environment has it."""
    named = recorded_variables(record.block.get("environment"))
    return {name: value for name, value in named.items() if value != REDACTED}


def _environment_words(record: Record) -> list[str]:
    wanted = restored(record)
    if not wanted:
        return []
    unset = [word for name, v in wanted.items() if v is None for word in ("-u", name)]
    return ["env", *unset, *(f"{name}={v}" for name, v in wanted.items() if v is not None)]


def command_line(record: Record, python: str = "python") -> str:
    words = shlex.join([*_environment_words(record), *invocation(record, python)])
    return f"cd {shlex.quote(str(record.root))} && {words}" if record.root else words


def redacted(record: Record) -> bool:
    return any(REDACTED in str(word) for word in record.block["argv"])


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
    now = sha256_file(place.path)
    if now != entrypoint["sha256"] and not force:
        return (
            f"its entrypoint {shown} has sha256 {short(now)} now, not the recorded "
            f"{short(entrypoint['sha256'])}: it is not the code that ran; --force runs it anyway"
        )
    # As a module where the printed command has it; otherwise by the absolute path, which
    # cannot be taken for an interpreter option.
    module = _module_name(record, shown)
    head = ["-m", module] if module else [str(place.path)]
    return [python, *head, *record.block["argv"]]


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


def run(args: argparse.Namespace) -> int:
    record = load(args.file, args.root)
    printed = command_line(record, args.python or "python")
    if not args.run:
        if args.json:
            print_json(
                {
                    "command": printed,
                    "argv": invocation(record, args.python or "python"),
                    "redacted": redacted(record),
                }
            )
        else:
            print(lines_text([printed]))
        if redacted(record):
            warn("the command holds redacted values; supply them to reproduce the run")
        return EXIT_OK
    if redacted(record):
        warn(f"cannot replay {record.source}: its command holds redacted values")
        return EXIT_USAGE
    if record.embedded or record.root is None:
        warn(f"cannot replay {record.source}: replay needs the run's sidecar and project root")
        return EXIT_USAGE
    argv = runnable(record, args.python or sys.executable, args.force)
    if isinstance(argv, str):
        warn(f"cannot replay {record.source}: {argv}")
        return EXIT_USAGE
    shown = shlex.join([*_environment_words(record), *argv])
    print(lines_text([f"$ cd {shlex.quote(str(record.root))} && {shown}"]), file=sys.stderr)
    env = dict(os.environ)
    wanted = restored(record)
    withheld = sorted(name for name in wanted if changes_what_runs(name))
    if withheld:
        warn(
            f"not restored: {', '.join(withheld)} (they change which code runs or where its "
            "evidence goes; set them yourself to replay with them)"
        )
    for name, value in wanted.items():
        if name in withheld:
            continue
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    if any(v == REDACTED for v in recorded_variables(record.block.get("environment")).values()):
        warn("the record's environment holds redacted values: those are left as they are here")

    with tempfile.TemporaryDirectory(prefix="provenance-replay-") as folder:
        log = Path(folder) / "records"
        log.touch()
        done = subprocess.run(
            argv,
            cwd=record.root,
            env={**env, RECORD_LOG: str(log)},
            stdin=subprocess.DEVNULL,
            stdout=2,  # the script's own output, kept off the result on stdout
            check=False,
        )
        chosen = _judged(record, _written(log))
    problems = [] if done.returncode == 0 else [f"it exited {done.returncode}"]
    new = None
    if chosen is None:
        problems.append("it wrote no record")
    else:
        try:
            new = load(chosen, record.root)
        except UnreadableRecord as err:
            problems.append(f"its record cannot be read: {err}")
    differences = compare(record, new) if new is not None else []
    if new is not None:
        problems += _not_rebuilt(record, new)
    if differences:
        problems.append(f"{len(differences)} difference(s)")
    if args.json:
        print_json(
            {
                "command": printed,
                "argv": argv,
                "exit_code": done.returncode,
                "record": str(chosen) if chosen is not None else None,
                "reproduced": not problems,
                "problems": problems,
                "differences": differences,
            }
        )
    else:
        wrote = f"new record {chosen}" if chosen is not None else "it wrote no record"
        lines = [f"replayed: exit {done.returncode}; {wrote}"]
        print(lines_text(lines))
        if differences:
            print(render_differences(differences))
        verdict = "no differences" if not problems else "; ".join(problems)
        print(lines_text([f"{'reproduced' if not problems else 'not reproduced'}: {verdict}"]))
    return EXIT_OK if not problems else EXIT_FINDING
