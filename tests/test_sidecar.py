"""Canonical bytes, atomic writes, embedding, the records kept beside a sidecar."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from provenance.record.sidecar import (
    RunningRecord,
    atomic_write,
    canonical_bytes,
    embedded_bytes,
    is_live,
    is_sidecar_name,
    keep_last_good,
    lost_runs,
    read_json_object,
    record_status,
    remove_lost,
    remove_stale_tmp,
    running_records,
    side_record_path,
    sidecar_path_for,
    superseded_runs,
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

    def test_a_name_that_nearly_fills_the_limit_still_gets_a_temporary_file(self, tmp_path):
        target = tmp_path / ("m" * 240 + ".manifest.json")[:255]
        atomic_write(target, b"x")
        assert target.read_bytes() == b"x"
        assert os.listdir(tmp_path) == [target.name]

    def test_a_symlink_is_written_through_not_replaced(self, tmp_path):
        real = tmp_path / "real" / "model.json"
        real.parent.mkdir()
        real.write_bytes(b"old")
        link = tmp_path / "model.json"
        link.symlink_to(real)
        atomic_write(link, b"new")
        assert link.is_symlink()
        assert real.read_bytes() == b"new"

    def test_leftovers_of_a_killed_writer_are_removed_and_live_ones_kept(self, tmp_path):
        import fcntl

        target = tmp_path / "m.json.manifest.json"
        old, live, young = (tmp_path / f".{target.name}.{c * 8}.tmp" for c in "abc")
        for path in (old, live, young):
            path.write_bytes(b"half")
        for path in (old, live):
            os.utime(path, (1, 1))
        holder = os.open(live, os.O_RDONLY)
        fcntl.flock(holder, fcntl.LOCK_EX)
        try:
            remove_stale_tmp(target)
            assert not old.exists()
            assert live.exists()  # its writer still holds it
            assert young.exists()  # too new to judge
        finally:
            os.close(holder)

    def test_keeps_the_mode_of_the_file_it_replaces(self, tmp_path):
        target = tmp_path / "f"
        target.write_bytes(b"")
        target.chmod(0o640)
        atomic_write(target, b"x")
        assert target.stat().st_mode & 0o777 == 0o640

    def test_a_mode_given_is_the_new_files_and_no_wider_mode_is_ever_seen(self, tmp_path):
        """A private key written with ``mode=0o600``: the new file, one that replaced a
        world-readable one, and the temporary file it was written to are all 0o600."""
        seen: list[int] = []
        real_fchmod = os.fchmod

        def fchmod(fd: int, mode: int) -> None:
            seen.append(os.fstat(fd).st_mode & 0o777)  # the temporary file before its mode
            real_fchmod(fd, mode)

        os.fchmod = fchmod  # type: ignore[assignment]
        try:
            fresh, replaced = tmp_path / "key.pem", tmp_path / "old.pem"
            replaced.write_bytes(b"")
            replaced.chmod(0o644)
            atomic_write(fresh, b"secret", mode=0o600)
            atomic_write(replaced, b"secret", mode=0o600)
        finally:
            os.fchmod = real_fchmod
        assert fresh.stat().st_mode & 0o777 == 0o600
        assert replaced.stat().st_mode & 0o777 == 0o600
        assert seen == [0o600, 0o600]


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


class TestKeptRecords:
    def record(self, status: str) -> bytes:
        block = {"outcome": {"status": status}}
        return canonical_bytes({"schema": "provenance.manifest/v1", "run_provenance": block})

    def test_side_record_names_are_sidecar_names(self, tmp_path):
        target = tmp_path / "m.json.manifest.json"
        for kind in ("previous", "failed", "interrupted", "succeeded", "running.0123abcd"):
            side = side_record_path(target, kind)
            assert side.name == f"m.json.manifest.{kind}.json"
            assert is_sidecar_name(side.name)

    def test_a_successful_record_is_copied_aside_and_stays(self, tmp_path):
        target = tmp_path / "m.json.manifest.json"
        target.write_bytes(self.record("succeeded"))
        previous = keep_last_good(target)
        assert previous == side_record_path(target, "previous")
        assert previous.read_bytes() == target.read_bytes()

    def test_a_failed_record_never_replaces_the_kept_one(self, tmp_path):
        target = tmp_path / "m.json.manifest.json"
        previous = side_record_path(target, "previous")
        previous.write_bytes(self.record("succeeded"))
        target.write_bytes(self.record("failed"))
        assert keep_last_good(target) is None
        assert record_status(previous) == "succeeded"

    @pytest.mark.parametrize("content", [b"", b"[1]", b"{", b'{"run_provenance": 3}'])
    def test_what_is_not_a_record_has_no_status(self, tmp_path, content):
        path = tmp_path / "x.json"
        path.write_bytes(content)
        assert record_status(path) is None
        assert record_status(tmp_path / "absent.json") is None

    def test_a_fifo_at_the_target_is_not_read(self, tmp_path):
        fifo = tmp_path / "m.json.manifest.json"
        os.mkfifo(fifo)
        assert record_status(fifo) is None  # returns at once instead of waiting for a writer


class TestRunningRecords:
    def test_live_while_held_lost_once_released(self, tmp_path):
        target = tmp_path / "m.json.manifest.json"
        running = RunningRecord.create(target, b"{}")
        assert running_records(target) == [running.path]
        assert is_live(running.path)
        running.release()
        assert running.path.exists()
        assert not is_live(running.path)

    def test_removed_when_the_run_is_recorded(self, tmp_path):
        target = tmp_path / "m.json.manifest.json"
        running = RunningRecord.create(target, b"{}")
        running.remove()
        assert running_records(target) == []

    def test_only_this_artifacts_running_records(self, tmp_path):
        target = tmp_path / "m.json.manifest.json"
        (tmp_path / "other.json.manifest.running.0123abcd.json").write_text("{}")
        (tmp_path / "m.json.manifest.running.nothex!!.json").write_text("{}")
        assert running_records(target) == []


def test_records_are_not_written_through_a_link_put_where_a_record_goes(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "m.json.manifest.json"
    link.symlink_to(victim)
    atomic_write(link, b"{}", follow_symlinks=False)
    assert victim.read_text() == "precious"
    assert not link.is_symlink()
    assert link.read_bytes() == b"{}"


def running_document(*outputs: str) -> bytes:
    entries = {f"o{i}": {"path": p, "pending": True} for i, p in enumerate(outputs)}
    return canonical_bytes({"run_provenance": {"outputs": entries}})


class TestLostRuns:
    def test_a_recorded_end_removes_only_its_own_running_record(self, tmp_path):
        target = tmp_path / "m.json.manifest.json"
        lost = RunningRecord.create(target, running_document("m.json"))
        lost.release()  # its process is gone
        live = RunningRecord.create(target, running_document("m.json"))
        mine = RunningRecord.create(target, running_document("m.json"))
        mine.remove()
        assert running_records(target) == sorted([lost.path, live.path])
        live.remove()

    def test_superseded_only_when_lost_before_and_every_output_rewritten(self, tmp_path):
        target = tmp_path / "m.json.manifest.json"
        records = {}
        for name, outputs in {
            "one": ("m.json",),
            "two": ("m.json", "m.data"),
            "garbled": (),
            "after": ("m.json",),
        }.items():
            records[name] = RunningRecord.create(target, running_document(*outputs))
            records[name].release()
        records["garbled"].path.write_bytes(b"{not json")
        before = lost_runs(target) - {records["after"].path}  # lost once the writer began
        assert superseded_runs(target, before, {"m.json"}) == [records["one"].path]
        both = superseded_runs(target, before, {"m.json", "m.data"})
        assert both == sorted([records["one"].path, records["two"].path])
        assert superseded_runs(target, before, set()) == []
        remove_lost(both)
        assert running_records(target) == sorted([records["garbled"].path, records["after"].path])

    def test_a_live_record_is_never_removed(self, tmp_path):
        target = tmp_path / "m.json.manifest.json"
        live = RunningRecord.create(target, running_document("m.json"))
        remove_lost([live.path])
        assert superseded_runs(target, frozenset({live.path}), {"m.json"}) == []
        assert running_records(target) == [live.path]
        live.remove()
