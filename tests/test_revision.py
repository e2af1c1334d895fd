"""The code revision a run started from, and the opt-in volatile evidence, from real git repos
and real decorated scripts run as subprocesses."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, project_with, run_python, sidecar_bytes, sidecar_of

GIT = shutil.which("git")
pytestmark = pytest.mark.skipif(GIT is None, reason="these tests make real git repositories")


def git_env() -> dict[str, str]:
    """The environment the test's own git commands run in: none of the caller's GIT_*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.org",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.org",
        GIT_AUTHOR_DATE="2020-01-01T00:00:00Z",
        GIT_COMMITTER_DATE="2020-01-01T00:00:00Z",
    )
    return env


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "protocol.file.allow=always", "-c", "init.defaultBranch=main", *args],
        cwd=folder,
        env=git_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def repo(folder: Path, *, commit: bool = True) -> Path:
    """A project in git: the fake script, its input, a tracked note, the outputs ignored."""
    project_with(folder, "revision_script", "volatile_script")
    (folder / "data.txt").write_text("some data\n")
    (folder / "notes.md").write_text("notes\n")
    git(folder, "init", "-q")
    if commit:
        git(folder, "add", "-A")
        git(folder, "commit", "-qm", "first")
    return folder


def run(
    folder: Path, script: str = "revision_script", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The script run where it lives, with relative paths: its output lands in the work tree."""
    full = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, f"{script}.py", "--data", "data.txt", "--out", "out.txt"],
        cwd=folder,
        env=full,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def recorded(folder: Path, **kwargs: Any) -> bytes:
    proc = run(folder, **kwargs)
    assert proc.returncode == 0, proc.stderr
    return sidecar_bytes(sidecar_of(folder / "out.txt"))


def block(data: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(data)
    return document["run_provenance"]


def revision_of(data: bytes) -> Any:
    return block(data).get("revision")


class TestRevision:
    def test_a_clean_commit(self, tmp_path):
        folder = repo(tmp_path / "p")
        data = recorded(folder)
        assert revision_of(data) == {
            "vcs": "git",
            "commit": git(folder, "rev-parse", "HEAD"),
            "dirty": False,
            "diff_blake3": None,
            "entrypoint_tracked": True,
        }
        # The output it wrote into the work tree is untracked: the second run is the same.
        assert recorded(folder) == data

    def test_a_tracked_change_is_dirty_and_its_digest_tells_changes_apart(self, tmp_path):
        folder = repo(tmp_path / "p")
        clean = recorded(folder)
        (folder / "notes.md").write_text("notes, edited\n")
        first = recorded(folder)
        again = recorded(folder)
        (folder / "notes.md").write_text("notes, edited otherwise\n")
        second = recorded(folder)
        (folder / "notes.md").write_text("notes, edited\n")
        git(folder, "add", "notes.md")  # staged or not, the work tree holds the same
        staged = recorded(folder)
        a, b = revision_of(first), revision_of(second)
        assert a["dirty"] is b["dirty"] is True
        assert a["commit"] == b["commit"] == revision_of(clean)["commit"]
        assert len(a["diff_blake3"]) == 64
        assert a["diff_blake3"] != b["diff_blake3"]
        assert again == first == staged
        # Only the revision tells the runs apart: the note is no input and no code.
        rest = [{k: v for k, v in block(d).items() if k != "revision"} for d in (clean, first)]
        assert rest[0] == rest[1]

    @pytest.mark.parametrize(
        "change",
        ["delete", "chmod", "symlink", "new staged file"],
    )
    def test_every_kind_of_tracked_change_counts(self, tmp_path, change):
        folder = repo(tmp_path / "p")
        clean = revision_of(recorded(folder))
        note = folder / "notes.md"
        if change == "delete":
            note.unlink()
        elif change == "chmod":
            note.chmod(0o755)
        elif change == "symlink":
            note.unlink()
            note.symlink_to("data.txt")
        else:
            (folder / "added.md").write_text("added\n")
            git(folder, "add", "added.md")
        changed = revision_of(recorded(folder))
        assert changed["dirty"] is True
        assert clean["dirty"] is False
        assert changed["commit"] == clean["commit"]

    def test_untracked_files_do_not_count(self, tmp_path):
        folder = repo(tmp_path / "p")
        clean = recorded(folder)
        (folder / "scratch.txt").write_text("not in git\n")
        assert recorded(folder) == clean

    def test_an_untracked_entrypoint_is_said(self, tmp_path):
        folder = repo(tmp_path / "p", commit=False)
        git(folder, "add", "data.txt", "notes.md")
        git(folder, "commit", "-qm", "data only")
        found = revision_of(recorded(folder))
        assert found["entrypoint_tracked"] is False
        assert found["dirty"] is False

    def test_not_a_git_repo_has_no_revision(self, tmp_path):
        folder = project_with(tmp_path / "p", "revision_script")
        (folder / "data.txt").write_text("some data\n")
        assert "revision" not in block(recorded(folder))

    def test_a_repo_with_no_commit_yet(self, tmp_path):
        folder = repo(tmp_path / "p", commit=False)
        assert revision_of(recorded(folder)) == {
            "vcs": "git",
            "commit": None,
            "dirty": False,
            "diff_blake3": None,
            "entrypoint_tracked": False,
        }
        git(folder, "add", "-A")
        staged = revision_of(recorded(folder))
        assert staged["commit"] is None
        assert staged["dirty"] is True
        assert staged["entrypoint_tracked"] is True

    def test_a_detached_head(self, tmp_path):
        folder = repo(tmp_path / "p")
        first = git(folder, "rev-parse", "HEAD")
        (folder / "notes.md").write_text("second\n")
        git(folder, "commit", "-qam", "second")
        git(folder, "checkout", "-q", "--detach", first)
        found = revision_of(recorded(folder))
        assert found["commit"] == first
        assert found["dirty"] is False

    def test_submodules(self, tmp_path):
        sub = repo(tmp_path / "sub")
        top = repo(tmp_path / "top")
        git(top, "submodule", "add", "-q", str(sub), "lib")
        git(top, "commit", "-qm", "with lib")
        clean = revision_of(recorded(top))
        assert clean["dirty"] is False
        # Inside the submodule, the run's revision is the submodule's own commit.
        inner = revision_of(recorded(top / "lib"))
        assert inner["commit"] == git(sub, "rev-parse", "HEAD") != clean["commit"]
        # A change inside it makes the project dirty; a new commit in it, differently.
        (top / "lib" / "notes.md").write_text("changed in lib\n")
        edited = revision_of(recorded(top))
        git(top / "lib", "commit", "-qam", "lib moves on")
        moved = revision_of(recorded(top))
        (top / "lib" / "notes.md").write_text("changed again\n")
        git(top / "lib", "commit", "-qam", "lib moves further")
        further = revision_of(recorded(top))
        digests = {r["diff_blake3"] for r in (edited, moved, further)}
        assert edited["dirty"]
        assert moved["dirty"]
        assert further["dirty"]
        assert len(digests) == 3

    def test_the_same_commit_in_two_folders_gives_the_same_bytes(self, tmp_path):
        first = repo(tmp_path / "one")
        second = tmp_path / "elsewhere" / "two"
        second.parent.mkdir()
        git(tmp_path, "clone", "-q", str(first), str(second))
        assert recorded(first) == recorded(second)
        for folder in (first, second):
            (folder / "notes.md").write_text("the same edit\n")
        a, b = recorded(first), recorded(second)
        assert a == b
        assert revision_of(a)["dirty"] is True

    def test_without_git_on_path_the_run_goes_on_and_says_why(self, tmp_path):
        folder = repo(tmp_path / "p")
        empty = tmp_path / "bin"
        empty.mkdir()
        found = revision_of(recorded(folder, env={"PATH": str(empty)}))
        assert found == {"vcs": "git", "error": "git was not found on PATH"}

    @pytest.mark.parametrize(
        ("body", "why"),
        [
            ("exit 128\n", "git rev-parse exited 128"),
            # Not exec: the sleep is a child of the script and must end with it.
            ("sleep 60\n", "git did not answer within 1 s"),
        ],
    )
    def test_a_failing_or_hanging_git_is_said_not_fatal(self, tmp_path, body, why):
        folder = repo(tmp_path / "p")
        tools = tmp_path / "bin"
        tools.mkdir()
        fake = tools / "git"
        fake.write_text(f"#!/bin/sh\n{body}")
        fake.chmod(0o755)
        env = {"PATH": f"{tools}{os.pathsep}{os.environ['PATH']}", "PROVENANCE_GIT_TIMEOUT": "1"}
        proc = run(folder, env=env)
        assert proc.returncode == 0, proc.stderr
        data = sidecar_bytes(sidecar_of(folder / "out.txt"))
        assert revision_of(data) == {"vcs": "git", "error": why}
        assert block(data)["outcome"]["status"] == "succeeded"

    def test_a_hostile_environment_and_config_neither_redirect_git_nor_run_anything(self, tmp_path):
        folder = repo(tmp_path / "p")
        other = repo(tmp_path / "other")
        (other / "notes.md").write_text("the other repo is dirty\n")
        git(other, "commit", "-qam", "other moves on")
        marker = tmp_path / "marker"
        evil = tmp_path / "evil.sh"
        evil.write_text(f'#!/bin/sh\necho ran "$@" >> {marker}\n')
        evil.chmod(0o755)
        (folder / "notes.md").write_text("dirty, so a diff would have work to do\n")
        expected = recorded(folder)
        # The repo's own config and attributes, too, ask for programs to run.
        for key, value in (
            ("core.fsmonitor", str(evil)),
            ("diff.external", str(evil)),
            ("core.pager", str(evil)),
            ("diff.evil.textconv", str(evil)),
            ("diff.noprefix", "true"),
            ("diff.renames", "copies"),
        ):
            git(folder, "config", key, value)
        (folder / ".git" / "info" / "attributes").write_text("* diff=evil\n")
        hostile = {
            "GIT_DIR": str(other / ".git"),
            "GIT_WORK_TREE": str(other),
            "GIT_EXTERNAL_DIFF": str(evil),
            "GIT_PAGER": str(evil),
            "PAGER": str(evil),
            "GIT_CONFIG_PARAMETERS": f"'diff.external={evil}'",
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "core.fsmonitor",
            "GIT_CONFIG_VALUE_0": str(evil),
            "GIT_CEILING_DIRECTORIES": str(tmp_path),
        }
        data = recorded(folder, env=hostile)
        assert not marker.exists(), marker.read_text()
        assert revision_of(data)["commit"] == git(folder, "rev-parse", "HEAD")
        assert data == expected


def replay(sidecar: Path) -> subprocess.CompletedProcess[str]:
    return run_python("-m", "provenance", "replay", "--run", "--json", sidecar)


class TestReaders:
    def test_show_prints_the_revision(self, tmp_path):
        folder = repo(tmp_path / "p")
        recorded(folder)
        proc = run_python("-m", "provenance", "show", folder / "out.txt")
        commit = git(folder, "rev-parse", "HEAD")
        assert f"revision        git {commit[:12]}…  (clean)" in proc.stdout
        (folder / "notes.md").write_text("edited\n")
        digest = revision_of(recorded(folder))["diff_blake3"]
        proc = run_python("-m", "provenance", "show", "--json", folder / "out.txt")
        assert json.loads(proc.stdout)["revision"]["diff_blake3"] == digest
        proc = run_python("-m", "provenance", "show", folder / "out.txt")
        assert f"(dirty: diff blake3 {digest[:12]}…)" in proc.stdout

    def test_diff_lists_a_change_of_revision(self, tmp_path):
        folder = repo(tmp_path / "p")
        recorded(folder)
        before = tmp_path / "before.manifest.json"
        shutil.copy(sidecar_of(folder / "out.txt"), before)
        (folder / "notes.md").write_text("edited\n")
        after = revision_of(recorded(folder))
        proc = run_python("-m", "provenance", "diff", "--json", before, folder / "out.txt")
        assert proc.returncode == 1, proc.stderr
        differences = json.loads(proc.stdout)["differences"]
        assert {(d["section"], d["key"]) for d in differences} == {
            ("revision", "dirty"),
            ("revision", "diff_blake3"),
        }
        proc = run_python("-m", "provenance", "diff", before, folder / "out.txt")
        assert f'revision diff_blake3: null -> "{after["diff_blake3"][:12]}' in proc.stdout


class TestVolatile:
    def test_off_by_default(self, tmp_path):
        folder = repo(tmp_path / "p")
        data = recorded(folder)
        assert "volatile" not in block(data)
        assert recorded(folder, env={"PROVENANCE_VOLATILE": "off"}) == data

    def check(self, volatile: dict[str, Any]) -> None:
        started = datetime.fromisoformat(volatile["started_at"].replace("Z", "+00:00"))
        ended = datetime.fromisoformat(volatile["ended_at"].replace("Z", "+00:00"))
        assert volatile["started_at"].endswith("Z")
        assert started.utcoffset().total_seconds() == 0
        assert started <= ended
        assert volatile["duration_seconds"] == pytest.approx(
            (ended - started).total_seconds(), abs=1e-6
        )
        assert volatile["host"] == socket.gethostname()
        assert volatile["user"] == getpass.getuser()

    def test_on_by_the_option(self, tmp_path):
        folder = repo(tmp_path / "p")
        self.check(block(recorded(folder, script="volatile_script"))["volatile"])

    def test_on_by_the_variable_and_by_name(self, tmp_path):
        folder = repo(tmp_path / "p")
        self.check(block(recorded(folder, env={"PROVENANCE_VOLATILE": "on"}))["volatile"])
        only = block(recorded(folder, env={"PROVENANCE_VOLATILE": "host, nonsense"}))
        assert only["volatile"] == {"host": socket.gethostname()}

    def test_the_rest_of_the_record_is_what_it_is_without(self, tmp_path):
        folder = repo(tmp_path / "p")
        without = block(recorded(folder))
        with_it = block(recorded(folder, env={"PROVENANCE_VOLATILE": "on"}))
        del with_it["volatile"]
        assert with_it == without

    def test_diff_and_replay_do_not_count_it(self, tmp_path):
        folder = repo(tmp_path / "p")
        recorded(folder, script="volatile_script")
        first = tmp_path / "first.manifest.json"
        shutil.copy(sidecar_of(folder / "out.txt"), first)
        recorded(folder, script="volatile_script")
        second = sidecar_of(folder / "out.txt")
        assert block(first.read_bytes())["volatile"] != block(second.read_bytes())["volatile"]
        proc = run_python("-m", "provenance", "diff", "--json", first, second)
        assert proc.returncode == 0, proc.stdout
        result = json.loads(proc.stdout)
        assert result["same"] is True
        assert result["differences"] == []
        assert "started_at" in {d["key"] for d in result["volatile"]}
        proc = run_python("-m", "provenance", "diff", first, second)
        assert proc.returncode == 0
        assert "no differences" in proc.stdout
        assert "not a difference" in proc.stdout
        proc = replay(second)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert json.loads(proc.stdout)["reproduced"] is True

    def test_the_copy_embedded_in_an_output_leaves_it_out(self, tmp_path):
        folder = project_with(tmp_path / "p", "trainer")
        features = folder / "features.csv"
        features.write_text("adm2,motion2,mos\n0.9,3.1,4.2\n0.7,2.0,3.1\n")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PROVENANCE_VOLATILE": "on"}
        argv = ["trainer.py", "--features", "features.csv", "--out-json", "model.json"]
        done = subprocess.run(
            [sys.executable, *argv], cwd=folder, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        model = json.loads((folder / "model.json").read_text())
        assert "volatile" not in model["run_provenance"]
        assert "volatile" in block(sidecar_bytes(sidecar_of(folder / "model.json")))

    def test_the_record_written_at_the_start_says_when_where_and_which_revision(self, tmp_path):
        folder = repo(tmp_path / "p")
        (folder / "peek.py").write_text(
            "import glob, json, sys\n"
            "from provenance import recorded_run\n"
            "@recorded_run(outputs={'out': 'out'})\n"
            "def main(argv=None):\n"
            "    import argparse\n"
            "    parser = argparse.ArgumentParser()\n"
            "    parser.add_argument('--out')\n"
            "    args = parser.parse_args(argv)\n"
            "    (found,) = glob.glob(args.out + '.manifest.running.*')\n"
            "    block = json.load(open(found))['run_provenance']\n"
            "    open(args.out, 'w').write(json.dumps([block['revision'], block['volatile']]))\n"
            "    return 0\n"
            "sys.exit(main())\n"
        )
        git(folder, "add", "peek.py")
        git(folder, "commit", "-qm", "peek")
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PROVENANCE_VOLATILE": "on"}
        done = subprocess.run(
            [sys.executable, "peek.py", "--out", "seen.json"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        revision, volatile = json.loads((folder / "seen.json").read_text())
        assert revision["commit"] == git(folder, "rev-parse", "HEAD")
        assert set(volatile) == {"started_at", "host", "user"}
        final = block(sidecar_bytes(sidecar_of(folder / "seen.json")))
        assert final["volatile"]["started_at"] == volatile["started_at"]
