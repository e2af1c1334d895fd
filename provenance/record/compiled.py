"""The sidecar's JSON Schema turned into one Python function, generated once per process.

Checking a record by interpreting the schema (jsonschema) takes about half a millisecond: most
of the time a command spends on a record it reads. This module writes, from the same schema
document, Python source that makes the same checks with plain ``isinstance`` tests, set
comparisons and loops, and compiles it once: a record is then checked in a few microseconds.

It answers only valid or not. Where it says not valid, ``provenance.record.schema`` asks
jsonschema for the error, so what is refused, and the message that says why, stay the ones
jsonschema gives; the tests check that both agree on every record they make and on generated
ones. It knows the keywords the schema uses, with the meaning Draft 2020-12 and jsonschema give
them (an integer may be written ``2.0``; ``true`` is not ``1``; a pattern is searched for, as
``re.search`` does); a schema with any other keyword is not compiled (``NotCompilable``), and
jsonschema then checks every record.
"""

from __future__ import annotations

import json
import numbers
import re
from collections.abc import Callable
from typing import Any

# Keywords that say nothing about what is valid.
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$defs", "$comment", "title", "description", "default", "examples"}
)
_TYPES = {
    "object": "isinstance({x}, dict)",
    "array": "isinstance({x}, list)",
    "string": "isinstance({x}, str)",
    "null": "{x} is None",
    "boolean": "isinstance({x}, bool)",
    "integer": "_is_integer({x})",
    "number": "_is_number({x})",
}


class NotCompilable(ValueError):
    """A schema using a keyword, or a form of one, this module does not compile."""


def _is_integer(value: Any) -> bool:
    """JSON Schema's integer, as jsonschema's Draft 2020-12 checker has it: a float with no
    fraction counts, a bool does not."""
    if type(value) is int:
        return True
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    if type(value) is int or type(value) is float:
        return True
    return not isinstance(value, bool) and isinstance(value, numbers.Number)


def _unbool(value: Any, true: object = object(), false: object = object()) -> Any:
    """``value``, but ``true`` and ``false`` stand apart from ``1`` and ``0`` (jsonschema's
    equality, for ``const`` and ``enum``)."""
    return true if value is True else false if value is False else value


class _Writer:
    """Writes one function per distinct subschema, each returning whether ``x`` is valid."""

    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs
        self.functions: dict[str, str] = {}  # by a subschema as JSON, or by its $ref
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}

    def constant(self, value: Any) -> str:
        name = f"_c{len(self.constants)}"
        self.constants[name] = value
        return name

    def function(self, schema: Any) -> str:
        key = json.dumps(schema, sort_keys=True)  # small: a $ref is not followed
        if isinstance(schema, dict) and "$ref" in schema:
            key = schema["$ref"]
            name = key.removeprefix("#/$defs/") if isinstance(key, str) else None
            if set(schema) - _ANNOTATIONS != {"$ref"} or name is None or name not in self.defs:
                raise NotCompilable(f"the reference {key!r}")  # only to a $def, alone
            schema = self.defs[name]
        found = self.functions.get(key)
        if found is not None:
            return found
        name = self.functions[key] = f"_v{len(self.functions)}"
        body = self.body(schema)
        self.lines += [f"def {name}(x):", *(f"    {line}" for line in body), ""]
        return name

    def body(self, schema: Any) -> list[str]:
        if schema is True:
            return ["return True"]
        if schema is False:
            return ["return False"]
        if not isinstance(schema, dict):
            raise NotCompilable(f"a schema that is a {type(schema).__name__}")
        unknown = set(schema) - _ANNOTATIONS - _KEYWORDS
        if unknown:
            raise NotCompilable(f"the keyword {sorted(unknown)[0]!r}")
        out: list[str] = []
        if "type" in schema:
            types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not types or any(t not in _TYPES for t in types):
                raise NotCompilable(f"the type {schema['type']!r}")
            test = " or ".join(_TYPES[t].format(x="x") for t in types)
            out.append(f"if not ({test}): return False")
        if "const" in schema:
            out.append(f"if not {self.equal_test('x', schema['const'])}: return False")
        if "enum" in schema:
            enum = schema["enum"]
            if not isinstance(enum, list):
                raise NotCompilable("an enum that is not a list")
            tests = " or ".join(self.equal_test("x", each) for each in enum) or "False"
            out.append(f"if not ({tests}): return False")
        out += self.object_checks(schema)
        out += self.array_checks(schema)
        out += self.scalar_checks(schema)
        out += self.combinations(schema)
        out.append("return True")
        return out

    def equal_test(self, x: str, value: Any) -> str:
        if isinstance(value, str):
            return f"({x} == {self.constant(value)})"
        if value is True or value is False or value is None:
            return f"({x} is {value!r})"
        if type(value) in (int, float):
            return f"(_unbool({x}) == {self.constant(value)})"
        raise NotCompilable(f"the constant {value!r}")

    def object_checks(self, schema: dict[str, Any]) -> list[str]:
        inner: list[str] = []
        required = schema.get("required")
        if required is not None:
            if not isinstance(required, list) or not all(isinstance(k, str) for k in required):
                raise NotCompilable("a required that is not a list of names")
            for key in required:
                inner.append(f"if {self.constant(key)} not in x: return False")
        properties = schema.get("properties", {})
        if not isinstance(properties, dict):
            raise NotCompilable("properties that are not an object")
        for key, subschema in properties.items():
            if subschema is True:
                continue
            k = self.constant(key)
            inner.append(f"if {k} in x and not {self.function(subschema)}(x[{k}]): return False")
        if "additionalProperties" in schema:
            extra = schema["additionalProperties"]
            known = self.constant(frozenset(properties))
            if extra is False:
                inner.append(f"if not {known}.issuperset(x): return False")
            elif extra is not True:
                check = self.function(extra)
                inner.append("for k, v in x.items():")
                inner.append(f"    if k not in {known} and not {check}(v): return False")
        return ["if isinstance(x, dict):", *(f"    {line}" for line in inner)] if inner else []

    def array_checks(self, schema: dict[str, Any]) -> list[str]:
        inner: list[str] = []
        if "minItems" in schema:
            inner.append(f"if len(x) < {self.number(schema['minItems'])}: return False")
        if "items" in schema and schema["items"] is not True:
            if schema["items"] is False:
                inner.append("if x: return False")
            else:
                check = self.function(schema["items"])
                inner.append("for v in x:")
                inner.append(f"    if not {check}(v): return False")
        return ["if isinstance(x, list):", *(f"    {line}" for line in inner)] if inner else []

    def scalar_checks(self, schema: dict[str, Any]) -> list[str]:
        out: list[str] = []
        if "minLength" in schema:
            least = self.number(schema["minLength"])
            out.append(f"if isinstance(x, str) and len(x) < {least}: return False")
        if "pattern" in schema:
            pattern = schema["pattern"]
            if not isinstance(pattern, str):
                raise NotCompilable("a pattern that is not a text")
            search = self.constant(re.compile(pattern).search)
            out.append(f"if isinstance(x, str) and not {search}(x): return False")
        if "minimum" in schema:
            least = self.number(schema["minimum"])
            out.append(f"if _is_number(x) and x < {least}: return False")
        return out

    def combinations(self, schema: dict[str, Any]) -> list[str]:
        out: list[str] = []
        for subschema in self.schemas(schema, "allOf"):
            out.append(f"if not {self.function(subschema)}(x): return False")
        one_of = self.schemas(schema, "oneOf")
        if one_of:  # exactly one: every one is tried
            valid = " + ".join(f"{self.function(s)}(x)" for s in one_of)
            out.append(f"if {valid} != 1: return False")
        if "not" in schema:
            out.append(f"if {self.function(schema['not'])}(x): return False")
        if "if" in schema:
            test = f"{self.function(schema['if'])}(x)"
            then = self.function(schema["then"]) if "then" in schema else None
            otherwise = self.function(schema["else"]) if "else" in schema else None
            if then is not None and otherwise is not None:
                out.append(f"if not ({then}(x) if {test} else {otherwise}(x)): return False")
            elif then is not None:
                out.append(f"if {test} and not {then}(x): return False")
            elif otherwise is not None:
                out.append(f"if not {test} and not {otherwise}(x): return False")
        return out

    def schemas(self, schema: dict[str, Any], keyword: str) -> list[Any]:
        found = schema.get(keyword, [])
        if not isinstance(found, list) or (keyword in schema and not found):
            raise NotCompilable(f"a {keyword} that is not a non-empty list")
        return found

    def number(self, value: Any) -> str:
        if type(value) is not int or value < 0:
            raise NotCompilable(f"the bound {value!r}")
        return repr(value)


_KEYWORDS = frozenset(
    {
        "type",
        "const",
        "enum",
        "required",
        "properties",
        "additionalProperties",
        "items",
        "minItems",
        "minLength",
        "pattern",
        "minimum",
        "allOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
    }
)


def compile_schema(schema: Any) -> tuple[Callable[[Any], bool], str]:
    """A function telling whether a document is valid under ``schema``, and its source;
    ``NotCompilable`` for a schema using anything else than the keywords above, or a ``$ref``
    to anything but one of its own ``$defs`` (each of which becomes one function)."""
    defs = schema.get("$defs", {}) if isinstance(schema, dict) else {}
    writer = _Writer(defs if isinstance(defs, dict) else {})
    top = writer.function(schema)
    source = "\n".join(writer.lines)
    namespace: dict[str, Any] = {
        "_is_integer": _is_integer,
        "_is_number": _is_number,
        "_unbool": _unbool,
        **writer.constants,
    }
    exec(compile(source, "<provenance sidecar schema>", "exec"), namespace)
    check: Callable[[Any], bool] = namespace[top]
    return check, source
