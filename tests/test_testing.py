"""provenance.testing: the provenance_run fixture and run_recorded, used as a project would."""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import sys
from pathlib import Path

import pytest

from ai.scripts import summarize_scores, train_chug_hdr_mos_head
from provenance.testing import RecordedResult, run_recorded, run_recorded_command
from tests.conftest import FAKES, ROOT
from tests.fakes import outcomes, trainer

SCORES = ROOT / "ai/sample/scores.csv"


def test_the_fixture_runs_main_in_tmp_path_and_hands_back_the_record(provenance_run, tmp_path):
    result = provenance_run(summarize_scores.main, [SCORES, "--out", "summary.json"])
    assert result.exit_code == 0
    assert result.sidecar_path == tmp_path / "summary.json.manifest.json"
    assert result.sidecar["clips"] == 24
    assert result.block["outputs"]["report"]["path"] == str(tmp_path / "summary.json")
    assert result.block["entrypoint"]["path"] == "ai/scripts/summarize_scores.py"
    assert json.loads((tmp_path / "summary.json").read_text())["summary"]["clips"] == 24


def test_a_failed_gate_is_an_exit_code_and_a_record(provenance_run, tmp_path):
    (tmp_path / "f.csv").write_text("adm2\n0.9\n")
    result = provenance_run(
        trainer.main, ["--features", "f.csv", "--out-json", "m.json", "--plcc", "0.2"]
    )
    assert result.exit_code == 1
    assert result.block["outcome"]["gates"]["plcc"]["passed"] is False


def test_an_exception_is_kept_for_the_test_not_raised(provenance_run):
    result = provenance_run(outcomes.main, ["--mode", "raise", "--out", "o.txt"])
    assert result.exit_code == 1
    assert isinstance(result.exception, ValueError)
    assert result.block["outcome"]["error"]["type"] == "ValueError"


def test_sys_exit_becomes_the_exit_code(provenance_run):
    result = provenance_run(outcomes.main, ["--mode", "exit-int", "--code", "4", "--out", "o"])
    assert (result.exit_code, result.block["outcome"]["exit_code"]) == (4, 4)


@pytest.mark.parametrize(
    ("mode", "value", "code"),
    [
        ("return-value", "exit-int", 3),  # sys.exit(main()) exits 3 when main returns SystemExit(3)
        ("return-value", "exit-none", 0),
        ("return-value", "int-257", 1),
        ("exit-value", "exit-of-exit", 1),  # the inner SystemExit is printed, not its code
        ("exit-value", "exit-hostile-code", 1),
    ],
)
def test_the_exit_code_is_what_the_script_would_exit_with(provenance_run, mode, value, code):
    result = provenance_run(outcomes.main, ["--mode", mode, "--value", value, "--out", "o"])
    assert (result.exit_code, result.block["outcome"]["exit_code"]) == (code, code)


def test_a_delegating_wrapper_records_once_under_its_own_name(provenance_run, demo):
    table = demo / "tables/chug_enriched.parquet"
    result = provenance_run(
        train_chug_hdr_mos_head.main,
        [
            "--table",
            table,
            "--gate",
            "synthetic",
            "--folds",
            "4",
            "--out-model",
            "m.npz",
            "--out-json",
            "m.json",
        ],
    )
    assert result.exit_code == 0
    assert len(result.written) == 1
    assert result.block["shared_trainer"]["path"] == "ai/scripts/train_konvid_mos_head.py"


def test_help_writes_no_record(provenance_run):
    result = provenance_run(summarize_scores.main, ["--help"])
    assert result.exit_code == 0
    assert result.sidecar is None
    with pytest.raises(AssertionError, match="wrote no sidecar"):
        _ = result.block


def test_run_recorded_works_without_pytest(tmp_path):
    result = run_recorded(summarize_scores.main, [SCORES, "--out", tmp_path / "s.json"])
    assert result.exit_code == 0
    assert Path(result.sidecar_path).parent == tmp_path


class TestScriptsWithoutMainArgv:
    """Third-party scripts seldom have ``main(argv)``: their main reads ``sys.argv``, or the
    work is the body of ``if __name__ == "__main__"``, or they run as ``python -m``."""

    def test_a_main_without_argv_runs_on_sys_argv(self, provenance_run, tmp_path):
        from tests.fakes import argv_free

        before = list(sys.argv)
        result = provenance_run(argv_free.main, ["--out", "m.txt"])
        assert result.exception is None
        assert result.exit_code == 0
        assert result.block["args"] == {"out": "m.txt", "crash": False}
        assert result.block["outputs"]["model"]["path"] == str(tmp_path / "m.txt")
        assert (tmp_path / "m.txt").read_text() == f"{argv_free.__file__}\n"  # sys.argv[0]
        assert sys.argv == before

    @pytest.mark.parametrize(
        "target",
        [
            ROOT / "tests/fakes/argv_free.py",
            str(ROOT / "tests/fakes/argv_free.py"),
            "tests.fakes.argv_free",
        ],
        ids=["path", "path string", "module name"],
    )
    def test_a_script_file_or_module_runs_as_main(self, provenance_run, tmp_path, target):
        result = provenance_run(target, ["--out", "m.txt"])
        assert result.exception is None
        assert (result.exit_code, result.block["outcome"]["status"]) == (0, "succeeded")
        assert result.block["entrypoint"]["path"] == "tests/fakes/argv_free.py"
        assert result.sidecar_path == tmp_path / "m.txt.manifest.json"

    def test_a_script_with_no_main_runs_as_main(self, provenance_run, tmp_path):
        result = provenance_run(ROOT / "tests/fakes/no_main.py", ["--out", "r.txt"])
        assert result.exit_code == 0
        assert result.block["outputs"]["report"]["written_by_run"] is True
        assert result.block["entrypoint"]["path"] == "tests/fakes/no_main.py"

    def test_an_exit_code_from_a_script_file(self, provenance_run):
        result = provenance_run(
            ROOT / "tests/fakes/outcomes.py", ["--mode", "exit-int", "--code", "4", "--out", "o"]
        )
        assert (result.exit_code, result.block["outcome"]["exit_code"]) == (4, 4)

    def test_the_scripts_own_exception_is_what_is_reported(self, provenance_run):
        result = provenance_run(ROOT / "tests/fakes/argv_free.py", ["--out", "m.txt", "--crash"])
        assert result.exit_code == 1
        assert isinstance(result.exception, TypeError)
        assert result.block["outcome"]["error"]["type"] == "TypeError"

    def test_no_record_fails_with_the_scripts_exception(self, provenance_run):
        from tests.fakes import argv_free

        result = provenance_run(argv_free.main, ["--out", "m.txt", "--crash-early"])
        assert isinstance(result.exception, TypeError)
        with pytest.raises(AssertionError, match=r"(?s)wrote no sidecar.*TypeError: a script"):
            _ = result.block

    def test_something_that_cannot_run_is_refused(self, tmp_path):
        with pytest.raises(ValueError, match="neither a script file nor a module"):
            run_recorded("no.such.module_here", [], cwd=tmp_path)


class TestCommands:
    """``provenance_run.command``: a command run under ``provenance run`` as a real subprocess,
    with the records it noted in the record log."""

    @pytest.fixture
    def project(self, tmp_path: Path) -> Path:
        (tmp_path / "pyproject.toml").write_text("[project]\nname = 'p'\n")
        (tmp_path / "data.txt").write_text("rows\n")
        shutil.copy(FAKES / "plain_train.py", tmp_path / "train.py")
        return tmp_path

    def train(self, provenance_run, *more: str) -> RecordedResult:
        return provenance_run.command(
            ["python", "train.py", "--data", "data.txt", "--out", "m.txt", *more],
            inputs={"data": "data.txt"},
            outputs={"model": "m.txt"},
        )

    def test_an_undecorated_script_is_recorded(self, provenance_run, project):
        result = self.train(provenance_run, "--epochs", "7")
        assert result.exit_code == 0, result.stderr
        assert (result.stdout, result.stderr) == ("trained 7 epochs\n", "")
        assert result.exception is None
        assert result.sidecar_path == project / "m.txt.manifest.json"
        assert result.written == [result.sidecar_path]
        assert result.sidecar == json.loads(result.sidecar_path.read_text())
        assert result.block["args"] == {
            "data": "data.txt",
            "end": None,
            "epochs": 7,
            "out": "m.txt",
        }
        assert result.block["entrypoint"]["path"] == "train.py"
        assert result.block["inputs"]["data"]["path"] == "data.txt"
        assert result.block["outputs"]["model"]["written_by_run"] is True
        assert result.block["outcome"]["status"] == "succeeded"

    def test_a_failing_script_gives_its_exit_code_its_traceback_and_its_outcome(
        self, provenance_run, project
    ):
        result = self.train(provenance_run, "--end", "raise")
        assert result.exit_code == 1
        assert result.stderr.startswith("Traceback (most recent call last):\n")
        assert result.stderr.endswith("RuntimeError: diverged at epoch 5\n")
        assert result.block["outcome"]["status"] == "failed"
        assert result.block["outcome"]["error"] == {
            "type": "RuntimeError",
            "message": "diverged at epoch 5",
        }

    def test_an_exit_code_and_a_failed_gate(self, provenance_run, project):
        exited = self.train(provenance_run, "--end", "exit")
        assert (exited.exit_code, exited.block["outcome"]["exit_code"]) == (3, 3)
        gated = self.train(provenance_run, "--end", "gate")
        assert gated.exit_code == 0  # a gate is evidence: the script's exit code stays its own
        assert gated.block["outcome"]["gates"] == {
            "rmse": {"passed": False, "value": 0.9, "threshold": 0.5}
        }

    def test_a_bare_python_is_this_interpreter(self, provenance_run, project):
        result = provenance_run.command(
            ["python", "-c", "import sys; open('o.txt', 'w').write(sys.executable)"],
            outputs={"out": "o.txt"},
        )
        assert result.exit_code == 0, result.stderr
        assert (project / "o.txt").read_text() == sys.executable
        assert result.block["entrypoint"]["path"] == sys.executable

    def test_a_module_runs_as_python_m_does(self, provenance_run, project):
        result = provenance_run.command(
            ["python", "-m", "tests.fakes.plain_train", "--data", "data.txt", "--out", "m.txt"],
            outputs={"model": "m.txt"},
            config=["data.txt"],
            root=ROOT,
            env={"PYTHONPATH": str(ROOT)},  # the module is found where the tests are
        )
        assert result.exit_code == 0, result.stderr
        assert result.block["entrypoint"]["path"] == "tests/fakes/plain_train.py"
        assert result.block["config"]["files"][0]["path"] == str(project / "data.txt")
        assert result.sidecar_path == project / "m.txt.manifest.json"

    def test_a_shell_command_is_recorded_from_outside(self, provenance_run, project):
        result = provenance_run.command(
            ["sh", "-c", "echo made > out.txt; echo done; echo noted >&2"],
            outputs={"out": "out.txt"},
        )
        assert result.exit_code == 0, result.stderr
        assert (result.stdout, result.stderr) == ("done\n", "noted\n")
        assert result.block["entrypoint"]["kind"] == "program"
        assert result.block["argv"] == ["-c", "echo made > out.txt; echo done; echo noted >&2"]
        assert result.block["outputs"]["out"]["written_by_run"] is True
        assert result.sidecar_path == project / "out.txt.manifest.json"

    @pytest.mark.parametrize(
        ("script", "code", "status"),
        [("exit 5", 5, "failed"), ("kill -TERM $$", -signal.SIGTERM, "interrupted")],
    )
    def test_a_shell_commands_end_is_its_exit_code_and_outcome(
        self, provenance_run, project, script, code, status
    ):
        result = provenance_run.command(["sh", "-c", script], outputs={"out": "out.txt"})
        assert result.exit_code == code  # negative: the signal that ended it, as subprocess says
        assert result.block["outcome"]["status"] == status

    def test_a_command_that_cannot_start_exits_127_and_says_why(self, provenance_run, project):
        result = provenance_run.command(["no-such-program-here"], outputs={"out": "out.txt"})
        assert result.exit_code == 127
        assert result.stderr == "provenance: no-such-program-here: command not found\n"
        assert (result.sidecar_path, result.sidecar, result.written) == (None, None, [])
        with pytest.raises(AssertionError, match=r"exited 127, its stderr:\n.*command not found"):
            _ = result.block

    def test_what_provenance_run_refuses_is_its_usage_error(self, provenance_run, project):
        result = provenance_run.command(["sh", "-c", "true"])  # nowhere to put the record
        assert result.exit_code == 2
        assert "give one with --output NAME=PATH" in result.stderr

    def test_every_record_the_command_wrote_is_listed(self, provenance_run, project):
        (project / "one.py").write_text(
            "import argparse\n"
            "from provenance import recorded_run\n"
            "@recorded_run(outputs={'out': 'out'})\n"
            "def main():\n"
            "    parser = argparse.ArgumentParser()\n"
            "    parser.add_argument('out')\n"
            "    open(parser.parse_args().out, 'w').write('made')\n"
            "main()\n"
        )
        python = shlex.quote(sys.executable)
        result = provenance_run.command(
            ["sh", "-c", f"{python} one.py a.txt && {python} one.py b.txt && touch log.txt"],
            outputs={"log": "log.txt"},
        )
        assert result.exit_code == 0, result.stderr
        # The scripts the shell started noted theirs too; the command's own record comes last.
        assert result.written == [
            project / "a.txt.manifest.json",
            project / "b.txt.manifest.json",
            project / "log.txt.manifest.json",
        ]
        assert result.sidecar_path == project / "log.txt.manifest.json"
        assert result.block["entrypoint"]["kind"] == "program"

    def test_run_recorded_command_works_without_pytest(self, project):
        result = run_recorded_command(
            ["python", "train.py", "--data", "data.txt", "--out", "m.txt"],
            outputs={"model": "m.txt"},
            cwd=project,
        )
        assert result.exit_code == 0, result.stderr
        assert result.sidecar_path == project / "m.txt.manifest.json"
