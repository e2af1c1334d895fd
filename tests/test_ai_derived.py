"""Derived tables and their audits (ADR-0661, ADR-0668): MOS labels, saliency and
second-opinion features, and the signal-mix audit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import block_of, load_sidecar, run_script, sidecar_of


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def report_of(demo: Path, name: str) -> dict:
    return json.loads((demo / "reports/tables" / f"{name}.json").read_text())


def test_the_mos_labels_are_the_aggregated_rows_of_each_clip(demo):
    out = demo / "tables/derived/mos_labels.parquet"
    labels = pq.read_table(out).to_pylist()
    aggregated = [json.loads(line) for line in (demo / "corpora/mos_aggregated.jsonl").open()]
    by_name = {
        PurePosixPath(r["src"]).name: r for r in aggregated if r["corpus_source"] == "konvid-150k"
    }
    clips = pq.read_table(demo / "tables/k150k_enriched.parquet").column("clip_name").to_pylist()
    assert [row["clip_name"] for row in labels] == clips
    for row in labels:
        source = by_name[row["clip_name"]]
        assert row["mos"] == source["mos"]
        assert row["mos_acr"] == pytest.approx(1 + 4 * source["mos"] / 100, abs=1e-6)
        assert row["n_ratings"] == source["n_ratings"]
    report = report_of(demo, "mos_labels")
    assert report["source_tables"] == {"table": "k150k_enriched.parquet"}
    assert report["joined_inputs"] == {"labels": "mos_aggregated.jsonl", "corpus": "konvid-150k"}
    assert report["thresholds"] == {"max_std_dev": 20.0, "min_ratings": 1, "min_match": 0.95}
    assert report["counts"]["matched"] == 600
    embedded = report["run_provenance"]
    assert embedded["inputs"]["labels"]["sha256"] == sha256(demo / "corpora/mos_aggregated.jsonl")
    assert embedded["outputs"]["table"]["sha256"] == sha256(out)
    # ADR-0668: the derived table's manifest sits beside it.
    assert load_sidecar(sidecar_of(out))["run_provenance"]["outcome"]["gates"]["label_match"][
        "passed"
    ]


def test_the_saliency_features_follow_each_clips_frames(demo):
    table = pq.read_table(demo / "tables/derived/saliency.parquet").to_pylist()
    assert len(table) == 600
    for row in table[:25]:
        document = json.loads(
            (demo / "sample/k150k/vmaf_cache" / f"{row['clip_name']}.json").read_text()
        )
        motion = np.array([f["metrics"]["integer_motion2"] for f in document["frames"]])
        adm = np.array([f["metrics"]["integer_adm2"] for f in document["frames"]])
        c = 0.5 * motion / (motion + 8.0) + 0.5 * (1.0 - adm)
        assert row["saliency_mean"] == pytest.approx(c.mean(), abs=1e-6)
        assert row["saliency_var"] == pytest.approx(c.var(), abs=1e-6)
        assert row["saliency_frames"] == len(c)
    report = report_of(demo, "saliency")
    inputs = report["run_provenance"]["inputs"]
    assert inputs["cache"]["kind"] == "directory"
    assert inputs["cache"]["file_count"] == 600
    assert report["counts"]["coverage"] == 1.0


def test_the_second_opinion_is_the_shipped_head_beside_the_tables_mos(demo):
    rows = pq.read_table(demo / "tables/derived/second_opinion.parquet").to_pylist()
    chug = pq.read_table(demo / "tables/chug_enriched.parquet")
    assert [r["clip_name"] for r in rows] == chug.column("clip_name").to_pylist()
    for row, mos in zip(rows, chug.column("mos").to_pylist(), strict=True):
        assert row["mos"] == pytest.approx(1 + 4 * mos / 100, abs=1e-6)
        assert row["disagreement"] == pytest.approx(
            row["second_opinion_mos"] - row["mos"], abs=2e-6
        )
        assert row["agrees"] == (abs(row["disagreement"]) <= 0.5)
    report = report_of(demo, "second_opinion")
    model = demo / "models/konvid_mos_head.onnx"
    assert report["run_provenance"]["inputs"]["model"]["sha256"] == sha256(model)
    opinion = np.array([r["second_opinion_mos"] for r in rows])
    mos = np.array([r["mos"] for r in rows])
    assert report["measures"]["plcc"] == pytest.approx(np.corrcoef(opinion, mos)[0, 1], abs=1e-5)


def test_the_signal_mix_reports_shares_and_coverage(demo):
    report = report_of(demo, "signal_mix")
    assert report["corpus_shares"] == {
        "chug": round(64 / 664, 6),
        "konvid-150k": round(600 / 664, 6),
    }
    by = {s["name"]: s for s in report["signals"]}
    assert by["saliency"]["coverage_by_corpus"] == {"chug": 0.0, "konvid-150k": 1.0}
    assert by["second_opinion"]["joined_rows"] == 64
    assert report["joined_inputs"] == {
        name: f"{name}.parquet" for name in ("mos_labels", "saliency", "second_opinion")
    }
    signals = report["run_provenance"]["inputs"]["signals"]
    assert [Path(s["path"]).name for s in signals] == list(report["joined_inputs"].values())
    assert all(s["sha256"] == sha256(Path(s["path"])) for s in signals)


# -- small inputs: the gates, bad input, determinism --------------------------------------------


@pytest.fixture
def small(tmp_path: Path) -> dict[str, Path]:
    clips = [f"clip{i}.mp4" for i in range(6)]
    table = tmp_path / "table.parquet"
    pq.write_table(
        pa.table(
            {
                "clip_name": clips,
                "corpus": ["a"] * 5 + ["b"],
                "mos": [1.5, 2.0, 2.5, 3.0, 3.5, 4.0],
            }
        ),
        table,
    )
    labels = tmp_path / "labels.jsonl"
    rows = [
        {"src": f"videos/{c}", "mos": 10.0 * i, "corpus_source": "k", "n_ratings": 3}
        for i, c in enumerate(clips[:5])
    ]
    labels.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cache = tmp_path / "cache"
    cache.mkdir()
    for i, clip in enumerate(clips[:4]):
        frames = [
            {"frameNum": n, "metrics": {"integer_motion2": 2.0 + n + i, "integer_adm2": 0.9}}
            for n in range(3)
        ]
        (cache / f"{clip}.json").write_text(json.dumps({"frames": frames}))
    return {"table": table, "labels": labels, "cache": cache, "dir": tmp_path}


def test_a_table_too_little_labelled_fails_and_still_writes_its_evidence(small):
    out, report = small["dir"] / "d/labels.parquet", small["dir"] / "r/labels.json"
    proc = run_script("materialize_mos_labels", "--table", small["table"], "--labels",
                      small["labels"], "--out", out, "--report-out", report)  # fmt: skip
    assert proc.returncode == 1
    assert pq.read_table(out).num_rows == 5
    document = json.loads(report.read_text())
    assert document["counts"]["match_fraction"] == round(5 / 6, 6)
    assert document["unmatched_clips"] == ["clip5.mp4"]
    assert block_of(out)["outcome"]["gates"]["label_match"]["passed"] is False


def test_a_label_without_mos_is_exit_2_and_writes_nothing(small):
    small["labels"].write_text(json.dumps({"src": "videos/clip0.mp4"}) + "\n")
    out, report = small["dir"] / "labels.parquet", small["dir"] / "labels.json"
    proc = run_script("materialize_mos_labels", "--table", small["table"], "--labels",
                      small["labels"], "--out", out, "--report-out", report)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"materialize_mos_labels.py: error: {small['labels']}:1: a label needs src and a finite mos"
    ]
    assert not out.exists()
    assert not report.exists()


def test_saliency_coverage_gates_and_two_runs_are_byte_identical(small):
    out, report = small["dir"] / "sal.parquet", small["dir"] / "sal.json"
    argv = ["--table", small["table"], "--cache-dir", small["cache"], "--out", out,
            "--report-out", report]  # fmt: skip
    seen = []
    for _ in range(2):
        proc = run_script("materialize_saliency_features", *argv)
        assert proc.returncode == 1  # four of six clips measured
        seen.append([p.read_bytes() for p in (out, report, sidecar_of(out))])
    assert seen[0] == seen[1]
    assert json.loads(report.read_text())["missing_clips"] == ["clip4.mp4", "clip5.mp4"]
    proc = run_script("materialize_saliency_features", *argv, "--min-coverage", "0.6")
    assert proc.returncode == 0, proc.stderr


def test_a_dominant_corpus_or_a_thin_signal_fails_the_mix(small):
    labels = small["dir"] / "labels.parquet"
    run_script("materialize_mos_labels", "--table", small["table"], "--labels", small["labels"],
               "--out", labels, "--report-out", small["dir"] / "l.json")  # fmt: skip
    report = small["dir"] / "mix.json"
    mix = ["--table", small["table"], "--signal", f"labels={labels}", "--out-json", report]
    proc = run_script("signal_mix_audit", *mix, "--max-corpus-share", "0.8")
    assert proc.returncode == 1
    document = json.loads(report.read_text())
    assert document["gate"] == {
        "passed": False,
        "largest_corpus_share": round(5 / 6, 6),
        "thin_signals": [],
    }
    assert document["signals"][0]["coverage_by_corpus"] == {"a": 1.0, "b": 0.0}
    proc = run_script("signal_mix_audit", *mix, "--min-coverage", "0.9")
    assert proc.returncode == 1
    assert json.loads(report.read_text())["gate"]["thin_signals"] == ["labels"]


def test_a_signal_with_repeated_keys_is_exit_2(small):
    signal = small["dir"] / "dup.parquet"
    pq.write_table(pa.table({"clip_name": ["clip0.mp4", "clip0.mp4"], "x": [1.0, 2.0]}), signal)
    report = small["dir"] / "mix.json"
    proc = run_script("signal_mix_audit", "--table", small["table"], "--signal", f"d={signal}",
                      "--out-json", report)  # fmt: skip
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "clip_name is not unique" in proc.stderr
    assert not report.exists()
