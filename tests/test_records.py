"""Reading records as hostile input: one reader, with limits, and paths kept inside the root."""

from __future__ import annotations

import json
import os

import pytest

from provenance.records import (
    MAX_DECLARED,
    MAX_DEPTH,
    UnreadableRecord,
    load,
    read_json,
)
from tests.handmade import document, project, write

GOOD = json.dumps(document(), indent=2)


class TestReadJson:
    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (GOOD.replace('"exit_code": 0', '"exit_code": NaN'), "NaN"),
            (GOOD.replace('"exit_code": 0', '"exit_code": -Infinity'), "-Infinity"),
            (GOOD.replace('"exit_code": 0', '"exit_code": 1e999'), "out of range"),
            (GOOD.replace('"exit_code": 0', '"exit_code": ' + "9" * 5000), "digits"),
            (GOOD.replace('"exit_code": 0', '"exit_code": ' + "9" * 100), "100 digits"),
            (GOOD.replace('"argv": [],', '"argv": [], "argv": ["x"],'), "duplicate key 'argv'"),
            ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested deeper"),
            ("[" * 100_000 + "]" * 100_000, "nested"),
            ("[" + "[]," * 3_000_000 + "[]]", "values"),
            (GOOD[: len(GOOD) // 2], "not JSON"),
        ],
        ids=[
            "nan",
            "infinity",
            "huge-float",
            "huge-int",
            "long-int",
            "duplicate",
            "deep",
            "deeper",
            "many",
            "cut",
        ],
    )
    def test_refuses_what_no_writer_of_records_produces(self, tmp_path, text, message):
        path = tmp_path / "x.manifest.json"
        path.write_text(text)
        with pytest.raises(UnreadableRecord, match=message):
            read_json(path)

    def test_refuses_bytes_that_are_not_utf8_even_when_json_could_guess(self, tmp_path):
        path = tmp_path / "x.manifest.json"
        path.write_bytes(GOOD.encode("utf-16"))
        with pytest.raises(UnreadableRecord, match="not UTF-8"):
            read_json(path)

    def test_refuses_a_record_declaring_more_paths_than_can_be_checked_quickly(self, tmp_path):
        entry = {"path": "x", "exists": False}
        doc = document(inputs={"many": [entry] * (MAX_DECLARED + 1)})
        with pytest.raises(UnreadableRecord, match="declares over"):
            load(write(tmp_path / "x.manifest.json", doc))

    def test_keeps_what_a_writer_may_produce(self, tmp_path):
        doc = document(fields={"name": "caf\udce9", "nul": "a\u0000b", "big": 2**64, "x": 0.5})
        path = write(tmp_path / "x.manifest.json", doc)
        assert read_json(path) == doc


class TestPlaces:
    def test_a_path_outside_the_root_is_refused_unless_asked(self, tmp_path):
        root = project(tmp_path / "proj")
        (tmp_path / "secret.txt").write_text("secret")
        (root / "inside.txt").write_text("inside")
        os.symlink(tmp_path / "secret.txt", root / "link")
        os.symlink(root / "loop2", root / "loop1")
        os.symlink(root / "loop1", root / "loop2")
        record = load(write(root / "a.manifest.json", document()))
        boundary = record.boundary()
        for shown in ("../secret.txt", str(tmp_path / "secret.txt"), "link", "/"):
            place = record.place(shown, boundary)
            assert place.path is None, shown
            assert "outside the project root" in (place.refused or ""), shown
        assert record.place("inside.txt", boundary).path == (root / "inside.txt").resolve()
        os.symlink(root / "inside.txt", tmp_path / "into-root")
        assert record.place(str(tmp_path / "into-root"), boundary).path is None  # not followed
        loop = record.place("loop1", boundary)
        assert loop.refused is None  # not followed, so not refused: stat-ing it says why
        anywhere = record.boundary(outside_root=True)
        assert record.place("link", anywhere).path == (tmp_path / "secret.txt").resolve()

    @pytest.mark.parametrize("shown", ["a\u0000b", "\ud800", "", "x" * 5000])
    def test_unusable_paths_are_refused_with_why(self, tmp_path, shown):
        root = project(tmp_path / "proj")
        record = load(write(root / "a.manifest.json", document()))
        place = record.place(shown, record.boundary(outside_root=True))
        assert place.path is None
        assert place.refused
