"""Reading records as hostile input: one reader, with limits, and paths kept inside the root."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from provenance.measure.paths import find_root
from provenance.record.sidecar import side_record_path
from provenance.records import (
    MAX_DECLARED,
    MAX_DEPTH,
    UnreadableRecord,
    _read_bounded,
    attempts,
    load,
    read_json,
    written_against,
)
from tests.conftest import sidecar_of
from tests.handmade import cli_in, document, project, run_cli, run_in, write
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

    @pytest.mark.parametrize("strings", [0, 50, 5000])
    def test_the_depth_limit_is_exact_whatever_brackets_strings_hold(self, tmp_path, strings):
        """The reader looks at the nesting only when the text could nest that deep: brackets
        inside strings make it look, and change nothing of what it finds."""
        path = tmp_path / "x.manifest.json"
        padding = json.dumps("[{" * strings)
        for depth in (MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1):
            path.write_text("[" * (depth - 1) + f"[{padding}]" + "]" * (depth - 1))
            if depth <= MAX_DEPTH:
                found = read_json(path)
                for _ in range(depth - 1):
                    found = found[0]
                assert found == ["[{" * strings]
            else:
                with pytest.raises(UnreadableRecord, match="nested deeper"):
                    read_json(path)

    @pytest.mark.parametrize("size", [0, 1, 5, 100_000])
    def test_a_read_is_bounded_when_the_file_holds_more_than_its_size_said(self, size):
        """A file that grew after its size was taken (a pipe stands in for one): read on to
        its end, and never past one byte more than the limit."""
        reader, writer = os.pipe()
        data = bytes(range(256)) * 2000  # 512,000 bytes
        try:
            with os.fdopen(writer, "wb") as out:
                out.write(data[:300])
            assert _read_bounded(reader, size, 1000) == data[:300]
        finally:
            os.close(reader)
        for limit in (10, 200_000):
            reader, writer = os.pipe()
            os.set_blocking(writer, False)
            try:
                with os.fdopen(writer, "wb", buffering=0) as out:
                    out.write(data[:60_000])
                assert _read_bounded(reader, size, limit) == data[: min(limit + 1, 60_000)]
            finally:
                os.close(reader)

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

    def test_real_paths_resolved_by_folder_are_realpaths(self, tmp_path):
        from provenance.records import RealPaths

        root = project(tmp_path / "proj")
        (root / "d" / "e").mkdir(parents=True)
        (root / "d" / "f.txt").write_text("f")
        (tmp_path / "out").mkdir()
        os.symlink(root / "d", root / "to-d")  # a linked folder
        os.symlink("e/../f.txt", root / "d" / "rel")  # a relative link through ".."
        os.symlink(tmp_path / "out", root / "d" / "out")  # out of the root
        os.symlink(root / "nowhere", root / "d" / "dangling")
        os.symlink(root / "d" / "loop2", root / "d" / "loop1")
        os.symlink(root / "d" / "loop1", root / "d" / "loop2")
        os.symlink("to-d", root / "chain")  # a link to a link to a folder
        (root / "d" / "file").write_text("not a folder")
        names = ["d", "to-d", "chain", "e", "f.txt", "rel", "out", "dangling", "loop1", "file"]
        names += ["missing", "x.txt"]
        paths = [str(root / a) for a in names]
        paths += [str(root / a / b) for a in names for b in names]
        paths += [str(root / a / b / c) for a in names[:4] for b in names for c in names[:6]]
        paths += [
            "/",
            "//x",
            "relative/x",
            "/x",
            "/x/..",
            *(str(root) + p for p in ("/d/./e", "/d/../d", "/to-d/..", "/chain/.", "/d/", "//d")),
        ]
        real = RealPaths()
        for _ in range(2):  # the folders resolved once stand for the rest
            for path in paths:
                assert real(path) == os.path.realpath(path), path
        record = load(write(root / "a.manifest.json", document()))
        boundary = record.boundary()
        for shown in names + [f"to-d/{n}" for n in names] + [f"chain/{n}" for n in names]:
            assert record.place(shown, boundary, real) == record.place(shown, boundary), shown

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
        assert f"2 other records beside it, 2 newer; showing {sidecar}" in text
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


SCRIPT = """\
import argparse
import sys
from pathlib import Path

from provenance import recorded_run


@recorded_run(outputs={{"model": "out"}}{root})
def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("weights\\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
"""


class TestRootWrittenAgainst:
    """A project with no .git or pyproject.toml: the script one folder above its outputs."""

    @staticmethod
    def unmarked(tmp_path: Path, root: str = "") -> Path:
        proj = tmp_path / "proj"
        proj.mkdir()
        (proj / "train.py").write_text(SCRIPT.format(root=root))
        assert find_root(proj) is None  # nothing marks it, nor any folder above
        return proj

    @staticmethod
    def verified(out: Path, cwd: Path) -> tuple[int, dict[str, str]]:
        result = cli_in(cwd, "verify", "--json", out)
        assert result.returncode in (0, 1), result.stderr
        (report,) = json.loads(result.stdout)
        return result.returncode, {c["path"]: c["status"] for c in report["checks"]}

    def test_an_untouched_artifact_verifies_and_the_run_warns_once(self, tmp_path):
        proj = self.unmarked(tmp_path)
        ran = run_in(proj, "train.py", "--out", "out/model.bin")
        assert ran.returncode == 0, ran.stderr
        warnings = [line for line in ran.stderr.splitlines() if "absolute" in line]
        assert len(warnings) == 1, ran.stderr
        assert "no .git or pyproject.toml" in warnings[0]
        code, checks = self.verified(proj / "out/model.bin", tmp_path)
        assert code == 0, checks
        assert set(checks.values()) == {"unchanged"}
        assert checks[str(proj / "train.py")] == "unchanged"

    @pytest.mark.parametrize("cwd", [".", "out", ".."])
    def test_relative_paths_resolve_from_the_folder_holding_the_entrypoint(self, tmp_path, cwd):
        proj = self.unmarked(tmp_path, root=f", root={str(tmp_path / 'proj')!r}")
        ran = run_in(proj, "train.py", "--out", "out/model.bin")
        assert ran.returncode == 0, ran.stderr
        assert "absolute" not in ran.stderr  # a root was named
        # A file of the entrypoint's name in the record's own folder is not it: its digest
        # differs, so the search goes on up.
        (proj / "out/train.py").write_text("print('a decoy')\n")
        code, checks = self.verified(proj / "out/model.bin", (proj / cwd).resolve())
        assert code == 0, checks
        assert checks == {"train.py": "unchanged", "out/model.bin": "unchanged"}
        assert load(proj / "out/model.bin").root == proj

    def test_a_changed_entrypoint_is_no_evidence_of_a_root(self, tmp_path):
        proj = self.unmarked(tmp_path, root=f", root={str(tmp_path / 'proj')!r}")
        assert run_in(proj, "train.py", "--out", "out/model.bin").returncode == 0
        recorded = load(proj / "out/model.bin").block["entrypoint"]["sha256"]
        sidecar = sidecar_of(proj / "out/model.bin")
        assert written_against(sidecar, "train.py", recorded) == proj
        (proj / "train.py").write_text("# edited\n")
        assert written_against(sidecar, "train.py", recorded) is None

    def test_an_entrypoint_reached_through_a_symlink_out_is_not_taken(self, tmp_path):
        proj = self.unmarked(tmp_path, root=f", root={str(tmp_path / 'proj')!r}")
        assert run_in(proj, "train.py", "--out", "out/model.bin").returncode == 0
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        recorded = load(proj / "out/model.bin").block["entrypoint"]["sha256"]
        (proj / "train.py").rename(elsewhere / "train.py")
        os.symlink(elsewhere / "train.py", proj / "train.py")
        assert written_against(sidecar_of(proj / "out/model.bin"), "train.py", recorded) is None
