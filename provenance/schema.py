"""The JSON Schema of the sidecar, shipped in the package, and validation against it."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from provenance.errors import ProvenanceError

SCHEMA_RESOURCE = "manifest-v1.schema.json"


@cache
def _schema_text() -> str:
    return resources.files("provenance").joinpath("schemas", SCHEMA_RESOURCE).read_text("utf-8")


def load_schema() -> dict[str, Any]:
    """A fresh copy of the manifest's JSON Schema (draft 2020-12)."""
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


def validate(document: Any) -> None:
    """Raise ``ProvenanceError`` unless ``document`` is a valid v1 sidecar (needs jsonschema)."""
    try:
        import jsonschema
    except ImportError as err:
        raise ProvenanceError("validating a sidecar needs the jsonschema package") from err
    validator = jsonschema.Draft202012Validator(load_schema())
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise ProvenanceError(f"not a valid provenance sidecar at {where}: {first.message}")
