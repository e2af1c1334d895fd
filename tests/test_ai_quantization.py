"""vmaf-train's model checks and qat_train, as subprocesses on small real models and tables."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from ai.mos import onnx_head
from ai.mos.mos_head import Head
from ai.quantization import learned_filter
from tests.conftest import load_sidecar, run_python, run_script, sidecar_of

FEATURES = ("adm2", "vif_scale0", "motion2")
ROWS = 300


def vmaf_train(*argv: object):
    return run_python("-m", "ai.vmaf_train", *argv, timeout=120)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_head(path: Path, weights: list[float], mean: np.ndarray, std: np.ndarray) -> Path:
    head = Head(mean, std, np.array(weights), 3.0)
    model = onnx_head.build(head, FEATURES, 17, path.stem)
    data = model.SerializeToString(deterministic=True)
    path.write_bytes(data)
    sidecar = onnx_head.model_sidecar(path.stem, "mos_head", path.name, data, model, head, FEATURES)
    path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


def write_table(path: Path, x: np.ndarray, mos: np.ndarray) -> Path:
    columns = {"clip_name": [f"c{i:04d}" for i in range(len(x))], "mos": mos.tolist()}
    columns |= {f"{f}_mean": x[:, i].tolist() for i, f in enumerate(FEATURES)}
    pq.write_table(pa.table(columns), path)
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    top = tmp_path_factory.mktemp("quant")
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.normal(0.85, 0.08, ROWS), rng.normal(0.6, 0.1, ROWS),
                         rng.normal(8.0, 3.0, ROWS)])  # fmt: skip
    mean, std = x.mean(axis=0), x.std(axis=0)
    z = (x - mean) / std
    mos = np.clip(3.0 + 0.6 * z[:, 0] + 0.3 * z[:, 1] + rng.normal(0, 0.1, ROWS), 1, 5)
    write_table(top / "table.parquet", x, mos)
    write_table(top / "shifted.parquet", x + 3 * std, mos)
    write_table(top / "short.parquet", x[:100], mos[:100])
    good = write_head(top / "good.onnx", [0.6, 0.3, 0.0], mean, std)
    write_head(top / "good2.onnx", [0.55, 0.3, 0.05], mean, std)
    write_head(top / "bad.onnx", [-0.6, -0.3, 0.0], mean, std)
    write_head(top / "bad2.onnx", [-0.5, -0.3, 0.0], mean, std)
    frames = np.clip(rng.uniform(0.2, 0.8, (3, 16, 16)), 0, 1).astype(np.float32)
    np.save(top / "frames.npy", frames)
    np.save(top / "flat.npy", frames[0])
    (top / "filter.onnx").write_bytes(learned_filter.build().SerializeToString())
    assert good.exists()
    return top


def report(path: Path) -> dict:
    """A report with its embedded block; its sidecar (beside it unless the run wrote a model
    first) checked against the schema."""
    document = json.loads(path.read_text())
    if sidecar_of(path).exists():
        load_sidecar(sidecar_of(path))
    assert document["run_provenance"]["schema"] == "provenance.run/v1"
    return document


def test_validate_norm_passes_a_matching_table_and_records_its_inputs(work):
    out = work / "vn.json"
    proc = vmaf_train("validate-norm", "--model", work / "good.onnx",
                      "--features", work / "table.parquet", "--json", out)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = report(out)
    assert doc["ok"]
    assert doc["n_samples"] == ROWS
    assert doc["warnings"] == []
    assert [d["name"] for d in doc["drifts"]] == list(FEATURES)
    block = doc["run_provenance"]
    assert block["command"] == "vmaf-train validate-norm"
    assert block["inputs"]["model"]["sha256"] == sha256(work / "good.onnx")
    assert block["inputs"]["features"]["sha256"] == sha256(work / "table.parquet")
    assert block["inputs"]["sidecar"]["sha256"] == sha256(work / "good.json")
    assert block["outcome"]["gates"]["normalization"]["passed"] is True


def test_validate_norm_warns_on_drift_and_fails_only_when_asked(work):
    for flag, code in (([], 0), (["--fail-on-warning"], 1)):
        out = work / f"drift{code}.json"
        proc = vmaf_train("validate-norm", "--model", work / "good.onnx",
                          "--features", work / "shifted.parquet", "--json", out, *flag)  # fmt: skip
        assert proc.returncode == code, proc.stderr
        doc = report(out)  # a failed gate still writes its report and record
        assert not doc["ok"]
        assert any("adm2: mean shifted by 3.000 sigma" in w for w in doc["warnings"])
        block = load_sidecar(sidecar_of(out))["run_provenance"]
        assert block["outcome"]["gates"]["normalization"]["passed"] is False
        assert block["outcome"]["exit_code"] == code


def test_bad_input_is_one_line_exit_2_and_no_report(work):
    cases = [
        ("validate-norm", "--model", work / "good.onnx", "--features", work / "none.parquet"),
        ("quantize-int8", "--fp32", work / "good.onnx", "--output", work / "short.int8.onnx",
         "--calibration", work / "short.parquet", "--n-calibration", 16),
        ("audit-learned-filter", "--model", work / "filter.onnx", "--frames", work / "flat.npy"),
        ("profile", "--model", work / "good.onnx", "--provider", "NoSuchExecutionProvider"),
        ("bisect-model-quality", work / "good.onnx", "--features", work / "table.parquet"),
    ]  # fmt: skip
    for i, argv in enumerate(cases):
        out = work / f"input_error{i}.json"
        proc = vmaf_train(*argv, "--json", out)
        assert proc.returncode == 2, (argv[0], proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, lines
        assert lines[0].startswith(f"vmaf-train {argv[0]}: error: "), lines
        assert not out.exists()
    assert not (work / "short.int8.onnx").exists()  # 100 rows < 16 + 128


def test_quantize_int8_writes_the_model_and_gates_the_drift(work):
    out, int8 = work / "q.json", work / "good.int8.onnx"
    argv = ["quantize-int8", "--fp32", work / "good.onnx", "--output", int8,
            "--calibration", work / "table.parquet", "--n-calibration", 64]  # fmt: skip
    proc = vmaf_train(*argv, "--json", out)
    assert proc.returncode == 0, proc.stderr
    doc = report(out)
    assert doc["n_calibration"] == 64
    assert doc["n_held_out"] == 128
    assert doc["verdict"] == "PASS"
    assert doc["int8_bytes"] == int8.stat().st_size
    assert doc["rmse"] <= 1.0
    model = onnx.load(str(int8))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in model.graph.node}
    block = doc["run_provenance"]
    assert block["outputs"]["int8"]["sha256"] == sha256(int8)
    assert block["inputs"]["calibration"]["sha256"] == sha256(work / "table.parquet")
    assert block["args"]["rmse_gate"] == 1.0
    failed = work / "q_fail.json"
    proc = vmaf_train(*argv, "--rmse-gate", 0, "--json", failed)
    assert proc.returncode == 1, proc.stderr
    assert report(failed)["verdict"] == "FAIL"
    gate = load_sidecar(sidecar_of(int8))["run_provenance"]["outcome"]["gates"]["int8_drift"]
    assert gate["passed"] is False
    assert gate["rmse_gate"] == 0


def test_audit_learned_filter_measures_each_frame(work):
    out = work / "audit.json"
    base = ["audit-learned-filter", "--model", work / "filter.onnx", "--frames",
            work / "frames.npy"]  # fmt: skip
    proc = vmaf_train(*base, "--json", out)
    assert proc.returncode == 0, proc.stderr
    doc = report(out)
    assert doc["n_frames"] == 3
    assert len(doc["frames"]) == 3
    assert 0.6 < doc["avg_ssim"] <= 1.0
    assert doc["max_clip_fraction"] == 0.0
    assert doc["run_provenance"]["inputs"]["frames"]["sha256"] == sha256(work / "frames.npy")
    strict = work / "audit_strict.json"
    proc = vmaf_train(*base, "--ssim-min", 1.01, "--fail-on-warning", "--json", strict)
    assert proc.returncode == 1
    assert len(report(strict)["warnings"]) == 3


def test_bisect_finds_the_first_bad_model(work):
    models = [work / n for n in ("good.onnx", "good2.onnx", "bad.onnx", "bad2.onnx")]
    out = work / "bisect.json"
    argv = ["bisect-model-quality", *models, "--features", work / "table.parquet",
            "--min-plcc", 0.8, "--json", out]  # fmt: skip
    proc = vmaf_train(*argv)
    assert proc.returncode == 0, proc.stderr
    doc = report(out)
    assert (doc["first_bad_index"], doc["last_good_index"]) == (2, 1)
    assert doc["first_bad_model"] == "bad.onnx"
    assert [e["path"] for e in doc["run_provenance"]["inputs"]["models"]] == [
        str(m) for m in models
    ]
    assert vmaf_train(*argv, "--fail-on-first-bad").returncode == 1


def test_profile_without_timing_and_cross_backend_are_deterministic(work):
    runs = []
    out = work / "profile.json"
    for _ in range(2):
        proc = vmaf_train("profile", "--model", work / "good.onnx", "--provider",
                          "CPUExecutionProvider", "--shape", "4,3", "--iters", 0,
                          "--json", out)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        runs.append((out.read_bytes(), sidecar_of(out).read_bytes()))
    assert runs[0] == runs[1]
    (row,) = json.loads(runs[0][0])["results"]
    assert row["shape"] == [4, 3]
    assert row["output_shape"] == [4, 1]
    assert row["mean_ms"] is None
    timed = work / "timed.json"
    proc = vmaf_train("profile", "--model", work / "good.onnx", "--iters", 3, "--json", timed)
    assert proc.returncode == 0
    assert all(r["mean_ms"] >= 0 for r in report(timed)["results"])
    out = work / "cb.json"
    proc = vmaf_train("cross-backend", "--model", work / "good.onnx", "--features",
                      work / "table.parquet", "--provider", "CPUExecutionProvider", "--provider",
                      "NoSuchExecutionProvider", "--fail-on-mismatch", "--json", out)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = report(out)
    assert doc["comparisons"][0]["max_abs_error"] == 0.0
    assert doc["ok"]
    assert [m["provider"] for m in doc["missing"]] == ["NoSuchExecutionProvider"]


def test_qat_train_trains_exports_and_quantizes(work):
    config = work / "qat.yaml"
    config.write_text(yaml.safe_dump({"model": "mos_mlp",
        "model_args": {"lr": 0.01, "features": list(FEATURES)},
        "cache": "table.parquet", "qat": {"epochs_fp32": 3, "epochs_qat": 2}}))  # fmt: skip
    outs = []
    for i in range(2):
        out, rep = work / f"qat{i}" / "m.int8.onnx", work / f"qat{i}" / "qat.json"
        proc = run_script("qat_train", "--config", config, "--output", out, "--report-out", rep)
        assert proc.returncode == 0, proc.stderr
        outs.append((out, rep))
    (out, rep), (out2, _) = outs
    assert out.read_bytes() == out2.read_bytes()
    fp32 = out.with_name("m.qat.fp32.onnx")
    doc = json.loads(rep.read_text())
    assert doc["smoke"] is False
    assert len(doc["loss"]["qat"]) == 2
    assert doc["fp32_onnx"] == fp32.name
    block = doc["run_provenance"]
    assert block["inputs"]["cache"]["sha256"] == sha256(work / "table.parquet")
    assert block["outputs"]["fp32"]["sha256"] == sha256(fp32)
    assert block["outputs"]["int8"]["sha256"] == sha256(out)
    assert block["config"]["files"], block["config"]
    model = onnx.load(str(fp32))
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["output"]
    int8 = onnx.load(str(out))
    assert "QuantizeLinear" in {n.op_type for n in int8.graph.node}
    missing = run_script("qat_train", "--config", work / "none.yaml", "--output", work / "x.onnx")
    assert missing.returncode == 2
    assert "no such config" in missing.stderr
    assert not (work / "x.onnx").exists()
