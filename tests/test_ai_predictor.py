"""The predictor v2 real-corpus gate (ADR-0661): per-codec source-grouped CV and its report."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np
import pytest

from ai.predictor.corpus import synthetic_row
from ai.predictor.model import FEATURES, Predictor, input_stats, project
from ai.predictor.realcorpus import CODECS
from ai.sample.predictor import CRFS
from tests.conftest import block_of, load_sidecar, run_python, run_script, sidecar_of


def write_corpus(path: Path, codec: str, sources: int, *, noise: bool = False) -> Path:
    rng = np.random.default_rng(5)
    rows = [synthetic_row(rng, codec, s, crf) for s in range(sources) for crf in CRFS]
    if noise:  # the score has nothing to do with the encode
        for row in rows:
            row["vmaf_score"] = float(rng.uniform(20, 95))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def judge(report: Path, *argv: object, env_epoch: str | None = None):
    args = ["-m", "ai.scripts.train_predictor_v2_realcorpus", *argv, "--report-out", report]
    if env_epoch is None:
        return run_script("train_predictor_v2_realcorpus", *argv, "--report-out", report)
    prefix = f"import os, runpy, sys; os.environ['SOURCE_DATE_EPOCH'] = '{env_epoch}'; "
    code = prefix + "sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__')"
    return run_python("-c", code, *args[1:])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_learnable_corpus_passes_with_folds_grouped_by_source(tmp_path):
    root = tmp_path / "corpora"
    corpus = write_corpus(root / "x264" / "grid.jsonl", "libx264", 10)
    (root / "notes.txt").write_text("not a corpus")
    report_path = tmp_path / "out" / "report.json"
    proc = judge(report_path, "--corpus-root", root, "--codec", "libx264", "--epochs", "60")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(report_path.read_text())
    assert report["schema_version"] == 1
    assert report["generated_at_utc"] is None  # no wall clock unless SOURCE_DATE_EPOCH is set
    assert report["gate"] == {
        "mean_plcc_threshold": 0.95,
        "plcc_spread_max": 0.005,
        "per_fold_min": 0.95,
        "loso_fold_count": 5,
        "adr": "ADR-0303",
    }
    assert report["corpus"] == {"discovered_files": [str(corpus)], "roots": [str(root)]}
    (entry,) = report["codecs"]
    assert entry["status"] == "pass"
    assert entry["failure_reasons"] == []
    assert (entry["n_rows_total"], entry["n_distinct_sources"]) == (50, 10)
    assert entry["corpus_provenance"] == [{"path": str(corpus), "rows": 50}]
    # The folds: sorted sources, shuffled by random.Random(42), dealt round-robin.
    sources = sorted(f"sources/pred{s:02d}.y4m" for s in range(10))
    random.Random(42).shuffle(sources)
    assert [f["held_out_sources"] for f in entry["folds"]] == [
        sorted(sources[i::5]) for i in range(5)
    ]
    assert all(f["n_val"] == 10 and f["n_train"] == 40 for f in entry["folds"])
    plccs = [f["plcc"] for f in entry["folds"]]
    assert entry["mean_plcc"] == pytest.approx(np.mean(plccs), abs=1e-6)
    assert entry["plcc_spread"] == pytest.approx(max(plccs) - min(plccs), abs=1e-6)
    assert report["summary"] == {"n_pass": 1, "n_fail": 0, "n_insufficient": 0, "n_missing_rows": 0}
    # The record: the roots and each resolved corpus file, hashed, embedded into the report.
    embedded = report["run_provenance"]
    assert embedded["inputs"]["corpus_roots"][0]["kind"] == "directory"
    assert [e["sha256"] for e in embedded["inputs"]["resolved_corpora"]] == [sha256(corpus)]
    assert embedded["outcome"]["gates"]["predictor_libx264"]["passed"] is True
    assert block_of(report_path)["outputs"]["report"]["path"].endswith("report.json")


def test_two_runs_write_byte_identical_reports_and_sidecars(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", "libx265", 6)
    report = tmp_path / "report.json"
    seen = []
    for _ in range(2):
        proc = judge(report, "--corpus", corpus, "--codec", "libx265", "--epochs", "5")
        assert proc.returncode == 1, proc.stderr  # five epochs do not clear the gate
        seen.append((report.read_bytes(), sidecar_of(report).read_bytes()))
    assert seen[0] == seen[1]


def test_source_date_epoch_dates_the_report(tmp_path):
    corpus = write_corpus(tmp_path / "c.jsonl", "libx264", 2)
    report = tmp_path / "report.json"
    proc = judge(report, "--corpus", corpus, "--codec", "libx264", env_epoch="1767225600")
    assert proc.returncode == 1, proc.stderr
    assert json.loads(report.read_text())["generated_at_utc"] == "2026-01-01T00:00:00Z"


def test_a_diagnostic_allow_empty_run_still_records_its_roots(tmp_path):
    missing = tmp_path / "no-such-root"
    report_path = tmp_path / "report.json"
    proc = judge(report_path, "--corpus-root", missing, "--allow-empty")
    assert proc.returncode == 1
    report = json.loads(report_path.read_text())
    assert [c["codec"] for c in report["codecs"]] == list(CODECS)
    assert {c["status"] for c in report["codecs"]} == {"missing-rows"}
    assert report["summary"]["n_missing_rows"] == 14
    assert report["corpus"] == {"discovered_files": [], "roots": [str(missing)]}
    inputs = report["run_provenance"]["inputs"]
    assert inputs["corpus_roots"] == [{"path": str(missing), "exists": False}]
    assert inputs["resolved_corpora"] == []
    assert load_sidecar(sidecar_of(report_path))["run_provenance"]["inputs"] == inputs


def test_noise_fails_the_gate_and_too_few_sources_is_insufficient(tmp_path):
    noisy = write_corpus(tmp_path / "noisy.jsonl", "libx264", 10, noise=True)
    few = write_corpus(tmp_path / "few.jsonl", "libsvtav1", 4)
    report_path = tmp_path / "report.json"
    proc = judge(report_path, "--corpus", noisy, "--corpus", few, "--corpus", tmp_path / "gone",
                 "--codec", "libx264", "--codec", "libsvtav1", "--epochs", "20")  # fmt: skip
    assert proc.returncode == 1
    report = json.loads(report_path.read_text())
    x264, av1 = report["codecs"]
    assert x264["status"] == "fail"
    assert any(r.startswith("mean PLCC") for r in x264["failure_reasons"])
    assert av1["status"] == "insufficient-sources"
    assert av1["folds"] == []
    # The file that does not exist is dropped, not hashed as a resolved corpus.
    assert report["corpus"]["discovered_files"] == [str(noisy), str(few)]
    gates = block_of(report_path)["outcome"]["gates"]
    assert gates["predictor_libx264"]["passed"] is False
    assert gates["predictor_libsvtav1"]["status"] == "insufficient-sources"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--codec", "mpeg2", "--synthetic-smoke"], "unknown codec(s) mpeg2"),
        (["--corpus-root", "{tmp}/none"], "no corpus JSONL found"),
    ],
)
def test_a_usage_error_is_exit_2_and_writes_no_report(tmp_path, argv, message):
    report = tmp_path / "report.json"
    proc = judge(report, *(a.replace("{tmp}", str(tmp_path)) for a in argv))
    assert proc.returncode == 2
    assert message in proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr
    assert not report.exists()


def test_the_synthetic_smoke_rows_name_six_sources(tmp_path):
    report_path = tmp_path / "report.json"
    proc = judge(report_path, "--synthetic-smoke", "--codec", "libvvenc", "--epochs", "3")
    assert proc.returncode in (0, 1), proc.stderr
    (entry,) = json.loads(report_path.read_text())["codecs"]
    assert (entry["n_rows_total"], entry["n_distinct_sources"]) == (200, 6)
    assert entry["corpus_provenance"] == [{"path": "<synthetic-smoke>", "rows": 200}]


class TestModel:
    def test_the_projection_has_fourteen_inputs(self):
        row = synthetic_row(np.random.default_rng(0), "libx264", 3, 30)
        assert len(project(row)) == len(FEATURES) == 14
        assert project({}) == [0.0] * 8 + [5.0] + [0.0] * 5  # medium is the default preset

    def test_the_sigmoid_output_trains_by_its_true_gradient(self):
        rng = np.random.default_rng(1)
        x = rng.normal(size=(12, 14))
        y = rng.uniform(10, 90, 12)
        base = Predictor.create([14, 8, 8, 1], 3)
        model = Predictor(base.weights, base.biases, "relu")
        model.mean, model.std = input_stats(x)
        assert np.all((model.predict(x) > 0) & (model.predict(x) < 100))

        def loss() -> float:
            return float(np.mean((model.predict(x)[:, 0] - y) ** 2))

        # One Adam step on a tiny lr moves each weight against its gradient: the loss falls.
        before = loss()
        model.fit(x, y, epochs=1, batch_size=12, lr=1e-4, seed=0)
        assert loss() < before
        # And the gradient the fit used matches a finite difference of the loss.
        w = model.weights[-1]
        acts, _ = model._forward(model._standardise(x))
        grad = model._output_grad(acts[-1], 2.0 * (acts[-1] - y[:, None]) / len(y))
        analytic = acts[-2].T @ grad
        eps = 1e-6
        w[0, 0] += eps
        up = loss()
        w[0, 0] -= 2 * eps
        down = loss()
        w[0, 0] += eps
        assert analytic[0, 0] == pytest.approx((up - down) / (2 * eps), rel=1e-4)
