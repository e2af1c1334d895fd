"""The ``provenance`` command: show, verify, diff, lineage, replay, schema, validate, export.

Every command takes an artifact or its sidecar. Exit codes: 0 fine, 1 a finding (drift, a
difference, an invalid record, a failed outcome where asked), 2 a usage error or unreadable input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from provenance.commands import (
    EXIT_FINDING,
    EXIT_OK,
    EXIT_USAGE,
    diff,
    export,
    lineage,
    plain,
    replay,
    show,
    verify,
)
from provenance.errors import ProvenanceError
from provenance.records import UnreadableRecord, read_json
from provenance.schema import _schema_text, validate
from provenance.sidecar import is_sidecar_name, sidecar_path_for


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
            print(f"unreadable: {err}", file=sys.stderr)
            status = max(status, EXIT_USAGE)
        except RecursionError:
            print(f"unreadable: {sidecar}: nested too deeply to be a sidecar", file=sys.stderr)
            status = max(status, EXIT_USAGE)
        except ProvenanceError as err:
            print(f"{sidecar}: invalid: {err}")
            status = max(status, EXIT_FINDING)
        else:
            print(f"{sidecar}: valid")
    return status


def build_parser() -> argparse.ArgumentParser:
    from provenance import __version__

    parser = argparse.ArgumentParser(
        prog="provenance",
        description=plain(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"provenance {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for command in (show, verify, diff, lineage, replay):
        command.register(commands)
    schema = commands.add_parser("schema", help="print the JSON Schema of the sidecar")
    schema.set_defaults(func=_cmd_schema)
    check = commands.add_parser("validate", help="check sidecars against the schema")
    check.add_argument("files", nargs="+", help="artifacts or their sidecars")
    check.set_defaults(func=_cmd_validate)
    export.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except UnreadableRecord as err:
        print(f"provenance: {err}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `provenance show x | head`
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
