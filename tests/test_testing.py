"""provenance.testing: the provenance_run fixture and run_recorded, used as a project would."""

from __future__ import annotations

import json
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
