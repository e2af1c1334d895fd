"""The model registry, ``registry.json``: ``{schema_version, models: [{id, kind, onnx, ...}]}``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ai.files import InputError, read_json_object, write_json

SCHEMA_VERSION = 1


def register(registry: Path, sidecar: dict[str, Any], onnx: Path, sidecar_path: Path) -> None:
    """Add or replace the entry of ``sidecar['id']``; paths are relative to the registry."""
    document: dict[str, Any] = {"schema_version": SCHEMA_VERSION, "models": []}
    if registry.exists():
        document = read_json_object(registry)
        if document.get("schema_version") != SCHEMA_VERSION or not isinstance(
            document.get("models"), list
        ):
            raise InputError(f"{registry}: not a version-{SCHEMA_VERSION} model registry")
    base = registry.parent.resolve()
    entry = {
        "id": sidecar["id"],
        "kind": sidecar["kind"],
        "onnx": Path(os.path.relpath(onnx.resolve(), base)).as_posix(),
        "sha256": sidecar["sha256"],
        "sidecar": Path(os.path.relpath(sidecar_path.resolve(), base)).as_posix(),
        "opset": sidecar["opset"],
    }
    models = [
        m for m in document["models"] if not (isinstance(m, dict) and m.get("id") == entry["id"])
    ]
    document["models"] = sorted([*models, entry], key=lambda m: str(m.get("id")))
    write_json(registry, document)
