"""Reading the sidecars a user points the ``provenance`` command at.

A sidecar is untrusted input: it may be truncated, huge, nested without end, or name paths that
are FIFOs, devices or gone. Reading one either gives a ``Record`` that passed the schema, or
raises ``UnreadableRecord`` with a message that says which file and why.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.errors import ProvenanceError
from provenance.outcome import FAILED, INTERRUPTED
from provenance.paths import find_root
from provenance.schema import validate
from provenance.sidecar import PREVIOUS, is_sidecar_name, sidecar_path_for

MAX_RECORD_BYTES = 64 * 1024 * 1024
# Side records a failed run leaves beside a sidecar (docs/sidecar.md), newest kind first.
SIDE_RECORDS = (FAILED, INTERRUPTED, PREVIOUS)


class UnreadableRecord(ProvenanceError):
    """No usable record: the file is missing, not JSON, too large or not a valid sidecar."""


@dataclass(frozen=True)
class Record:
    """One run's record: the sidecar document and where its relative paths resolve."""

    source: Path  # the file it was read from
    document: dict[str, Any]
    root: Path | None
    embedded: bool = False  # read from an artifact that embeds the block, not a sidecar

    @property
    def block(self) -> dict[str, Any]:
        block: dict[str, Any] = self.document["run_provenance"]
        return block

    @property
    def fields(self) -> dict[str, Any]:
        """What the script recorded beside the block."""
        return {k: v for k, v in self.document.items() if k not in ("schema", "run_provenance")}

    def resolve(self, shown: str) -> Path:
        """The path on disk of a path as the record shows it (relative ones from the root)."""
        path = Path(shown)
        if path.is_absolute() or self.root is None:
            return path
        return self.root / path


def locate(given: str | os.PathLike[str]) -> Path:
    """The record for an artifact or a sidecar path: ``X.manifest.json`` for an artifact ``X``."""
    path = Path(given)
    if is_sidecar_name(path.name):
        return path
    sidecar = sidecar_path_for(path)
    if sidecar.exists() or not path.is_file():
        return sidecar
    return path  # an artifact with no sidecar beside it may embed the block itself


def load(given: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> Record:
    """Read and check the record of ``given``; relative paths resolve from ``root``, else from
    the project root of the record (see ``_root_for``)."""
    source = locate(given)
    document = read_json(source)
    embedded = False
    if not is_sidecar_name(source.name):
        block = document.get("run_provenance") if isinstance(document, dict) else None
        if not isinstance(block, dict):
            raise UnreadableRecord(
                f"{given}: no sidecar beside it ({sidecar_path_for(source).name}) and no "
                "run_provenance inside it"
            )
        document = {"schema": "provenance.manifest/v1", "run_provenance": block}
        embedded = True
    try:
        validate(document)
    except ProvenanceError as err:
        raise UnreadableRecord(f"{source}: {err}") from None
    except RecursionError:
        raise UnreadableRecord(f"{source}: nested too deeply to be a sidecar") from None
    base = Path(os.path.abspath(root)) if root is not None else _root_for(source, document)
    return Record(source, document, base, embedded)


def _root_for(source: Path, document: dict[str, Any]) -> Path | None:
    """The project root the record's relative paths are relative to. A record does not say it
    (that would tie its bytes to one checkout), so: the project above the record, else the one
    above the working folder, whichever holds the record's entrypoint."""
    entrypoint = Path(document["run_provenance"]["entrypoint"]["path"])
    candidates = [find_root(source.parent), find_root(Path.cwd())]
    if entrypoint.is_absolute():
        return candidates[0]
    for candidate in candidates:
        if candidate is not None and (candidate / entrypoint).is_file():
            return candidate
    return next((c for c in candidates if c is not None), None)


def read_json(path: Path) -> Any:
    """The JSON in ``path``, read as untrusted input (see the module's docstring)."""
    try:
        # Non-blocking: a FIFO named as a sidecar must not hang the command waiting for a writer.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnreadableRecord(f"{path}: not a regular file")
            data = handle.read(MAX_RECORD_BYTES + 1)
    except FileNotFoundError:
        raise UnreadableRecord(f"{path}: no such file") from None
    except OSError as err:
        raise UnreadableRecord(f"{path}: cannot be read: {err.strerror or err}") from None
    if len(data) > MAX_RECORD_BYTES:
        raise UnreadableRecord(f"{path}: over {MAX_RECORD_BYTES // 2**20} MiB: not a sidecar")
    try:
        return json.loads(data)
    except RecursionError:
        raise UnreadableRecord(f"{path}: nested too deeply to be a sidecar") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UnreadableRecord(f"{path}: not JSON: {err}") from None
