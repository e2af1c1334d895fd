"""Quantization (ADR-0661): int8 models, their sidecars, the drop gate and the per-EP report."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pyarrow.parquet as pq
import pytest

from provenance import validate
from tests.conftest import ROOT, block_of, load_sidecar, run_python, run_script, sidecar_of

CANONICAL = ["adm2", "vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3", "motion2"]
EXTRAS = ["saliency_mean", "saliency_var", "shot_count_norm", "shot_mean_len_norm",
          "shot_cut_density"]  # fmt: skip


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def split(seed: int, clip: str) -> str:
    """The content split, worked out here from its definition, not through ai.features.tables."""
    content = clip.rsplit("/", 1)[-1].rsplit(".", 1)[0].split("__", 1)[0]
    digest = hashlib.blake2s(f"{seed}\0{content}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2.0**64
    return "train" if fraction < 0.8 else "val" if fraction < 0.9 else "test"


def inputs_and_mos(table_path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    table = pq.read_table(table_path)
    names = table.column_names
    columns = []
    for name in CANONICAL + EXTRAS:
        column = next((c for c in (name, f"{name}_mean") if c in names), None)
        columns.append(table.column(column).to_numpy() if column else np.zeros(table.num_rows))
    x = np.stack(columns, axis=1).astype(np.float32)
    return table.column("clip_name").to_pylist(), x, table.column("mos").to_numpy()


def predict(model: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"features": x})
    return out.reshape(-1).astype(np.float64)


def plcc(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


@pytest.fixture(scope="module")
def held_out(demo: Path) -> tuple[np.ndarray, np.ndarray]:
    clips, x, mos = inputs_and_mos(demo / "tables/k150k_enriched.parquet")
    rows = np.array([split(0, c) == "test" for c in clips])
    return x[rows], mos[rows]


def test_the_static_int8_sidecar_names_its_fp32_model_calibration_slice_and_config(demo):
    models, table = demo / "models", demo / "tables/k150k_enriched.parquet"
    int8, fp32 = models / "konvid_mos_head.int8_static.onnx", models / "konvid_mos_head.onnx"
    sidecar = json.loads((models / "konvid_mos_head.int8_static.json").read_text())
    assert sidecar["sha256"] == sha256(int8)
    assert sidecar["fp32"] == {"id": "konvid_mos_head", "onnx": fp32.name, "sha256": sha256(fp32),
                               "sidecar": "konvid_mos_head.json"}  # fmt: skip
    assert sidecar["size"]["fp32_bytes"] == fp32.stat().st_size
    assert sidecar["size"]["int8_bytes"] == int8.stat().st_size
    assert sidecar["quantization"] == {
        "method": "static", "weight_type": "int8", "activation_type": "int8",
        "per_channel": False, "reduce_range": False, "format": "qdq",
        "calibrate_method": "minmax", "onnxruntime": ort.__version__,
    }  # fmt: skip
    clips, x, _ = inputs_and_mos(table)
    train = [i for i, c in enumerate(clips) if split(0, c) == "train"][:128]
    calibration = sidecar["calibration"]
    assert calibration["sha256"] == sha256(table)
    assert (calibration["rows"], calibration["split"]) == (128, "train")
    assert (calibration["first_clip"], calibration["last_clip"]) == (clips[train[0]],
                                                                     clips[train[-1]])  # fmt: skip
    slice_digest = hashlib.sha256(np.ascontiguousarray(x[train]).tobytes()).hexdigest()
    assert calibration["slice_sha256"] == slice_digest
    # It is int8 for real: quantized initializers and QuantizeLinear nodes in the graph.
    graph = onnx.load(str(int8)).graph
    assert "QuantizeLinear" in {n.op_type for n in graph.node}
    assert onnx.TensorProto.INT8 in {i.data_type for i in graph.initializer}
    record = load_sidecar(sidecar_of(int8))
    block = record["run_provenance"]
    assert block["inputs"]["fp32"]["sha256"] == sha256(fp32)
    assert block["inputs"]["calibration_table"]["sha256"] == sha256(table)
    assert block["outputs"]["int8"]["sha256"] == sha256(int8)
    assert (record["calibration"], record["int8_sha256"]) == (calibration, sha256(int8))
    assert record["size"] == sidecar["size"]
    registry = json.loads((models / "int8_registry.json").read_text())["models"]
    assert [(e["id"], e["sha256"]) for e in registry] == [(sidecar["id"], sha256(int8))]


def test_the_dynamic_int8_sidecar_has_no_calibration(demo):
    sidecar = json.loads((demo / "models/konvid_mos_head.int8_dynamic.json").read_text())
    assert sidecar["calibration"] is None
    assert sidecar["quantization"]["method"] == "dynamic"
    assert "calibrate_method" not in sidecar["quantization"]
    assert sidecar["sha256"] == sha256(demo / "models/konvid_mos_head.int8_dynamic.onnx")
    assert sidecar["run_provenance"]["outputs"]["model_sidecar"]["embedded_here"] is True


@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_each_ptq_report_carries_the_run_provenance_block(demo, kind):
    """ADR-0661: the --report-out report holds the same block as the int8 sidecar, outcome and
    all, and names the fp32 model, the calibration table and both targets."""
    models, fp32 = demo / "models", demo / "models/konvid_mos_head.onnx"
    int8 = models / f"konvid_mos_head.int8_{kind}.onnx"
    report_path = demo / f"reports/quant/ptq_{kind}.json"
    report = json.loads(report_path.read_text())
    sidecar = json.loads((models / f"konvid_mos_head.int8_{kind}.json").read_text())
    assert report["sha256"] == sidecar["sha256"] == sha256(int8)
    assert report["model_sidecar"] == f"konvid_mos_head.int8_{kind}.json"
    block = report["run_provenance"]
    assert block == sidecar["run_provenance"], "one block, in both hosts"
    assert block["entrypoint"]["path"] == f"ai/scripts/ptq_{kind}.py"
    assert block["argv"] == report["argv"]
    assert block["outcome"]["status"] == "succeeded"
    assert block["inputs"]["fp32"]["sha256"] == sha256(fp32)
    if kind == "static":
        calibration = block["inputs"]["calibration_table"]
        assert calibration["sha256"] == sha256(demo / "tables/k150k_enriched.parquet")
    assert block["outputs"]["int8"]["sha256"] == sha256(int8)
    assert block["outputs"]["report"]["embedded_here"] is True
    assert block["outputs"]["model_sidecar"]["embedded_here"] is True
    validate({"schema": "provenance.manifest/v1", "run_provenance": block})
    record = load_sidecar(sidecar_of(int8))["run_provenance"]
    assert record["outputs"]["report"]["sha256"] == sha256(report_path), "the final bytes"


@pytest.fixture(scope="module")
def requantized(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both PTQ scripts run again, from another folder under another hash seed."""
    out = tmp_path_factory.mktemp("requantized")
    fp32, table = demo / "models/konvid_mos_head.onnx", demo / "tables/k150k_enriched.parquet"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONHASHSEED="12345", LC_ALL="C")
    commands = {
        "dynamic": ["ptq_dynamic"],
        "static": ["ptq_static", "--calibration-table", str(table), "--calibration-rows", "128"],
    }
    made = {}
    for kind, (script, *extra) in commands.items():
        made[kind] = out / f"int8_{kind}.onnx"
        subprocess.run([sys.executable, "-m", f"ai.scripts.{script}", "--fp32", str(fp32),
                        "--out", str(made[kind]), *extra],
                       cwd=out, env=env, check=True, capture_output=True)  # fmt: skip
    return made


@pytest.mark.parametrize("kind", ["dynamic", "static"])
def test_int8_bytes_do_not_depend_on_the_run(demo, requantized, kind):
    assert (
        requantized[kind].read_bytes()
        == (demo / f"models/konvid_mos_head.int8_{kind}.onnx").read_bytes()
    )


def test_the_drop_report_is_the_plcc_numpy_finds(demo, held_out):
    x, mos = held_out
    fp32, int8 = (
        demo / "models/konvid_mos_head.onnx",
        demo / "models/konvid_mos_head.int8_dynamic.onnx",
    )
    report_path = demo / "reports/quant/konvid_mos_head.int8_dynamic.json"
    report = json.loads(report_path.read_text())
    before, after = plcc(predict(fp32, x), mos), plcc(predict(int8, x), mos)
    assert report["rows"] == len(mos)
    assert report["fp32"]["plcc"] == pytest.approx(before, abs=1e-6)
    assert report["int8"]["plcc"] == pytest.approx(after, abs=1e-6)
    assert report["plcc_drop"] == pytest.approx(before - after, abs=2e-6)
    assert report["gate"] == {"max_plcc_drop": 0.01, "passed": True}
    assert report["verdict"] == "PASS"
    record = load_sidecar(sidecar_of(report_path))
    assert record["plcc_drop"] == report["plcc_drop"]
    gate = record["run_provenance"]["outcome"]["gates"]["quant_plcc_drop"]
    assert gate["passed"] is True
    assert record["run_provenance"]["inputs"]["int8"]["sha256"] == sha256(int8)


def test_a_model_calibrated_on_one_row_fails_the_drop_gate_with_its_report(demo, tmp_path):
    models, table = demo / "models", demo / "tables/k150k_enriched.parquet"
    int8 = tmp_path / "one_row.int8.onnx"
    proc = run_script("ptq_static", "--fp32", models / "konvid_mos_head.onnx", "--out", int8,
                      "--calibration-table", table, "--calibration-rows", "1")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = tmp_path / "drop.json"
    proc = run_script("measure_quant_drop", "--fp32", models / "konvid_mos_head.onnx",
                      "--int8", int8, "--table", table, "--out-json", report)  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    written = json.loads(report.read_text())
    assert written["verdict"] == "FAIL"
    assert written["plcc_drop"] > 0.01
    outcome = block_of(report)["outcome"]
    assert (outcome["status"], outcome["exit_code"]) == ("failed", 1)
    assert outcome["gates"]["quant_plcc_drop"]["passed"] is False


def test_per_ep_records_what_onnxruntime_offers_and_the_drop_numpy_finds(demo, held_out):
    x, mos = held_out
    report_path = demo / "reports/quant/per_ep.json"
    report = json.loads(report_path.read_text())
    requested = ["CPUExecutionProvider", "CUDAExecutionProvider", "OpenVINOExecutionProvider"]
    available = ort.get_available_providers()
    assert report["providers_requested"] == requested
    assert report["providers_available"] == available
    assert report["providers_tried"] == [p for p in requested if p in available]
    assert [u["provider"] for u in report["providers_unavailable"]] == [
        p for p in requested if p not in available
    ]
    assert report["hardware_tag"] == "demo-cpu"
    fp32 = demo / "models/konvid_mos_head.onnx"
    int8 = demo / "models/konvid_mos_head.int8_static.onnx"
    (cpu,) = [r for r in report["results"] if r["provider"] == "CPUExecutionProvider"]
    assert cpu["model"] == "konvid_mos_head_int8_static"
    assert cpu["fp32_plcc"] == pytest.approx(plcc(predict(fp32, x), mos), abs=1e-6)
    assert cpu["plcc"] == pytest.approx(plcc(predict(int8, x), mos), abs=1e-6)
    markdown = (demo / "reports/quant/per_ep.md").read_text()
    assert "| konvid_mos_head_int8_static | int8 | CPUExecutionProvider |" in markdown
    assert "hardware tag: `demo-cpu`" in markdown
    record = load_sidecar(sidecar_of(report_path))
    assert (record["hardware_tag"], record["providers_tried"]) == (
        "demo-cpu",
        report["providers_tried"],
    )
    block = record["run_provenance"]
    assert block["inputs"]["baselines"][0]["sha256"] == sha256(fp32)
    assert block["outputs"]["report_md"]["sha256"] == sha256(demo / "reports/quant/per_ep.md")


def test_per_ep_with_no_provider_that_runs_fails_its_gate_with_both_reports(demo, tmp_path):
    out = tmp_path / "per_ep.json"
    proc = run_script("measure_quant_drop_per_ep", "--registry", demo / "models/int8_registry.json",
                      "--table", demo / "tables/k150k_enriched.parquet",
                      "--providers", "NoSuchExecutionProvider",
                      "--out-json", out, "--out-md", tmp_path / "per_ep.md")  # fmt: skip
    assert proc.returncode == 1
    report = json.loads(out.read_text())
    assert report["providers_tried"] == []
    assert report["providers_unavailable"] == [
        {"provider": "NoSuchExecutionProvider", "reason": "not in this onnxruntime build"}
    ]
    assert report["verdict"] == "FAIL"
    assert "providers tried: none" in (tmp_path / "per_ep.md").read_text()


def one_line_error(proc: subprocess.CompletedProcess[str], text: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert text in proc.stderr


def test_bad_inputs_are_exit_2_with_one_line_and_no_model(demo, tmp_path):
    models = demo / "models"
    int8 = tmp_path / "static.onnx"
    proc = run_script("ptq_static", "--fp32", models / "konvid_mos_head.onnx", "--out", int8,
                      "--calibration-table", tmp_path / "missing.parquet")  # fmt: skip
    one_line_error(proc, "missing.parquet: no such file")
    assert not int8.exists()
    int8 = tmp_path / "dynamic.onnx"
    config = tmp_path / "config.json"
    config.write_text('{"weight_type": "int4"}')
    proc = run_script("ptq_dynamic", "--fp32", models / "konvid_mos_head.onnx", "--config", config,
                      "--out", int8)  # fmt: skip
    one_line_error(proc, "weight_type must be one of ['int8', 'uint8']")
    assert not int8.exists()
    member = models / "ensemble/fr_regressor_v2_ensemble_v1_seed0.onnx"
    report = tmp_path / "drop.json"
    proc = run_script("measure_quant_drop", "--fp32", models / "konvid_mos_head.onnx",
                      "--int8", member, "--table", demo / "tables/k150k_enriched.parquet",
                      "--out-json", report)  # fmt: skip
    one_line_error(proc, "is not a quantization of")
    assert not report.exists()


def test_per_ep_refuses_a_baseline_outside_the_registry_folder(demo, tmp_path):
    models = tmp_path / "models"
    models.mkdir()
    for name in ("konvid_mos_head.int8_static.onnx", "int8_registry.json"):
        (models / name).write_bytes((demo / "models" / name).read_bytes())
    sidecar = json.loads((demo / "models/konvid_mos_head.int8_static.json").read_text())
    sidecar["fp32"]["onnx"] = "../konvid_mos_head.onnx"  # the baseline is there, but outside
    fp32 = (demo / "models/konvid_mos_head.onnx").read_bytes()
    (tmp_path / "konvid_mos_head.onnx").write_bytes(fp32)
    (models / "konvid_mos_head.int8_static.json").write_text(json.dumps(sidecar))
    out = tmp_path / "per_ep.json"
    proc = run_script("measure_quant_drop_per_ep", "--registry", models / "int8_registry.json",
                      "--table", demo / "tables/k150k_enriched.parquet",
                      "--out-json", out, "--out-md", tmp_path / "per_ep.md")  # fmt: skip
    one_line_error(proc, "fp32 baseline '../konvid_mos_head.onnx' escapes the registry's folder")
    assert not out.exists()


def inputs_of(node: dict) -> dict[str, dict]:
    return {item["name"]: item for item in node["inputs"]}


def test_the_int8_model_leads_back_to_the_sample_corpus(demo):
    int8 = demo / "models/konvid_mos_head.int8_static.onnx"
    proc = run_python("-m", "provenance", "lineage", "--json", int8, "--search", demo)
    assert proc.returncode == 0, proc.stderr
    tree = json.loads(proc.stdout)
    node = tree.get("tree", tree)
    assert node["entrypoint"] == "ai/scripts/ptq_static.py"
    export = inputs_of(node)["fp32"]["produced_by"]
    assert export["entrypoint"] == "ai/scripts/export_mos_head_onnx.py"
    trainer = inputs_of(export)["checkpoint"]["produced_by"]
    assert trainer["entrypoint"] == "ai/scripts/train_konvid_mos_head.py"
    enriched = inputs_of(node)["calibration_table"]["produced_by"]
    assert enriched["entrypoint"] == "ai/scripts/enrich_k150k_parquet_metadata.py"
    extracted = inputs_of(enriched)["table"]["produced_by"]
    assert extracted["entrypoint"] == "ai/scripts/extract_k150k_features.py"
    aggregated = inputs_of(extracted)["scores"]["produced_by"]
    assert aggregated["entrypoint"] == "ai/scripts/aggregate_corpora.py"
    shard = inputs_of(aggregated)["corpora[1]"]
    assert shard["link"] == "part of"
    assert shard["produced_by"]["entrypoint"] == "ai/scripts/generate_sample_data.py"
