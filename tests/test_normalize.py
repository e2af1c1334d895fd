"""Argument normalization: strict, deterministic JSON from whatever argparse produced."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import io
import json
import math
import os
import subprocess
import sys
import typing
from collections import namedtuple
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import attrs
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from provenance.record.normalize import display_path, normalize, tagged_repr
from tests.conftest import ROOT


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Opaque:
    pass


@dataclasses.dataclass(frozen=True)
class Cfg:
    tags: frozenset[str]
    path: Path
    cache: dict[str, int] = dataclasses.field(default_factory=dict, repr=False)


@attrs.define
class Grid:
    sizes: set[int]
    label: str = attrs.field(default="x", repr=False)


Pair = namedtuple("Pair", ["right", "left"])


class Span(typing.NamedTuple):
    start: int
    stop: int


class TestNormalize:
    def test_paths_relative_to_root_when_under_it(self, tmp_path):
        root = tmp_path / "proj"
        assert normalize(root / "data" / "a.csv", root) == "data/a.csv"
        assert normalize(Path("/elsewhere/x"), root) == "/elsewhere/x"
        assert normalize(PurePosixPath("a/b")) == "a/b"

    def test_path_keys_are_shown_like_path_values(self, tmp_path):
        root = tmp_path / "proj"
        value = {root / "b.jsonl": "lsvq", Path("/elsewhere/a.jsonl"): "ugc", "c": 1}
        assert normalize(value, root) == {"/elsewhere/a.jsonl": "ugc", "b.jsonl": "lsvq", "c": 1}

    def test_containers(self):
        value = {"b": (1, 2), "a": {3, 1, 2}, "c": frozenset({"y", "x"})}
        out = normalize(value)
        assert list(out) == ["a", "b", "c"]
        assert out == {"a": [1, 2, 3], "b": [1, 2], "c": ["x", "y"]}

    def test_sets_of_numbers_sort_by_value(self):
        assert normalize({10, 9, 100}) == [9, 10, 100]

    def test_enums_and_numpy(self):
        assert normalize([Color.RED, Level.HIGH]) == ["red", 3]
        out = normalize([np.float32(0.5), np.int64(7), np.bool_(True), np.arange(3)])
        assert out == [0.5, 7, True, [0, 1, 2]]
        assert [type(v) for v in out[:3]] == [float, int, bool]

    def test_non_finite_floats_become_strings(self):
        assert normalize([math.nan, math.inf, -math.inf, np.float64("nan")]) == [
            "NaN",
            "Infinity",
            "-Infinity",
            "NaN",
        ]

    def test_anything_else_is_a_tagged_repr_without_address(self):
        out = normalize(Opaque())
        assert out["$type"] == "tests.test_normalize.Opaque"
        assert " at 0x" not in out["$repr"]
        assert normalize(Opaque()) == out

    def test_broken_repr_does_not_crash(self):
        class Broken:
            def __repr__(self):
                raise RuntimeError("nope")

        assert tagged_repr(Broken())["$repr"] == "<repr failed: RuntimeError>"

    def test_self_referencing_container_terminates(self):
        loop: list = []
        loop.append(loop)
        json.dumps(normalize(loop), allow_nan=False)

    def test_display_path_of_root_itself(self, tmp_path):
        assert display_path(tmp_path, tmp_path) == "."


class TestRecords:
    """Objects made of named fields are written field by field, never through their repr."""

    def test_a_dataclass_by_its_shown_fields(self, tmp_path):
        value = Cfg(frozenset({"b", "c", "a"}), tmp_path / "x.csv", {"hidden": 1})
        assert normalize(value, tmp_path) == {
            "$type": "tests.test_normalize.Cfg",
            "$fields": {"path": "x.csv", "tags": ["a", "b", "c"]},
        }

    def test_an_attrs_class_by_its_shown_fields(self):
        assert normalize(Grid({3, 1, 2})) == {
            "$type": "tests.test_normalize.Grid",
            "$fields": {"sizes": [1, 2, 3]},
        }

    def test_named_tuples_keep_their_field_names(self):
        assert normalize(Pair(2, {"y", "x"})) == {
            "$type": "tests.test_normalize.Pair",
            "$fields": {"left": ["x", "y"], "right": 2},
        }
        assert normalize(Span(0, 4))["$fields"] == {"start": 0, "stop": 4}

    def test_namespaces_by_their_attributes(self):
        nested = argparse.Namespace(stages={"train", "eval"}, inner=SimpleNamespace(k=(1, 2)))
        assert normalize(nested) == {
            "$type": "argparse.Namespace",
            "$fields": {
                "inner": {"$type": "types.SimpleNamespace", "$fields": {"k": [1, 2]}},
                "stages": ["eval", "train"],
            },
        }

    def test_records_nest_and_come_out_sorted(self):
        out = normalize(
            {"cfg": Cfg(frozenset({"z"}), Path("/d")), "n": argparse.Namespace(b=1, a=2)}
        )
        assert json.dumps(out, sort_keys=True) == json.dumps(out)
        assert list(out["n"]["$fields"]) == ["a", "b"]

    def test_a_dataclass_class_is_not_a_record(self):
        assert "$repr" in normalize(Cfg)

    def test_a_field_that_cannot_be_read_falls_back_to_the_repr(self):
        class Lazy:
            __attrs_attrs__ = (SimpleNamespace(name="value", repr=True),)

            @property
            def value(self):
                raise RuntimeError("not loaded")

        assert "$repr" in normalize(Lazy())


class TestOpenFiles:
    """Open files (argparse.FileType) by type, name and mode; never the locale's encoding."""

    def test_name_relative_to_the_root_and_mode(self, tmp_path):
        path = tmp_path / "data" / "x.csv"
        path.parent.mkdir()
        path.write_text("a\n")
        with path.open(encoding="latin-1") as latin, path.open(encoding="utf-8") as utf8:
            assert normalize(latin, tmp_path) == normalize(utf8, tmp_path)
            assert normalize(latin, tmp_path) == {
                "$type": "_io.TextIOWrapper",
                "$file": {"mode": "r", "name": "data/x.csv"},
            }
        assert "encoding" not in json.dumps(normalize(latin, tmp_path)), "closed, still the same"

    def test_binary_files_and_files_outside_the_root(self, tmp_path):
        path = tmp_path / "out.bin"
        with path.open("wb") as handle:
            out = normalize(handle, tmp_path / "elsewhere")
        assert out == {"$type": "_io.BufferedWriter", "$file": {"mode": "wb", "name": str(path)}}

    def test_stdin_and_stdout_are_a_dash(self):
        # What argparse.FileType gives for "-": the interpreter's own streams.
        assert normalize(sys.__stdin__)["$file"] == {"mode": "r", "name": "-"}
        assert normalize(sys.__stdout__)["$file"] == {"mode": "w", "name": "-"}
        assert normalize(sys.__stdin__.buffer)["$file"] == {"mode": "rb", "name": "-"}

    def test_a_file_opened_from_a_descriptor_keeps_its_number(self, tmp_path):
        read, write = os.pipe()
        os.close(write)
        with open(read, "rb") as handle:
            assert normalize(handle)["$file"] == {"mode": "rb", "name": read}

    def test_a_detached_file_does_not_crash(self):
        stream = io.TextIOWrapper(io.BytesIO(b"x"), encoding="utf-8")
        stream.detach()
        assert normalize(stream)["$file"] == {"mode": None, "name": None}


names = st.from_regex(r"[a-z_]{1,6}", fullmatch=True)
json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.builds(Path, st.text(alphabet="abc/", min_size=1)),
    lambda children: (
        st.lists(children, max_size=4)
        | st.tuples(children, children)
        | st.frozensets(st.integers() | st.text(), max_size=4)
        | st.dictionaries(st.text(max_size=5), children, max_size=4)
        | st.builds(Pair, children, children)
        | st.builds(lambda fields: SimpleNamespace(**fields), st.dictionaries(names, children))
    ),
    max_leaves=20,
)


@given(json_like)
def test_output_is_always_strict_json(value):
    text = json.dumps(normalize(value), allow_nan=False, sort_keys=True)
    assert json.loads(text) == json.loads(text)


@given(json_like)
def test_normalize_is_deterministic_and_idempotent(value):
    once = normalize(value)
    assert normalize(value) == once
    assert normalize(once) == once


@given(st.dictionaries(st.text(max_size=8), st.integers(), max_size=8))
def test_keys_come_out_sorted(mapping):
    assert list(normalize(mapping)) == sorted(mapping)


@given(st.sets(st.integers() | st.text(max_size=4), max_size=8))
def test_set_order_does_not_depend_on_insertion(items):
    forward = normalize(set(items))
    backward = normalize(set(reversed(list(items))))
    assert forward == backward
    assert sorted(forward, key=str) == sorted((normalize(i) for i in items), key=str)


class Whole(enum.Enum):
    ONE = 1
    ZERO = 0


class Written(enum.Enum):
    ONE_POINT_ZERO = 1.0
    MINUS_ZERO = -0.0


class TestEqualNumbersWrittenApart:
    """Equal numbers written apart (1 and 1.0) held in one set, as two enums' members can be:
    their order comes from how they are written, never from the set's (the hash seed's)."""

    def test_ints_before_floats_then_by_their_text(self):
        value = {Written.ONE_POINT_ZERO, Whole.ONE, Written.MINUS_ZERO, Whole.ZERO}
        assert json.dumps(normalize(value)) == "[0, -0.0, 1, 1.0]"

    def test_ints_past_the_float_range_and_precision(self):
        assert normalize({10**400, 2**53 + 1, 2.0**53, -(10**400)}) == [
            -(10**400),
            2.0**53,
            2**53 + 1,
            10**400,
        ]

    def test_a_recorded_set_is_the_same_under_every_hash_seed(self, tmp_path):
        script = tmp_path / "script.py"
        script.write_text(
            "import enum, sys\n"
            "from provenance import current_run, recorded_run\n"
            "class A(enum.Enum):\n    one = 1\n    zero = 0\n"
            "class B(enum.Enum):\n    one_point_zero = 1.0\n    minus_zero = -0.0\n"
            "@recorded_run(outputs={'out': lambda args: 'out.txt'})\n"
            "def main():\n"
            "    open('out.txt', 'w').write('x')\n"
            "    current_run().record(kinds={A.one, B.one_point_zero, A.zero, B.minus_zero})\n"
            "main()\n"
        )
        (tmp_path / "pyproject.toml").write_text('[project]\nname = "p"\n')
        written = set()
        for seed in ("0", "1", "2", "3", "4", "5"):
            done = subprocess.run(
                [sys.executable, str(script)],
                cwd=tmp_path,
                env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": seed},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            record = json.loads((tmp_path / "out.txt.manifest.json").read_text())
            assert record["kinds"] == [0, -0.0, 1, 1.0]
            written.add(json.dumps(record["kinds"]))
        assert written == {"[0, -0.0, 1, 1.0]"}
