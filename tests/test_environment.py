"""Environment evidence: off by default, deterministic when on, restored by replay, diffed."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from provenance.errors import ProvenanceError
from provenance.measure.environment import ENVIRONMENT, changes, declared, requested
from provenance.record.redact import REDACTED
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
        assert '  environment $FAKE_COLOR: "red" -> "blue"' in proc.stdout.splitlines()
        proc = cli_in(proj, "diff", "red.manifest.json", "numpy.manifest.json")
        import numpy

        assert f'  environment numpy: null -> "{numpy.__version__}"' in proc.stdout.splitlines()
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
        assert '  environment numpy: "1.26.4" -> "2.1.0"' in proc.stdout.splitlines()


def with_variables(sidecar: Path, **variables: str | None) -> Path:
    """``sidecar`` rewritten to say the run had ``variables``, as a hostile record would."""
    document = json.loads(sidecar.read_text())
    document["run_provenance"]["environment"]["variables"].update(variables)
    return write(sidecar, document)


def code_loaders(tmp_path: Path, marker: Path) -> dict[str, str]:
    """Variables that each make a Python process run code of the record's choosing: an OpenSSL
    provider library that ``import hashlib`` loads, and a ``sitecustomize`` on the path."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    loaders = {
        "PYTHONPATH": str(hook),
        "PYTHONSTARTUP": str(hook / "sitecustomize.py"),
        "LD_PRELOAD": str(hook / "missing.so"),
        "GIT_SSH_COMMAND": f"touch {marker}",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "core.fsmonitor",
        "GIT_CONFIG_VALUE_0": f"touch {marker}",
        "HOME": str(hook),
        "BASH_ENV": str(hook / "sitecustomize.py"),
        "NODE_OPTIONS": f"--require {hook}/x.js",
        "HF_HOME": str(hook),
        "OPENLINEAGE_URL": "http://127.0.0.1:9",
        "PROVENANCE_DIGEST_CACHE": str(tmp_path / "elsewhere.sqlite3"),
    }
    library = hook / "provider.so"
    source = hook / "provider.c"
    source.write_text(
        "#include <stdio.h>\n__attribute__((constructor)) static void mark(void) "
        f'{{ FILE *f = fopen("{marker}", "w"); if (f) fclose(f); }}\n'
    )
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is not None:
        subprocess.run([compiler, "-shared", "-fPIC", "-o", library, source], check=True)
        config = hook / "openssl.cnf"
        config.write_text(
            "openssl_conf = init\n[init]\nproviders = providers\n"
            "[providers]\nhostile = hostile\ndefault = default\n[default]\nactivate = 1\n"
            f"[hostile]\nmodule = {library}\nactivate = 1\n"
        )
        loaders["OPENSSL_CONF"] = str(config)
    return loaders


class TestReplay:
    def test_replay_sets_nothing_unless_asked(self, runs):
        proj = runs["proj"]
        sidecar = run_script(proj, "replayed.txt")  # FAKE_COLOR=red
        printed = cli_in(proj, "replay", sidecar)
        assert "env " not in printed.stdout
        assert "FAKE_COLOR" not in printed.stdout
        assert "not set from the record: FAKE_API_TOKEN, FAKE_COLOR, FAKE_NEVER_SET" in (
            printed.stderr
        )
        proc = cli_in(proj, "replay", "--run", "--json", sidecar, env={"FAKE_COLOR": "blue"})
        report = json.loads(proc.stdout)
        assert (
            proj / "replayed.txt"
        ).read_text() == "colour blue\n"  # this shell's, not the record's
        assert report["environment"] == {}
        assert report["reproduced"] is False  # and the replay's record says it differs
        assert any(d["key"] == "$FAKE_COLOR" for d in report["differences"])

    def test_env_sets_each_variable_named_as_the_record_gives_it(self, runs):
        proj = runs["proj"]
        sidecar = run_script(proj, "named.txt")
        printed = cli_in(proj, "replay", "--env", "FAKE_COLOR", "--env", "FAKE_NEVER_SET", sidecar)
        assert "env -u FAKE_NEVER_SET FAKE_COLOR=red" in printed.stdout
        proc = cli_in(
            proj,
            "replay",
            "--run",
            "--json",
            "--env",
            "FAKE_COLOR",
            "--env",
            "FAKE_NEVER_SET",
            sidecar,
            env={"FAKE_COLOR": "blue", "FAKE_NEVER_SET": "x", "FAKE_API_TOKEN": SECRET},
        )
        report = json.loads(proc.stdout)
        assert (proj / "named.txt").read_text() == "colour red\n"
        assert report["environment"] == {"FAKE_COLOR": "red", "FAKE_NEVER_SET": None}
        assert report["not_set"] == ["FAKE_API_TOKEN"]
        assert report["reproduced"] is True, report
        assert "sets from the record: FAKE_COLOR, FAKE_NEVER_SET" in proc.stderr

    @pytest.mark.parametrize(
        ("name", "why"),
        [
            ("FAKE_API_TOKEN", "the record holds FAKE_API_TOKEN redacted"),
            ("NOT_IN_RECORD", "the record names no variable NOT_IN_RECORD"),
            ("BAD NAME", "--env takes the name of a variable, not 'BAD NAME'"),
        ],
    )
    def test_env_refuses_what_it_cannot_set_in_one_line(self, runs, name, why):
        proj = runs["proj"]
        sidecar = run_script(proj, "refused.txt")
        for run in ((), ("--run",)):
            proc = cli_in(proj, "replay", *run, "--env", name, sidecar)
            assert proc.returncode == 2
            assert why in proc.stderr
            assert len(proc.stderr.splitlines()) == 1, proc.stderr
            assert proc.stdout == ""

    def test_a_hostile_environment_never_runs_code(self, runs, tmp_path):
        proj = runs["proj"]
        sidecar = run_script(proj, "loaded.txt", "--show", "OMP_NUM_THREADS")
        marker = tmp_path / "ran-the-records-code"
        loaders = code_loaders(tmp_path, marker)
        with_variables(sidecar, **loaders)
        show = cli_in(proj, "show", sidecar)
        assert f"PYTHONPATH             {tmp_path}/hook" in show.stdout  # shown as evidence
        for flags in ((), ("--env-from-record",)):
            with_variables(sidecar, **loaders)  # again: the replay rewrites the sidecar
            printed = cli_in(proj, "replay", *flags, sidecar)
            assert printed.returncode == 0, printed.stderr
            assert "env " not in printed.stdout
            proc = cli_in(proj, "replay", "--run", "--json", *flags, sidecar)
            report = json.loads(proc.stdout)
            assert not marker.exists(), proc.stderr
            assert report["environment"] == {}
            assert set(loaders) <= set(report["not_set"])
        assert not (tmp_path / "elsewhere.sqlite3").exists()
        assert "OPENSSL_CONF" in loaders or shutil.which("cc") is None

    def test_env_from_record_sets_only_data_of_the_shape_it_should_have(self, runs, tmp_path):
        proj = runs["proj"]
        flags = ("--show", "OMP_NUM_THREADS", "--show", "CUDA_VISIBLE_DEVICES")
        sidecar = run_script(proj, "data.txt", *flags)
        with_variables(
            sidecar,
            OMP_NUM_THREADS="3",
            CUDA_VISIBLE_DEVICES="1,0",
            PYTHONHASHSEED="0",
            MKL_NUM_THREADS="4; touch x",  # a data name with a value that is not data
            TOKENIZERS_PARALLELISM=None,
            OPENSSL_CONF="/anything",
        )
        printed = cli_in(proj, "replay", "--env-from-record", sidecar).stdout
        assert "env -u TOKENIZERS_PARALLELISM CUDA_VISIBLE_DEVICES=1,0 OMP_NUM_THREADS=3" in printed
        proc = cli_in(
            proj,
            "replay",
            "--run",
            "--json",
            "--env-from-record",
            sidecar,
            env={"TOKENIZERS_PARALLELISM": "true", "MKL_NUM_THREADS": "1"},
        )
        report = json.loads(proc.stdout)
        assert report["environment"] == {
            "CUDA_VISIBLE_DEVICES": "1,0",
            "OMP_NUM_THREADS": "3",
            "PYTHONHASHSEED": "0",
            "TOKENIZERS_PARALLELISM": None,
        }
        assert report["not_set"] == [
            "FAKE_API_TOKEN",
            "FAKE_COLOR",
            "FAKE_NEVER_SET",
            "MKL_NUM_THREADS",
            "OPENSSL_CONF",
        ]
        written = (proj / "data.txt").read_text().splitlines()
        assert written[1:] == ["OMP_NUM_THREADS 3", "CUDA_VISIBLE_DEVICES 1,0"]


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
