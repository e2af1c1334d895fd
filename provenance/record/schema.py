"""The JSON Schema of the sidecar, shipped in the package, and validation against it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from functools import cache
from importlib import resources
from typing import Any

from provenance.errors import ProvenanceError
from provenance.record.compiled import NotCompilable, compile_schema

SCHEMA_RESOURCE = "manifest-v1.schema.json"


@cache
def _schema_text() -> str:
    return resources.files("provenance").joinpath("schemas", SCHEMA_RESOURCE).read_text("utf-8")


def load_schema() -> dict[str, Any]:
    """A fresh copy of the manifest's JSON Schema (draft 2020-12)."""
    schema: dict[str, Any] = json.loads(_schema_text())
    return schema


def _inlined(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with each local ``{"$ref": "#/$defs/x"}`` replaced by ``x`` itself: the same
    schema (it has no cycles), validated about twice as fast without reference lookups."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if len(node) == 1 and isinstance(ref, str) and ref.removeprefix("#/$defs/") in defs:
            return _inlined(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: v if k == "$defs" else _inlined(v, defs) for k, v in node.items()}
    if isinstance(node, list):
        return [_inlined(v, defs) for v in node]
    return node


def _inlined_schema() -> Any:
    schema = load_schema()
    return _inlined(schema, schema.get("$defs", {}))


@cache
def _compiled() -> Callable[[Any], bool] | None:
    """The schema as one generated function (``provenance.record.compiled``), built once."""
    try:
        return compile_schema(load_schema())[0]
    except NotCompilable:  # a keyword it does not know: jsonschema checks every record
        return None


def _extra_keys(instance: dict[str, Any], schema: dict[str, Any]) -> Iterator[str]:
    """The keys ``additionalProperties`` applies to, in the order the document holds them."""
    properties = schema.get("properties", {})
    patterns = "|".join(schema.get("patternProperties", {}))
    for key in instance:
        if key not in properties and not (patterns and re.search(patterns, key)):
            yield key


@cache
def _validator() -> Any:
    """jsonschema's Draft 2020-12 validator, but the entries ``additionalProperties`` checks
    are taken in document order: jsonschema puts them in a set, so which of two bad entries it
    reported first changed with the hash seed, and so did the command's message."""
    try:
        import jsonschema
    except ImportError as err:
        raise ProvenanceError("validating a sidecar needs the jsonschema package") from err
    draft = jsonschema.Draft202012Validator
    keyword = draft.VALIDATORS["additionalProperties"]

    def additional(validator: Any, extra: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if not (validator.is_type(extra, "object") and validator.is_type(instance, "object")):
            yield from keyword(validator, extra, instance, schema)  # it sorts the keys it names
            return
        for key in _extra_keys(instance, schema):
            yield from validator.descend(instance[key], extra, path=key)

    ordered = jsonschema.validators.extend(draft, {"additionalProperties": additional})
    return ordered(_inlined_schema())


def validate(document: Any) -> None:
    """Raise ``ProvenanceError`` unless ``document`` is a valid v1 sidecar (needs jsonschema
    to say why it is not)."""
    compiled = _compiled()
    if compiled is not None and compiled(document):
        return
    # The first error found, not the first of all: a hostile record can hold millions of them.
    first = next(iter(_validator().iter_errors(document)), None)
    if first is not None:
        where = "/".join(str(p) for p in first.absolute_path) or "(top level)"
        raise ProvenanceError(f"not a valid provenance sidecar at {where}: {first.message}")
