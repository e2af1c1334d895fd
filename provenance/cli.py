"""The ``provenance`` command: show, verify, diff, lineage, runs, replay, schema, validate, export,
attest, run, report.

Every command but runs, report, run and schema takes an artifact or its sidecar (runs and report
take folders, run a command to record, schema nothing). Exit codes: 0 fine, 1 a finding (drift,
a difference, an invalid record, a failed outcome where asked), 2 a usage error or unreadable
input; run exits as the command it records does.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from provenance.commands import (
    EXIT_FINDING,
    EXIT_OK,
    EXIT_USAGE,
    HelpFormatter,
    Parser,
    add_color,
    plain,
    style,
    warn,
)
from provenance.errors import ProvenanceError
from provenance.record.schema import _schema_text, validate
from provenance.record.sidecar import is_sidecar_name, sidecar_path_for
from provenance.records import UnreadableRecord, read_json
from provenance.text import one_line, printable


def _cmd_schema(args: argparse.Namespace) -> int:
    sys.stdout.write(_schema_text())
    return EXIT_OK


def _sidecar_of(path: Path) -> Path:
    """Accept an artifact or its sidecar."""
    return path if is_sidecar_name(path.name) else sidecar_path_for(path)


def _cmd_validate(args: argparse.Namespace) -> int:
    status = EXIT_OK
    for given in args.files:
        sidecar = _sidecar_of(Path(given))
        try:
            validate(read_json(sidecar))
        except UnreadableRecord as err:
            warn(f"unreadable: {err}")
            status = max(status, EXIT_USAGE)
        except ProvenanceError as err:
            print(f"{printable(str(sidecar))}: {style.paint('invalid')}: {one_line(str(err))}")
            status = max(status, EXIT_FINDING)
        else:
            print(f"{printable(str(sidecar))}: {style.paint('valid')}")
    return status


# Every command, in the order help lists them: a module of provenance.commands that registers
# it, or None for the two defined here.
COMMANDS = {
    "show": "show",
    "verify": "verify",
    "diff": "diff",
    "lineage": "lineage",
    "runs": "runs",
    "replay": "replay",
    "schema": None,
    "validate": None,
    "export": "export",
    "attest": "attest",
    "run": "run",
    "report": "report",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command's parser, with every command; or with ``only`` that one, which is all a
    command line naming it needs: each command's module is imported only when it is used, so
    that ``provenance runs`` does not pay for importing what ``report`` and ``attest`` need."""
    from provenance import __version__

    parser = Parser(
        prog="provenance",
        description=plain(__doc__),
        epilog="examples:\n  provenance show model.onnx\n  provenance verify model.onnx\n"
        "  provenance lineage model.onnx\n  provenance COMMAND --help",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"provenance {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        if only is not None and name != only:
            continue
        if module is not None:
            importlib.import_module(f"provenance.commands.{module}").register(commands)
        elif name == "schema":
            schema = commands.add_parser(
                "schema",
                help="print the JSON Schema of the sidecar",
                description="Print the JSON Schema (draft 2020-12) every sidecar is checked "
                "against.",
                epilog="examples:\n  provenance schema > manifest-v1.schema.json",
                formatter_class=HelpFormatter,
            )
            schema.set_defaults(func=_cmd_schema, command_parser=schema)
        else:
            check = commands.add_parser(
                "validate",
                help="check sidecars against the schema",
                description="Check each sidecar against the schema: exit 1 if one is invalid.",
                epilog="examples:\n  provenance validate runs/demo/models/*.manifest.json",
                formatter_class=HelpFormatter,
            )
            check.add_argument("files", nargs="+", help="artifacts or their sidecars")
            add_color(check)
            check.set_defaults(func=_cmd_validate, command_parser=check)
    return parser


def _command_named(argv: Sequence[str]) -> str | None:
    """The command a command line names, if it names one: its first word that is no option
    (the only options before a command, --help and --version, take no value)."""
    for word in argv:
        if word == "--":
            return None
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


@contextlib.contextmanager
def _tolerant(*streams: TextIO) -> Iterator[None]:
    """Write what the streams' encoding cannot hold as escapes, not as a UnicodeEncodeError:
    file names that are not UTF-8 (held as lone surrogates), or anything under a C locale."""
    before = [(s, s.errors) for s in streams if hasattr(s, "reconfigure")]
    for stream, _ in before:
        stream.reconfigure(errors="backslashreplace")
    try:
        yield
    finally:
        for stream, errors in before:
            stream.reconfigure(errors=errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. This is the boundary where anything a record did to a command becomes
    one line on stderr and exit 2: never a traceback."""
    with _tolerant(sys.stdout, sys.stderr):
        words = sys.argv[1:] if argv is None else argv
        parser = build_parser(_command_named(words))
        args, extra = parser.parse_known_args(argv)
        if extra:  # said by the command's own parser, with its own usage
            args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
        style.configure(getattr(args, "color", "auto"), sys.stdout)
        try:
            return int(args.func(args))
        except UnreadableRecord as err:
            warn(str(err))
        except BrokenPipeError:  # `provenance show x | head`
            return EXIT_OK
        except OSError as err:
            where = f"{err.filename}: " if err.filename else ""
            warn(f"{where}{err.strerror or err}")
        except Exception as err:  # noqa: BLE001 -- the last line of defence: no traceback, ever
            warn(f"internal error (please report it): {type(err).__name__}: {err}")
        return EXIT_USAGE


if __name__ == "__main__":
    raise SystemExit(main())
