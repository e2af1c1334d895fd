"""Calibration (ADR-0661): Phase F content recipes and the NR skip threshold."""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import block_of, load_sidecar, run_script, sidecar_of

CANONICAL = ["adm2", "vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3", "motion2"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_recipes_fit_vmaf_against_crf_per_encoder_and_class(demo):
    corpus = demo / "corpora/encode_grid.jsonl"
    out = demo / "models/phase_f_recipes.json"
    document = json.loads(out.read_text())
    rows = [json.loads(line) for line in corpus.read_text().splitlines()]
    assert document["corpus"] == {
        "path": corpus.name,
        "sha256": sha256(corpus.read_bytes()),
        "rows_sha256": sha256(corpus.read_bytes()),  # under the cap, every line was read
        "row_cap": 1000,
        "rows_read": len(rows),
        "capped": False,
        "rows_used": len(rows),
        "rows_skipped": 0,
    }
    motion: dict[str, list[float]] = {}
    for row in rows:
        motion.setdefault(row["src_sha256"], []).append(row["motion2_mean"])
    klass = {s: "high_motion" if np.mean(m) >= 8.0 else "low_motion" for s, m in motion.items()}
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["encoder"], klass[row["src_sha256"]]), []).append(row)
    assert [(r["encoder"], r["content_class"]) for r in document["recipes"]] == sorted(groups)
    for recipe in document["recipes"]:
        members = groups[(recipe["encoder"], recipe["content_class"])]
        crf = np.array([r["crf"] for r in members], dtype=float)
        vmaf = np.array([r["vmaf_score"] for r in members])
        slope = np.cov(crf, vmaf, bias=True)[0, 1] / np.var(crf)
        intercept = vmaf.mean() - slope * crf.mean()
        assert recipe["rows"] == len(members)
        assert recipe["sources"] == len({r["src_sha256"] for r in members})
        assert recipe["slope"] == pytest.approx(slope, abs=1e-5)
        assert recipe["intercept"] == pytest.approx(intercept, abs=1e-4)
        assert recipe["r2"] == pytest.approx(np.corrcoef(crf, vmaf)[0, 1] ** 2, abs=1e-6)
        for target, chosen in recipe["crf"].items():
            wanted = (float(target) - intercept) / slope
            assert chosen["crf"] == min(crf.max(), max(crf.min(), math.floor(wanted)))
            assert chosen["reachable"] is bool(wanted >= crf.min())
    manifest = load_sidecar(sidecar_of(out))
    assert manifest["corpus_snapshot"] == document["corpus"]
    assert manifest["targets"] == [90.0, 80.0, 70.0]
    block = manifest["run_provenance"]
    assert block["inputs"]["corpus"]["sha256"] == sha256(corpus.read_bytes())
    assert block["outputs"]["recipes"]["sha256"] == sha256(out.read_bytes())
    assert document["run_provenance"]["outputs"]["recipes"]["embedded_here"] is True
    assert block["outcome"]["gates"]["recipe_fit"]["passed"] is True


def recipes(corpus: Path, out: Path, *extra: object):
    return run_script("calibrate_phase_f_recipes", "--corpus", corpus, "--out", out, *extra)


def test_a_row_cap_that_leaves_too_few_rows_fails_the_gate_with_the_snapshot(demo, tmp_path):
    corpus = demo / "corpora/encode_grid.jsonl"
    out = tmp_path / "recipes.json"
    proc = recipes(corpus, out, "--max-rows", "3")
    assert proc.returncode == 1, proc.stderr
    assert "too few rows or a weak fit" in proc.stderr
    document = json.loads(out.read_text())
    head = b"".join(corpus.read_bytes().splitlines(keepends=True)[:3])
    snapshot = document["corpus"]
    assert (snapshot["rows_sha256"], snapshot["rows_read"], snapshot["capped"]) == (
        sha256(head),
        3,
        True,
    )
    assert [r["rows"] for r in document["recipes"]] == [3]
    assert document["gate"]["passed"] is False
    gate = block_of(out)["outcome"]["gates"]["recipe_fit"]
    assert (gate["passed"], gate["weak_recipes"]) == (False, document["gate"]["weak_recipes"])


def test_a_row_that_is_not_an_encode_grid_row_is_exit_2_and_writes_nothing(demo, tmp_path):
    rows = (demo / "corpora/encode_grid.jsonl").read_text().splitlines()
    bad = json.loads(rows[1])
    del bad["vmaf_score"]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join([rows[0], json.dumps(bad), *rows[2:]]) + "\n")
    out = tmp_path / "recipes.json"
    proc = recipes(corpus, out)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(f"{corpus}:2: not an encode-grid row: no vmaf_score")
    assert not out.exists()


# -- the NR threshold --------------------------------------------------------------------------


def encodes(folder: Path, grid: list[int], features: list[str]):
    """Each encode's NR inputs and pooled VMAF, read straight from its libvmaf JSON."""
    x, vmaf, crfs = [], [], []
    for path in sorted(folder.glob("*.json")):
        crf = int(re.search(r"_crf(\d+)", path.stem)[1])
        if crf not in grid:
            continue
        document = json.loads(path.read_text())
        frames = [f["metrics"] for f in document["frames"]]
        x.append([np.mean([m[f"integer_{f}"] for m in frames]) if f in CANONICAL else 0.0
                  for f in features])  # fmt: skip
        pooled = document.get("pooled_metrics", {}).get("vmaf", {}).get("mean")
        vmaf.append(pooled if pooled is not None else frames[-1]["vmaf"])
        crfs.append(crf)
    return np.array(x, dtype=np.float32), np.array(vmaf), np.array(crfs)


def test_the_threshold_is_the_lowest_nr_score_that_meets_the_precision(demo):
    out = demo / "models/nr_metric_v1.json"
    document = json.loads(out.read_text())
    model = demo / "models/konvid_mos_head.onnx"
    features = json.loads((demo / "models/konvid_mos_head.json").read_text())["features"]
    corpus = demo / "sample/bvi_dvc/vmaf_cache"
    x, vmaf, crfs = encodes(corpus, [22, 27, 32, 37], features)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    nr = np.round(session.run(None, {"features": x})[0].reshape(-1).astype(np.float64), 6)
    assert document["model"]["sha256"] == sha256(model.read_bytes())
    assert document["model"]["zero_filled"] == [f for f in features if f not in CANONICAL]
    assert document["corpus"] == {
        "requested": str(demo / "sample/bvi_dvc"),
        "actual": str(corpus),
        "encodes": len(vmaf),
        "outside_grid": 0,
    }
    assert document["crf_grid"] == [22, 27, 32, 37]
    for row in document["per_crf"]:
        at = crfs == row["crf"]
        assert row["encodes"] == int(at.sum()) == 4
        assert row["mean_vmaf"] == pytest.approx(vmaf[at].mean(), abs=1e-6)
        assert row["mean_nr"] == pytest.approx(nr[at].mean(), abs=1e-5)
    threshold = document["threshold"]
    good = vmaf >= 70.0

    def precision(t: float) -> float:
        return float(good[nr >= t - 1e-6].mean())

    assert precision(threshold) >= 0.95
    assert all(precision(t) < 0.95 for t in nr if t < threshold - 1e-5)
    skipped = nr >= threshold - 1e-6
    assert document["recall"] == pytest.approx((skipped & good).sum() / good.sum(), abs=1e-6)
    assert document["skipped_fraction"] == pytest.approx(skipped.mean(), abs=1e-6)
    report = (demo / "reports/nr_threshold.md").read_text()
    assert f"Threshold {threshold:g}" in report
    assert "| 27 | 4 |" in report
    manifest = load_sidecar(sidecar_of(out))
    assert manifest["crf_grid"] == [22, 27, 32, 37]
    assert manifest["threshold"] == threshold
    block = manifest["run_provenance"]
    assert block["inputs"]["model"]["sha256"] == sha256(model.read_bytes())
    assert block["inputs"]["actual_corpus"]["kind"] == "directory"
    assert block["outputs"]["report"]["sha256"] == sha256(report.encode())
    assert block["outcome"]["gates"]["nr_threshold"]["passed"] is True


def nr_threshold(demo: Path, tmp_path: Path, corpus: Path, *extra: object):
    return run_script("calibrate_nr_threshold", "--corpus-dir", corpus,
                      "--model", demo / "models/konvid_mos_head.onnx",
                      "--out-json", tmp_path / "nr.json", "--report-md", tmp_path / "nr.md",
                      *extra)  # fmt: skip


def test_an_unreachable_vmaf_target_fails_the_gate_with_both_files_written(demo, tmp_path):
    proc = nr_threshold(demo, tmp_path, demo / "sample/bvi_dvc", "--vmaf-target", "99")
    assert proc.returncode == 1, proc.stderr
    document = json.loads((tmp_path / "nr.json").read_text())
    assert (document["threshold"], document["gate"]["passed"]) == (None, False)
    assert "no threshold" in (tmp_path / "nr.md").read_text()
    gate = block_of(tmp_path / "nr.json")["outcome"]["gates"]["nr_threshold"]
    assert (gate["passed"], gate["threshold"]) == (False, None)


def test_a_missing_corpus_folder_is_exit_2_and_writes_neither_file(demo, tmp_path):
    gone = tmp_path / "gone"
    proc = nr_threshold(demo, tmp_path, gone)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"calibrate_nr_threshold.py: error: {gone}: no such folder"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nr.json.manifest.json"]
