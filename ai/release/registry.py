"""The model registry, ``registry.json``: ``{schema_version, models: [{id, kind, onnx, ...}]}``.

Registering writes it; validating reads it as hostile input: bounded strict JSON, and every
path it names kept inside its folder, symlinks resolved, before a byte of it is read.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ai.common.files import InputError, read_json_object, write_json
from provenance import UnreadableRecord, read_json

SCHEMA_VERSION = 1


def read_or_new(registry: Path) -> dict[str, Any]:
    """The registry to add rows to: the file's document, or an empty one where there is none."""
    document: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "models": []}
    if registry.exists():
        document = read_json_object(registry)
        if document.get("schema_version") != SCHEMA_VERSION or not isinstance(
            document.get("models"), list
        ):
            raise InputError(f"{registry}: not a version-{SCHEMA_VERSION} model registry")
    return document


def register(
    registry: Path,
    sidecar: dict[str, Any],
    onnx: Path,
    sidecar_path: Path,
    extra: dict[str, Any] | None = None,
) -> None:
    """Add or replace the entry of ``sidecar['id']``; paths are relative to the registry.

    ``extra`` adds the fields a family's rows carry beyond the common ones (never the paths).
    """
    document = read_or_new(registry)
    base = registry.parent.resolve()
    entry = {
        "id": sidecar["id"],
        "kind": sidecar["kind"],
        "onnx": Path(os.path.relpath(onnx.resolve(), base)).as_posix(),
        "sha256": sidecar["sha256"],
        "sidecar": Path(os.path.relpath(sidecar_path.resolve(), base)).as_posix(),
        "opset": sidecar["opset"],
    }
    entry.update({k: v for k, v in (extra or {}).items() if k not in ("onnx", "sidecar")})
    models = [
        m for m in document["models"] if not (isinstance(m, dict) and m.get("id") == entry["id"])
    ]
    document["models"] = sorted([*models, entry], key=lambda m: str(m.get("id")))
    write_json(registry, document)


# -- validation: every registry file is hostile input --------------------------------------------

MAX_REGISTRY_BYTES = 8 * 2**20  # thousands of entries fit in a fraction of this
MAX_SIDECAR_BYTES = 4 * 2**20
MAX_MODEL_BYTES = 4 * 2**30
MAX_SHOWN = 120  # characters of an untrusted value quoted in a verdict
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")
PASS, FAIL, SKIPPED = "pass", "fail", "skipped"


def shown(value: Any) -> str:
    """An untrusted value as a verdict quotes it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def read_document(path: Path, kind: str, limit: int) -> dict[str, Any]:
    """A JSON object read as hostile input: strict, bounded, a regular file, never blocking."""
    try:
        document = read_json(path, kind=kind, limit=limit)
    except UnreadableRecord as err:
        raise InputError(str(err)) from None
    if not isinstance(document, dict):
        raise InputError(f"{path}: not a {kind}: expected a JSON object")
    return document


def read_registry(path: Path) -> dict[str, Any]:
    return read_document(path, "model registry", MAX_REGISTRY_BYTES)


def place(base: Path, value: Any) -> Path:
    """The file a registry path names, kept inside ``base`` as written and with its symlinks
    resolved; raises ``InputError`` saying why not."""
    if not isinstance(value, str) or not value:
        raise InputError(f"not a path: {shown(value)}")
    if "\0" in value or len(value.encode("utf-8", "surrogatepass")) > 4096:
        raise InputError(f"unusable path: {shown(value)}")
    if os.path.isabs(value):
        raise InputError(f"absolute path {shown(value)}: must be relative to the registry")
    written = os.path.normpath(os.path.join(os.path.abspath(base), value))
    if not _inside(written, os.path.abspath(base)):
        raise InputError(f"{shown(value)} escapes the registry's folder")
    real = os.path.realpath(written)
    if not _inside(real, os.path.realpath(base)):
        raise InputError(f"{shown(value)} leaves the registry's folder through a symlink")
    return Path(real)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def sha256_of(path: Path, limit: int) -> tuple[str, int]:
    """The SHA-256 and size of a regular file no larger than ``limit``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # a folder, FIFO or device: never read from
            os.close(fd)
            raise InputError("not a regular file")
        with os.fdopen(fd, "rb") as handle:
            if st.st_size > limit:
                raise InputError(f"{st.st_size:,} bytes: over the {limit:,}-byte limit")
            digest = hashlib.sha256()
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except FileNotFoundError:
        raise InputError("no such file") from None
    except OSError as err:
        raise InputError(f"cannot be read: {err.strerror or err}") from None
    return digest.hexdigest(), st.st_size


def _verdict(passed: bool, detail: str) -> dict[str, str]:
    return {"verdict": PASS if passed else FAIL, "detail": detail}


SKIP = {"verdict": SKIPPED, "detail": "an earlier check failed"}


@dataclass
class EntryResult:
    checks: dict[str, dict[str, str]]
    files: list[Path]  # the entry's files that were read (for the run's inputs)

    @property
    def passed(self) -> bool:
        return all(c["verdict"] == PASS for c in self.checks.values())


def check_entry(base: Path, entry: Any, max_model_bytes: int) -> EntryResult:
    """The verdict of each check on one entry: id, ONNX file, its digest, sidecar, agreement."""
    names = ("id", "onnx", "sha256", "sidecar", "sidecar_matches")
    if not isinstance(entry, dict):
        return EntryResult({"entry": _verdict(False, f"not an object: {shown(entry)}")}, [])
    checks: dict[str, dict[str, str]] = dict.fromkeys(names, SKIP)
    files: list[Path] = []
    model_id = entry.get("id")
    ok_id = isinstance(model_id, str) and ID_PATTERN.fullmatch(model_id) is not None
    checks["id"] = _verdict(ok_id, "well formed" if ok_id else f"not a model id: {shown(model_id)}")
    digest = None
    try:
        onnx = place(base, entry.get("onnx"))
        digest, size = sha256_of(onnx, max_model_bytes)
        files.append(onnx)
        checks["onnx"] = _verdict(True, f"{size} bytes")
    except InputError as err:
        checks["onnx"] = _verdict(False, str(err))
    if digest is not None:
        recorded = entry.get("sha256")
        if not isinstance(recorded, str) or SHA256_PATTERN.fullmatch(recorded) is None:
            checks["sha256"] = _verdict(False, f"not a SHA-256: {shown(recorded)}")
        else:
            same = recorded == digest
            checks["sha256"] = _verdict(same, "matches" if same else f"the file's is {digest}")
    sidecar = None
    try:
        sidecar_path = place(base, entry.get("sidecar"))
        try:
            sidecar = read_document(sidecar_path, "model sidecar", MAX_SIDECAR_BYTES)
        except InputError as err:  # the reason, without the machine's path to the file
            raise InputError(str(err).removeprefix(f"{sidecar_path}: ")) from None
        files.append(sidecar_path)
        checks["sidecar"] = _verdict(True, "present")
    except InputError as err:
        checks["sidecar"] = _verdict(False, str(err))
    if sidecar is not None:
        wrong = [
            f"{key} {shown(sidecar.get(key))} is not {shown(want)}"
            for key, want in (
                ("id", model_id),
                ("sha256", entry.get("sha256")),
                ("onnx", PurePosixPath(str(entry.get("onnx"))).name),
            )
            if sidecar.get(key) != want
        ]
        checks["sidecar_matches"] = _verdict(not wrong, "; ".join(wrong) or "id, sha256, onnx")
    return EntryResult(checks, files)


def validate_registry(
    path: Path, document: dict[str, Any], max_model_bytes: int = MAX_MODEL_BYTES
) -> tuple[dict[str, Any], list[Path]]:
    """The validation report of a registry read by ``read_registry``, and the files it read."""
    base = path.parent
    version = document.get("schema_version")
    models = document.get("models")
    ok_version = version == SCHEMA_VERSION and not isinstance(version, bool)
    checks = {
        "schema_version": _verdict(
            ok_version, f"{shown(version)}" + ("" if ok_version else f", not {SCHEMA_VERSION}")
        ),
        "models": _verdict(
            isinstance(models, list),
            "a list" if isinstance(models, list) else f"not a list: {shown(models)}",
        ),
    }
    entries = models if isinstance(models, list) else []
    ids: list[str] = [
        e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)
    ]
    twice = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) < len(ids) else []
    checks["unique_ids"] = _verdict(
        not twice, "every id once" if not twice else "given twice: " + ", ".join(map(shown, twice))
    )
    results, files = [], []
    for index, entry in enumerate(entries):
        result = check_entry(base, entry, max_model_bytes)
        files += result.files
        model_id = entry.get("id") if isinstance(entry, dict) else None
        results.append(
            {
                "index": index,
                "id": model_id if isinstance(model_id, str) else None,
                "verdict": "PASS" if result.passed else "FAIL",
                "checks": result.checks,
            }
        )
    failed = [name for name, c in checks.items() if c["verdict"] != PASS]
    failing = [r for r in results if r["verdict"] != "PASS"]
    report = {
        "registry": path.name,
        "checks": checks,
        "models": results,
        "summary": {
            "models": len(results),
            "passed": len(results) - len(failing),
            "failed": len(failing),
            "failed_registry_checks": failed,
        },
        "verdict": "FAIL" if failed or failing else "PASS",
    }
    return report, files
