"""Argument normalization: strict, deterministic JSON from whatever argparse produced."""

from __future__ import annotations

import enum
import json
import math
from pathlib import Path, PurePosixPath

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from provenance.normalize import display_path, normalize, tagged_repr


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Opaque:
    pass


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
