"""Environment evidence: off by default, deterministic when on, restored by replay, diffed."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import pytest

from provenance.environment import ENVIRONMENT, changes, declared, requested
from provenance.errors import ProvenanceError
from provenance.redact import REDACTED
from tests.handmade import cli_in, copy_fake, project, run_cli, run_in, write

SECRET = "s3cr3t-value-of-the-token"


def run_script(proj: Path, out: str, *flags: str, **env: str) -> Path:
    """The environment fake run in ``proj`` as a subprocess; its sidecar."""
    variables = {"FAKE_COLOR": "red", "FAKE_API_TOKEN": SECRET, ENVIRONMENT: "", **env}
    proc = run_in(proj, "environment_script.py", "--out", out, *flags, env=variables)
    assert proc.returncode == 0, proc.stderr
    return proj / f"{out}.manifest.json"


def block(sidecar: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(sidecar.read_text())
    return document["run_provenance"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The fake run four times: twice alike, once with another colour, once importing numpy;
    and the table builder, which asks for no environment, with and without the pipeline's."""
    proj = project(tmp_path_factory.mktemp("environment") / "proj")
    copy_fake("environment_script", proj)
    copy_fake("table_builder", proj)
    (proj / "s.csv").write_text("name,value\na,1\n")
    found: dict[str, Any] = {"proj": proj}
    for name, flags, env in [
        ("red", (), {}),
        ("red-again", (), {}),
        ("blue", (), {"FAKE_COLOR": "blue"}),
        ("numpy", ("--numpy",), {}),
    ]:
        sidecar = run_script(proj, "out.txt", *flags, **env)
        found[name] = sidecar.read_bytes()
        (proj / f"{name}.manifest.json").write_bytes(found[name])
    for name, setting in [
        ("plain", None),
        ("off", "off"),
        ("pipeline", "on"),
        ("named", "FAKE_COLOR"),
    ]:
        env = {"FAKE_COLOR": "green", **({ENVIRONMENT: setting} if setting is not None else {})}
        proc = run_in(proj, "table_builder.py", "s.csv", "--out", "t.tsv", env=env)
        assert proc.returncode == 0, proc.stderr
        found[f"{name}-bytes"] = (proj / "t.tsv.manifest.json").read_bytes()
        found[name] = json.loads(found[f"{name}-bytes"])
    return found


def environment_of(data: bytes) -> dict[str, Any]:
    return json.loads(data)["run_provenance"]["environment"]  # type: ignore[no-any-return]


class TestRecorded:
    def test_off_by_default_the_record_has_no_environment(self, runs):
        for name in ("plain", "off"):
            assert "environment" not in runs[name]["run_provenance"]
        assert runs["plain-bytes"] == runs["off-bytes"]

    def test_the_same_machine_and_environment_give_the_same_bytes(self, runs):
        assert runs["red"] == runs["red-again"]

    def test_what_it_records(self, runs):
        environment = environment_of(runs["red"])
        assert (
            environment["python"]
            == f"{platform.python_implementation()} {platform.python_version()}"
        )
        assert environment["platform"] == platform.platform()
        assert environment["variables"] == {
            "FAKE_API_TOKEN": REDACTED,
            "FAKE_COLOR": "red",
            "FAKE_NEVER_SET": None,
        }
        assert SECRET.encode() not in runs["red"]
        # Only what the run imported: provenance's own dependencies, not the test runner.
        assert "blake3" in environment["distributions"]
        assert "pytest" not in environment["distributions"]
        assert "numpy" not in environment["distributions"]
        assert list(environment["distributions"]) == sorted(environment["distributions"])

    def test_a_distribution_the_run_imported_is_recorded_with_its_version(self, runs):
        import numpy

        assert environment_of(runs["numpy"])["distributions"]["numpy"] == numpy.__version__

    def test_the_pipelines_variable_turns_it_on_and_names_variables(self, runs):
        assert runs["pipeline"]["run_provenance"]["environment"]["variables"] == {}
        named = runs["named"]["run_provenance"]["environment"]
        assert named["variables"] == {"FAKE_COLOR": "green"}


class TestDiff:
    def test_diff_shows_a_changed_variable_and_a_new_distribution(self, runs):
        proj = runs["proj"]
        proc = cli_in(proj, "diff", "red.manifest.json", "blue.manifest.json")
        assert proc.returncode == 1, proc.stderr
        assert "  environment $FAKE_COLOR: red -> blue" in proc.stdout.splitlines()
        proc = cli_in(proj, "diff", "red.manifest.json", "numpy.manifest.json")
        import numpy

        assert f"  environment numpy: None -> {numpy.__version__}" in proc.stdout.splitlines()
        assert cli_in(proj, "diff", "red.manifest.json", "red.manifest.json").returncode == 0

    def test_diff_shows_a_version_change(self, runs, tmp_path):
        document = json.loads(runs["numpy"])
        a = write(tmp_path / "a.manifest.json", document)
        document["run_provenance"]["environment"]["distributions"]["numpy"] = "2.1.0"
        environment = json.loads(a.read_text())["run_provenance"]["environment"]
        environment["distributions"]["numpy"] = "1.26.4"
        document_a = json.loads(a.read_text())
        document_a["run_provenance"]["environment"] = environment
        write(a, document_a)
        b = write(tmp_path / "b.manifest.json", document)
        proc = cli_in(runs["proj"], "diff", a, b)
        assert "  environment numpy: 1.26.4 -> 2.1.0" in proc.stdout.splitlines()


class TestReplay:
    def test_replay_restores_the_named_variables(self, runs, tmp_path):
        proj = runs["proj"]
        sidecar = run_script(proj, "replayed.txt")  # FAKE_COLOR=red
        printed = cli_in(proj, "replay", sidecar).stdout
        assert "env -u FAKE_NEVER_SET FAKE_COLOR=red" in printed
        assert SECRET not in printed
        proc = cli_in(
            proj,
            "replay",
            "--run",
            "--json",
            sidecar,
            env={"FAKE_COLOR": "blue", "FAKE_NEVER_SET": "x", "FAKE_API_TOKEN": "another"},
        )
        report = json.loads(proc.stdout)
        assert (proj / "replayed.txt").read_text() == "colour red\n"
        assert report["reproduced"] is True, report
        assert "redacted values" in proc.stderr

    def test_replay_run_never_sets_what_decides_which_code_runs(self, runs, tmp_path):
        proj = runs["proj"]
        sidecar = run_script(proj, "loaded.txt")
        marker = tmp_path / "loaded-other-code"
        hook = tmp_path / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
        (hook / "startup.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
        document = json.loads(sidecar.read_text())
        document["run_provenance"]["environment"]["variables"].update(
            {
                "PYTHONPATH": str(hook),
                "PYTHONSTARTUP": str(hook / "startup.py"),
                "PYTHONINSPECT": "1",
                "LD_PRELOAD": str(hook / "missing.so"),
                "OPENLINEAGE_URL": "http://127.0.0.1:9",
                "PROVENANCE_DIGEST_CACHE": str(tmp_path / "elsewhere.sqlite3"),
            }
        )
        write(sidecar, document)
        printed = cli_in(proj, "replay", sidecar).stdout
        assert f"PYTHONPATH={hook}" in printed  # shown, so a reader sees what the run had
        proc = cli_in(proj, "replay", "--run", "--json", sidecar)
        assert not marker.exists(), proc.stderr
        assert not (tmp_path / "elsewhere.sqlite3").exists()
        assert "ERROR: ld.so" not in proc.stderr
        withheld = "LD_PRELOAD, OPENLINEAGE_URL, PROVENANCE_DIGEST_CACHE, PYTHONINSPECT, PYTHONPATH"
        assert f"not restored: {withheld}, PYTHONSTARTUP" in proc.stderr
        assert (proj / "loaded.txt").read_text() == "colour red\n"  # the ordinary one still is


HOSTILE = {
    "python": "\x1b[2J\u202e" + "p" * 10000,
    "platform": "",
    "distributions": {"\x1b]0;x\x07": "1", "numpy": "\u202e9"},
    "variables": {"BAD=NAME": "x", "NUL": "a\u0000b", "LF": "a\nb", "NONE": None, "1X": "y"},
}


class TestHostileEnvironment:
    def test_show_diff_and_replay_take_a_hostile_environment(self, runs, tmp_path):
        proj = runs["proj"]
        sidecar = run_script(proj, "hostile.txt")
        document = json.loads(sidecar.read_text())
        plain = write(tmp_path / "plain.manifest.json", document)
        document["run_provenance"]["environment"] = HOSTILE
        write(sidecar, document)
        for argv in [
            ("show", sidecar),
            ("show", "--json", sidecar),
            ("diff", plain, sidecar),
            ("diff", "--json", plain, sidecar),
            ("replay", sidecar),
            ("replay", "--json", sidecar),
            ("replay", "--run", "--json", sidecar),
        ]:
            result = run_cli(*argv)  # in-process; the replay's script is still a process
            assert result.code in (0, 1), (argv, result.err)
            assert "Traceback" not in result.err
            assert "\x1b" not in result.out
        assert (proj / "hostile.txt").read_text() == "colour none\n"  # LF, NUL: not restored
        for word in ("LF=", "BAD=NAME", "NUL", "1X"):
            assert word not in run_cli("replay", sidecar).out.replace("\\n", "")

    def test_a_wrong_shape_is_refused_as_any_bad_record_is(self, runs, tmp_path):
        document = json.loads(runs["red"])
        document["run_provenance"]["environment"]["variables"] = {"X": 3}
        bad = write(tmp_path / "bad.manifest.json", document)
        for command in ("show", "diff", "replay"):
            argv = (command, bad, bad) if command == "diff" else (command, bad)
            result = run_cli(*argv)
            assert result.code == 2
            assert "Traceback" not in result.err


class TestDeclared:
    def test_what_environment_takes(self, monkeypatch):
        monkeypatch.delenv(ENVIRONMENT, raising=False)
        assert declared(None) is None
        assert declared(False) is None
        assert declared(True) == ()
        assert declared("CUDA_VISIBLE_DEVICES") == ("CUDA_VISIBLE_DEVICES",)
        with pytest.raises(ProvenanceError):
            declared(["NOT A NAME"])
        assert requested(None) is None
        monkeypatch.setenv(ENVIRONMENT, "B, A,,not a name")
        assert requested(("C",)) == ("A", "B", "C")

    def test_changes_of_records_with_and_without(self):
        assert list(changes(None, None)) == []
        found = list(changes(None, {"python": "CPython 3.12.1", "variables": {"X": "1"}}))
        assert [c["key"] for c in found] == ["python", "$X"]
