"""Canonical bytes, atomic writes, embedding, placement of failed runs' records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from provenance.sidecar import (
    atomic_write,
    canonical_bytes,
    embedded_bytes,
    is_sidecar_name,
    place,
    read_json_object,
    sidecar_path_for,
    write_placed,
)


def test_canonical_bytes():
    assert canonical_bytes({"b": 1, "a": "é"}) == '{\n  "a": "é",\n  "b": 1\n}\n'.encode()
    with pytest.raises(ValueError, match="not JSON compliant"):
        canonical_bytes({"x": float("nan")})


def test_undecodable_file_names_stay_valid_json():
    name = os.fsdecode(b"clip_\xff.bin")
    raw = canonical_bytes({"path": name, "note": "é"})
    assert b"\\udcff" in raw
    assert os.fsencode(json.loads(raw)["path"]) == b"clip_\xff.bin"
    assert json.loads(raw)["note"] == "é"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("m.json.manifest.json", True),
        ("m.json.manifest.failed.json", True),
        ("m.json.manifest.previous.json", True),
        ("manifest.json", False),
        ("model.json", False),
        ("m.manifest.jsonl", False),
    ],
)
def test_is_sidecar_name(name, expected):
    assert is_sidecar_name(name) is expected


def test_sidecar_path_for():
    assert sidecar_path_for("out/model.json") == Path("out/model.json.manifest.json")


class TestAtomicWrite:
    def test_creates_parents_and_replaces(self, tmp_path):
        target = tmp_path / "a" / "b" / "f.json"
        atomic_write(target, b"one")
        atomic_write(target, b"two")
        assert target.read_bytes() == b"two"
        assert os.listdir(target.parent) == ["f.json"]

    def test_a_failed_rename_leaves_the_old_file_and_no_temp(self, tmp_path, monkeypatch):
        target = tmp_path / "f.json"
        target.write_bytes(b"old")

        def broken_replace(src, dst):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "replace", broken_replace)
        with pytest.raises(OSError, match="No space left"):
            atomic_write(target, b"new")
        assert target.read_bytes() == b"old"
        assert os.listdir(tmp_path) == ["f.json"]

    def test_keeps_the_mode_of_the_file_it_replaces(self, tmp_path):
        target = tmp_path / "f"
        target.write_bytes(b"")
        target.chmod(0o640)
        atomic_write(target, b"x")
        assert target.stat().st_mode & 0o777 == 0o640


class TestEmbed:
    def test_keeps_the_documents_own_order_and_puts_the_block_last(self):
        raw = embedded_bytes({"z": 1, "a": 2, "run_provenance": "stale"}, {"b": 1, "a": 2})
        document = json.loads(raw)
        assert list(document) == ["z", "a", "run_provenance"]
        assert list(document["run_provenance"]) == ["a", "b"]

    def test_read_json_object(self, tmp_path):
        (tmp_path / "list.json").write_text("[1]")
        (tmp_path / "bad.json").write_text("{")
        (tmp_path / "ok.json").write_text('{"k": 1}')
        assert read_json_object(tmp_path / "list.json") is None
        assert read_json_object(tmp_path / "bad.json") is None
        assert read_json_object(tmp_path / "ok.json") == (b'{"k": 1}', {"k": 1})


class TestPlace:
    def test_success_or_first_run_takes_the_usual_path(self, tmp_path):
        target = tmp_path / "m.json.manifest.json"
        assert place(target, succeeded=False, status="failed", rewrote_output=False).path == target
        target.write_text("{}")
        assert place(target, succeeded=True, status="succeeded", rewrote_output=True) == (
            place(target, succeeded=True, status="succeeded", rewrote_output=False)
        )

    def test_failed_run_goes_beside_an_earlier_record(self, tmp_path):
        target = tmp_path / "m.json.manifest.json"
        target.write_text("{}")
        got = place(target, succeeded=False, status="interrupted", rewrote_output=False)
        assert got.path.name == "m.json.manifest.interrupted.json"
        assert got.keep_previous_at is None

    def test_failed_run_that_rewrote_moves_the_earlier_record(self, tmp_path):
        target = tmp_path / "m.json.manifest.json"
        target.write_text("earlier")
        got = place(target, succeeded=False, status="failed", rewrote_output=True)
        write_placed(got, b"now")
        assert target.read_text() == "now"
        assert (tmp_path / "m.json.manifest.previous.json").read_text() == "earlier"
