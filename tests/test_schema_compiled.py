"""The schema compiled into one function accepts and refuses exactly what jsonschema does.

Documents are generated from the schema itself (every branch of every ``oneOf``, every optional
field), then mutated: values replaced by ones of the wrong type, or that only look right (``2.0``
for an integer, ``true`` for ``1``, a digest followed by a newline), keys deleted and added. The
reference is jsonschema with the schema as shipped, ``$ref`` and all.
"""

from __future__ import annotations

import copy
import json
import random
import re
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provenance import ProvenanceError, load_schema, validate
from provenance.record import schema as schema_module
from provenance.record.compiled import NotCompilable, compile_schema
from tests.handmade import document

HEX = "0123456789abcdef" * 4
REFERENCE = jsonschema.Draft202012Validator(load_schema())
COMPILED = schema_module._compiled()
# Values that are of the wrong type somewhere, or only look like what the schema wants.
TRICKY: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    1.0,
    2.0,
    -0.0,
    1.5,
    -1.5,
    10**30,
    "",
    "x",
    HEX,
    HEX + "\n",
    HEX.upper(),
    HEX[:-1],
    "a" * 40,
    "a" * 40 + "\n",
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00.5Z\n",
    "succeeded",
    "running",
    "file",
    "directory",
    "other",
    "git",
    "program",
    "inputs",
    "blake3",
    "provenance.run/v1",
    "provenance.manifest/v1",
    [],
    [1],
    [None],
    ["x"],
    [HEX],
    {},
    {"path": "x"},
    {"path": "x", "exists": False},
    {"path": "x", "pending": True},
    {"type": "E", "message": "m"},
    {"passed": True},
]


def test_the_shipped_schema_compiles():
    assert COMPILED is not None  # else every record would be checked by jsonschema alone


def _nodes(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in ``value``."""
    found, stack = [], [value]
    while stack:
        item = stack.pop()
        keys = list(item) if isinstance(item, dict) else range(len(item))
        for key in keys:
            found.append((item, key))
            if isinstance(item[key], (dict, list)):
                stack.append(item[key])
    return found


def _instance(draw: Any, schema: Any, depth: int = 0) -> Any:
    """A value that follows ``schema`` (the inlined one) most of the time: required and some
    optional properties, one branch of each ``oneOf``."""
    if schema is True or not isinstance(schema, dict):
        return draw(st.sampled_from(TRICKY))
    if "oneOf" in schema:
        return _instance(draw, draw(st.sampled_from(schema["oneOf"])), depth)
    if "allOf" in schema:
        merged: dict[str, Any] = copy.deepcopy(schema["allOf"][0])
        for other in schema["allOf"][1:]:
            merged["required"] = [*merged.get("required", []), *other.get("required", [])]
        return _instance(draw, merged, depth)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return draw(st.sampled_from(schema["enum"]))
    types = schema.get("type", "object")
    kind = draw(st.sampled_from(types)) if isinstance(types, list) else types
    if kind == "null":
        return None
    if kind == "boolean":
        return draw(st.booleans())
    if kind == "integer":
        return draw(st.integers(min_value=schema.get("minimum", -5), max_value=2**40))
    if kind == "number":
        least = schema.get("minimum", -1e6)
        return draw(st.floats(min_value=least, max_value=1e6, allow_nan=False))
    if kind == "string":
        if "pattern" in schema:
            return draw(st.from_regex(schema["pattern"], fullmatch=True))
        return draw(st.text(min_size=schema.get("minLength", 0), max_size=8))
    if kind == "array":
        items = schema.get("items", True)
        size = draw(st.integers(min_value=schema.get("minItems", 0), max_value=3))
        return [_instance(draw, items, depth + 1) for _ in range(size)]
    found: dict[str, Any] = {}
    properties = schema.get("properties", {})
    for key, subschema in properties.items():
        if key in schema.get("required", []) or (depth < 6 and draw(st.booleans())):
            found[key] = _instance(draw, subschema, depth + 1)
    extra = schema.get("additionalProperties", True)
    if extra is not False and depth < 6:
        for key in draw(st.lists(st.sampled_from(["a", "b", "path", "x y"]), max_size=2)):
            if key not in properties:
                found[key] = _instance(draw, extra, depth + 1)
    return found


@st.composite
def documents(draw: Any) -> Any:
    """A document made from the schema, then mutated a few times."""
    doc = _instance(draw, schema_module._inlined_schema())
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        nodes = _nodes(doc)
        if not nodes:
            break
        container, key = draw(st.sampled_from(nodes))
        how = draw(st.integers(min_value=0, max_value=3))
        if how == 0:
            del container[key]
        elif how == 1 and isinstance(container, dict):
            container[draw(st.sampled_from(["extra", "error", "errors", "kind"]))] = draw(
                st.sampled_from(TRICKY)
            )
        else:
            container[key] = copy.deepcopy(draw(st.sampled_from(TRICKY)))
    return doc


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(documents())
def test_generated_documents_are_judged_as_jsonschema_judges_them(doc):
    assert COMPILED is not None
    assert COMPILED(doc) == REFERENCE.is_valid(doc), next(REFERENCE.iter_errors(doc), None)
    if REFERENCE.is_valid(doc):
        validate(doc)
    else:
        with pytest.raises(ProvenanceError, match=r"^not a valid provenance sidecar at [^\n]*$"):
            validate(doc)


def test_generated_documents_reach_both_answers():
    """The generator above is no use if it only makes valid, or only invalid, documents."""
    seen = {True: 0, False: 0}

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(documents())
    def count(doc):
        seen[REFERENCE.is_valid(doc)] += 1

    count()
    assert seen[True] > 15, seen
    assert seen[False] > 15, seen


@pytest.mark.parametrize("seed", range(2))
def test_every_value_swapped_in_a_full_record(seed):
    """Each place of a record holding every kind of entry, given each tricky value in turn."""
    rng = random.Random(seed)
    entries = {
        "missing": {"path": "m", "exists": False},
        "file": {
            "path": "f",
            "exists": True,
            "kind": "file",
            "size_bytes": 3,
            "blake3": HEX,
            "sha256": HEX,
            "written_by_ranks": [0],
        },
        "dir": {
            "path": "d",
            "exists": True,
            "kind": "directory",
            "blake3": HEX,
            "file_count": 1,
            "size_bytes": 3,
        },
        "other": {"path": "o", "exists": True, "kind": "other", "error": "a FIFO"},
        "list": [{"path": "p", "pending": True}],
        "none": None,
    }
    doc = document(inputs=entries, outputs={"e": {**entries["file"], "written_by_run": True}})
    block = doc["run_provenance"]
    block["revision"] = {
        "vcs": "git",
        "commit": "a" * 40,
        "dirty": True,
        "diff_blake3": HEX,
        "entrypoint_tracked": True,
    }
    block["volatile"] = {"started_at": "2026-01-01T00:00:00Z", "duration_seconds": 1.5}
    block["seeds"] = [{"source": "random.seed", "value": [1, 2]}]
    block["launch"] = {
        "launcher": "torchrun",
        "world_size": 2,
        "ranks": [
            {"rank": 0, "status": "succeeded", "exit_code": 0, "error": None},
            {"rank": 1, "status": "running", "exit_code": None, "error": None},
        ],
    }
    assert REFERENCE.is_valid(doc)
    assert COMPILED is not None
    assert COMPILED(doc)
    places = _nodes(doc)
    for container, key in rng.sample(places, min(len(places), 25)):
        for value in TRICKY:
            changed = copy.deepcopy(doc)
            # The same place in the copy: walk the same path of keys.
            target = _same_place(doc, changed, container)
            target[key] = copy.deepcopy(value)
            assert COMPILED(changed) == REFERENCE.is_valid(changed), (key, value)


def _same_place(original: Any, copied: Any, container: Any) -> Any:
    stack = [(original, copied)]
    while stack:
        mine, theirs = stack.pop()
        if mine is container:
            return theirs
        keys = list(mine) if isinstance(mine, dict) else range(len(mine))
        stack.extend((mine[k], theirs[k]) for k in keys if isinstance(mine[k], (dict, list)))
    raise AssertionError("not found")


# The keywords' meanings where Python's and JSON Schema's differ, one schema at a time.
SMALL_SCHEMAS = [
    {"type": "integer"},
    {"type": "number", "minimum": 0},
    {"type": ["integer", "null"]},
    {"const": True},
    {"const": False},
    {"const": None},
    {"const": 1},
    {"const": 1.0},
    {"enum": ["a", True, None, 0]},
    {"type": "string", "pattern": "^[0-9a-f]{4}$"},
    {"type": "string", "minLength": 2},
    {"type": "array", "minItems": 2, "items": {"type": "integer"}},
    {"items": False},
    {"oneOf": [{"type": "integer"}, {"type": "number"}]},
    {"oneOf": [{"type": "string"}, {"const": "a"}, {"type": "null"}]},
    {"not": {"required": ["a"]}},
    {"if": {"properties": {"a": {"const": 1}}}, "then": {"required": ["b"]}},
    {"if": {"required": ["a"]}, "else": {"required": ["b"]}},
    {
        "if": {"properties": {"a": {"const": True}}},
        "then": {"properties": {"b": {"type": "string"}}},
        "else": {"properties": {"b": {"type": "null"}}},
    },
    {"properties": {"a": {"type": "integer"}}, "additionalProperties": False},
    {"properties": {"a": True}, "additionalProperties": {"type": "string"}},
    {"allOf": [{"required": ["a"]}, {"properties": {"a": {"minimum": 2}}}]},
    {"$defs": {"t": {"type": "array", "items": {"$ref": "#/$defs/t"}}}, "$ref": "#/$defs/t"},
    True,
    False,
]
SMALL_VALUES: list[Any] = [
    *TRICKY,
    "ab12",
    "ab12\n",
    "AB12",
    "a",
    [1, 2],
    [1, 2.0],
    [1, True],
    [[]],
    [[], [[]]],
    [[[1]]],
    {"a": 1},
    {"a": 1.0},
    {"a": True},
    {"a": 1, "b": "x"},
    {"a": True, "b": None},
    {"a": True, "b": "x"},
    {"b": 3},
    {"a": 3, "c": "x"},
    {"c": 3},
]


@pytest.mark.parametrize("schema", SMALL_SCHEMAS, ids=lambda s: json.dumps(s)[:40])
def test_each_keyword_means_what_it_means_to_jsonschema(schema):
    check, _ = compile_schema(schema)
    reference = jsonschema.Draft202012Validator(schema)
    for value in SMALL_VALUES:
        assert check(value) == reference.is_valid(value), value


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "patternProperties": {"^a": {}}},
        {"$ref": "#/$defs/x"},
        {"$defs": {"x": {}}, "properties": {"a": {"$ref": "#/$defs/x", "type": "string"}}},
        {"$defs": {"x": {}}, "items": {"$ref": "other.json#/$defs/x"}},
        {"maxLength": 3},
        {"type": "date"},
        {"minimum": 0.5},
        {"const": [1]},
        {"oneOf": []},
    ],
)
def test_what_it_does_not_know_it_does_not_compile(schema):
    with pytest.raises(NotCompilable):
        compile_schema(schema)


def test_the_compiled_source_is_plain_python():
    _, source = compile_schema(load_schema())
    assert "import" not in source
    assert "eval" not in source
    assert re.fullmatch(r"(def _v\d+\(x\):\n(    .*\n)+\n)+", source + "\n"), source[:200]
