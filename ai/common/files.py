"""Reading and writing the pipeline's files: JSONL, JSON and parquet, with clear errors.

Every writer goes through ``provenance.atomic_write``: a crash or a bad row leaves the old file
or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from provenance import atomic_write


class InputError(ValueError):
    """An input the script cannot use; the message names the file (and line) and says why."""


class UnreadableFile(InputError):
    """A file that is there but could not be read this time (an I/O error): worth a retry."""


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks; raises OSError as open() does."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_json(path: Path) -> Any:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as err:
        raise UnreadableFile(f"{path}: cannot be read: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8: {err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}:{err.lineno}: not valid JSON: {err.msg}") from None


def read_json_object(path: Path) -> dict[str, Any]:
    document = read_json(path)
    if not isinstance(document, dict):
        raise InputError(f"{path}: expected a JSON object, found {type(document).__name__}")
    return document


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, row)`` for each non-blank line; a line that is not an object raises."""
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as err:
        raise InputError(f"{path}: cannot be read: {err}") from None
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise InputError(f"{path}:{number}: not valid JSON: {err.msg}") from None
                if not isinstance(row, dict):
                    raise InputError(f"{path}:{number}: expected a JSON object per line")
                yield number, row
        except UnicodeDecodeError as err:
            raise InputError(f"{path}: not UTF-8: {err}") from None


def jsonl_bytes(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """One compact JSON object per line, keys in the row's own order, strict JSON.

    Python reads ``NaN`` and ``1e999`` from JSONL; strict JSON cannot hold them, so a
    non-finite number in a row is written as null: not available.
    """
    lines = (
        json.dumps({k: _strict(v) for k, v in row.items()}, ensure_ascii=False, allow_nan=False)
        + "\n"
        for row in rows
    )
    return "".join(lines).encode("utf-8")


def _strict(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_jsonl(path: Path, rows: Iterable[Mapping[str, Any]]) -> None:
    atomic_write(path, jsonl_bytes(rows))


def write_json(path: Path, document: Mapping[str, Any]) -> None:
    """Indented JSON, keys in the document's order, strict (no NaN), trailing newline."""
    text = json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    atomic_write(path, text.encode("utf-8"))


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN: a value that is not a finite number is written as null."""
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, pa.ArrowException) as err:
        raise InputError(f"{path}: not a readable parquet file: {err}") from None


def write_parquet(path: Path, table: pa.Table) -> None:
    """Write ``table`` whole to ``path``; the bytes depend only on the table and pyarrow."""
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    atomic_write(path, buffer.getvalue())


def require_columns(path: Path, table: pa.Table, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}")
