"""provenance.testing: the provenance_run fixture and run_recorded, used as a project would."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ai.scripts import summarize_scores, train_chug_hdr_mos_head
from provenance.testing import run_recorded
from tests.conftest import ROOT
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
