"""The demo script, ai/scripts/summarize_scores.py, run as a user runs it."""

from __future__ import annotations

import json

import pytest

from ai.corpus.scores import ScoreTableError, read_scores, summarise
from tests.conftest import ROOT, load_sidecar, run_python, sidecar_of

SAMPLE = ROOT / "ai/sample/scores.csv"


def summarize(*argv):
    return run_python("-m", "ai.scripts.summarize_scores", *argv)


def test_sample_run_passes_its_gate(tmp_path):
    out = tmp_path / "summary.json"
    proc = summarize(SAMPLE, "--out", out)
    assert proc.returncode == 0, proc.stderr
    document = load_sidecar(sidecar_of(out))
    assert document["clips"] == 24
    block = document["run_provenance"]
    assert block["entrypoint"]["path"] == "ai/scripts/summarize_scores.py"
    assert "ai/corpus/scores.py" in block["code"]
    assert block["inputs"]["scores"]["path"] == "ai/sample/scores.csv"
    assert block["outcome"]["gates"]["mos_spread"]["passed"] is True
    assert json.loads(out.read_text())["run_provenance"]["outcome"] == block["outcome"]


def test_failed_gate_exits_1_with_report_and_sidecar(tmp_path):
    out = tmp_path / "summary.json"
    proc = summarize(SAMPLE, "--out", out, "--min-std", 5)
    assert proc.returncode == 1
    report = json.loads(out.read_text())
    assert report["gate"] == {"mos_spread": False}
    assert load_sidecar(sidecar_of(out))["run_provenance"]["outcome"]["status"] == "failed"


def test_malformed_csv_is_a_clear_error_and_writes_no_report(tmp_path):
    bad = tmp_path / "scores.csv"
    bad.write_text("clip_name,mos\na.mp4,4.0\nb.mp4,seven\n")
    out = tmp_path / "summary.json"
    proc = summarize(bad, "--out", out)
    assert proc.returncode == 2
    assert f"{bad}:3: mos 'seven' is not a number" in proc.stderr
    assert not out.exists()
    block = load_sidecar(sidecar_of(out))["run_provenance"]
    assert block["outputs"]["report"] == {"path": out.as_posix(), "exists": False}
    assert block["outcome"]["exit_code"] == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("clip,mos\n", "missing column"),
        ("clip_name,mos\n", "no rows"),
        ("clip_name,mos\na,5.5\n", "outside the 1-5"),
        ("clip_name,mos\na,3\na,4\n", "appears twice"),
        ("clip_name,mos\n,3\n", "empty clip_name"),
    ],
)
def test_read_scores_rejects(tmp_path, text, message):
    path = tmp_path / "s.csv"
    path.write_text(text)
    with pytest.raises(ScoreTableError, match=message):
        read_scores(path)


def test_summary_does_not_depend_on_row_order():
    assert summarise({"a": 1.0, "b": 3.0}) == summarise({"b": 3.0, "a": 1.0})
    assert summarise({"a": 1.0, "b": 3.0}).mos_std == 1.0
