"""Reading records as hostile input: one reader, with limits, and paths kept inside the root."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from provenance.record.sidecar import side_record_path
from provenance.records import (
    MAX_DECLARED,
    MAX_DEPTH,
    UnreadableRecord,
    attempts,
    load,
    read_json,
)
from tests.conftest import sidecar_of
from tests.handmade import document, project, run_cli, write
from tests.test_lost_runs import interrupted_before_writing, ran

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


class TestAttempts:
    """Other runs' records kept beside a sidecar, each a real run of the faulty trainer."""

    @staticmethod
    def shown(out: Path) -> dict[str, Any]:
        result = run_cli("show", "--json", out)
        assert result.code == 0, result.err
        return json.loads(result.out)

    def test_show_names_newer_failed_and_interrupted_reruns_newest_first(self, tmp_path):
        out = tmp_path / "model.bin"
        assert ran(out, "good") == 0
        assert ran(out, "later", "--no-write", "--end", "fail") == 1
        assert interrupted_before_writing(out, "last", signal.SIGINT) == -signal.SIGINT
        sidecar = sidecar_of(out)
        found = attempts(load(out))
        assert [(a.source, a.status, a.exit_code, a.newer) for a in found] == [
            (side_record_path(sidecar, "interrupted"), "interrupted", 130, True),
            (side_record_path(sidecar, "failed"), "failed", 1, True),
        ]
        info = self.shown(out)
        assert info["record"] == str(sidecar)  # which one it shows
        assert [(Path(a["record"]).name, a["status"], a["exit_code"], a["newer"]) for a in
                info["attempts"]] == [
            (f"{sidecar.name.removesuffix('.json')}.interrupted.json", "interrupted", 130, True),
            (f"{sidecar.name.removesuffix('.json')}.failed.json", "failed", 1, True),
        ]  # fmt: skip
        text = run_cli("show", out).out
        assert f"2 other record(s) beside it, 2 newer; showing {sidecar}" in text
        lines = text.splitlines()
        interrupted = next(i for i, line in enumerate(lines) if "interrupted (exit 130)" in line)
        failed = next(i for i, line in enumerate(lines) if "failed (exit 1)" in line)
        assert interrupted < failed
        result = run_cli("verify", "--json", "--no-code", "--outside-root", out)
        assert result.code == 0, result.out  # an attempt is no drift
        (report,) = json.loads(result.out)
        named = {c["path"]: c["detail"] for c in report["checks"] if c["status"] == "attempt"}
        assert set(named) == {a.source.name for a in found}
        assert "failed, exit 1" in named[side_record_path(sidecar, "failed").name]

    def test_a_rerun_before_the_bytes_on_disk_were_written_is_older(self, tmp_path):
        out = tmp_path / "model.bin"
        assert ran(out, "good") == 0
        assert ran(out, "later", "--no-write", "--end", "fail") == 1
        assert ran(out, "other") == 0  # other bytes, and a record of them
        (found,) = attempts(load(out))
        assert (found.status, found.newer) == ("failed", False)
        assert "other bytes" in found.evidence
        assert "0 newer" in run_cli("show", out).out
        (report,) = json.loads(run_cli("verify", "--json", "--no-code", "--outside-root", out).out)
        assert not [c for c in report["checks"] if c["status"] == "attempt"]

    def test_same_bytes_written_again_later_leave_the_attempt_older_by_both_times(self, tmp_path):
        out = tmp_path / "model.bin"
        assert ran(out, "good") == 0
        assert ran(out, "later", "--no-write", "--end", "fail") == 1
        assert ran(out, "good") == 0  # the same bytes again: only the times can tell
        (found,) = attempts(load(out))
        assert found.newer is False
        assert "mtime and ctime" in found.evidence

    @pytest.mark.parametrize(
        "garbage", [b"{", b"\xff\xfe", b"[]", b'{"schema": "provenance.manifest/v1"}']
    )
    def test_an_unreadable_side_record_is_named_never_a_traceback(self, tmp_path, garbage):
        out = tmp_path / "model.bin"
        assert ran(out, "good") == 0
        side = side_record_path(sidecar_of(out), "interrupted")
        side.write_bytes(garbage)
        (found,) = attempts(load(out))
        assert found.unreadable
        assert found.status is None
        assert str(side) in found.evidence
        result = run_cli("show", out)
        assert result.code == 0
        assert "Traceback" not in result.err
        assert f"unreadable    {side}" in result.out
        (report,) = json.loads(run_cli("verify", "--json", "--no-code", "--outside-root", out).out)
        assert [c["detail"][:11] for c in report["checks"] if c["status"] == "attempt"] == [
            "unreadable:"
        ]

    def test_a_fifo_in_a_side_records_place_is_never_opened(self, tmp_path):
        out = tmp_path / "model.bin"
        assert ran(out, "good") == 0
        os.mkfifo(side_record_path(sidecar_of(out), "failed"))
        (found,) = attempts(load(out))
        assert found.unreadable
        assert "not a regular file" in found.evidence
