"""vmaf-train, the pipeline's typer command: each subcommand as a subprocess on sample data."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import blake3
import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import load_sidecar, run_script, sidecar_of

VMAF_TRAIN = Path(sys.executable).with_name("vmaf-train")
CANONICAL = ["adm2", "vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3", "motion2"]
FIT = """\
table: ../k150k.parquet
features: [adm2, vif_scale0, vif_scale1, vif_scale2, vif_scale3, motion2]
ridge: 0.5
folds: 4
model_id: konvid_cli
gate: {preset: synthetic, min_plcc: 0.8}
"""


def vmaf_train(*argv: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The installed console script, as a user runs it (from ``cwd``, the project by default)."""
    return subprocess.run(
        [str(VMAF_TRAIN), *map(str, argv)],
        cwd=cwd or Path(__file__).resolve().parents[1],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def report_of(path: Path) -> dict:
    """A report with its embedded block, checked against the schema as a sidecar would be."""
    document = json.loads(path.read_text("utf-8"))
    if sidecar_of(path).exists():
        load_sidecar(sidecar_of(path))
    assert document["run_provenance"]["schema"] == "provenance.run/v1"
    return document


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Sample data, then extract-features, fit, export, eval and register, run once each."""
    top = tmp_path_factory.mktemp("vmaf-train")
    proc = run_script("generate_sample_data", "--out", top / "sample", "--seed", "0")
    assert proc.returncode == 0, proc.stderr
    k150k = top / "sample/k150k"
    (top / "configs").mkdir()
    (top / "configs/fit.yaml").write_text(FIT)
    runs = {
        "extract": vmaf_train(
            "extract-features", "--cache-dir", k150k / "vmaf_cache", "--scores",
            k150k / "scores.csv", "--out", top / "k150k.parquet", "--json", top / "extract.json",
        ),
        "fit": vmaf_train(
            "fit", "--config", top / "configs/fit.yaml", "--out-model", top / "m.npz",
            "--json", top / "fit.json",
        ),
        "export": vmaf_train(
            "export", "--checkpoint", top / "m.npz", "--out", top / "m.onnx",
            "--json", top / "m.json",
        ),
        "eval": vmaf_train(
            "eval", "--checkpoint", top / "m.npz", "--table", top / "k150k.parquet",
            "--onnx", top / "m.onnx", "--json", top / "eval.json",
        ),
        "register": vmaf_train(
            "register", "--model", top / "m.json", "--registry", top / "registry.json",
            "--json", top / "register.json",
        ),
    }  # fmt: skip
    return top, runs


def test_every_subcommand_passes_and_names_its_command_path(work):
    top, runs = work
    for name, proc in runs.items():
        assert proc.returncode == 0, (name, proc.stderr)
    for command, report in [
        ("extract-features", "extract.json"),
        ("fit", "fit.json"),
        ("export", "m.json"),
        ("eval", "eval.json"),
        ("register", "register.json"),
    ]:
        block = report_of(top / report)["run_provenance"]
        assert block["command"] == f"vmaf-train {command}"
        assert block["entrypoint"]["path"] == "ai/vmaf_train/cli.py"
        assert block["outcome"]["status"] == "succeeded"


def test_extract_features_records_the_scores_and_the_table_it_wrote(work):
    top, _ = work
    k150k = top / "sample/k150k"
    with (k150k / "scores.csv").open() as handle:
        clips = {row["clip_name"] for row in csv.DictReader(handle)}
    cached = {p.stem for p in (k150k / "vmaf_cache").glob("*.json")}
    table = pq.read_table(top / "k150k.parquet")
    assert sorted(table.column("clip_name").to_pylist()) == sorted(clips & cached)
    block = load_sidecar(sidecar_of(top / "k150k.parquet"))["run_provenance"]
    assert block["inputs"]["scores"]["sha256"] == sha256(k150k / "scores.csv")
    assert block["outputs"]["table"]["sha256"] == sha256(top / "k150k.parquet")
    assert block["args"]["mos_scale"] == "1-5"
    assert report_of(top / "extract.json")["row_count"] == table.num_rows


def test_fit_records_its_config_file_with_digests_and_what_it_resolved(work):
    top, _ = work
    config = top / "configs/fit.yaml"
    block = load_sidecar(sidecar_of(top / "m.npz"))["run_provenance"]
    (entry,) = block["config"]["files"]
    assert entry["sha256"] == sha256(config)
    assert entry["blake3"] == blake3.blake3(config.read_bytes()).hexdigest()
    written = yaml.safe_load(FIT)
    resolved = block["config"]["resolved"]
    assert resolved["features"] == written["features"] == CANONICAL
    assert resolved["ridge"] == written["ridge"]
    assert resolved["folds"] == written["folds"]
    assert resolved["gate"]["min_plcc"] == written["gate"]["min_plcc"]
    assert resolved["split_seed"] == 0  # a default the file left out
    assert block["inputs"]["table"]["sha256"] == sha256(top / "k150k.parquet")
    assert block["outputs"]["model"]["sha256"] == sha256(top / "m.npz")
    report = report_of(top / "fit.json")
    rows = pq.read_table(top / "k150k.parquet").num_rows
    assert report["rows"]["total"] == rows == report["rows"]["train"] + report["rows"]["held_out"]
    assert block["outcome"]["gates"]["mos_head"]["passed"] is True
    assert report["verdict"] == "PASS"


def test_export_eval_and_register_agree_on_the_model(work):
    top, _ = work
    onnx = sha256(top / "m.onnx")
    model = report_of(top / "m.json")
    assert model["sha256"] == onnx
    assert model["features"] == CANONICAL
    evaluation = report_of(top / "eval.json")
    assert evaluation["parity"]["passed"] is True
    assert evaluation["held_out_rows"] == report_of(top / "fit.json")["rows"]["held_out"]
    gates = evaluation["run_provenance"]["outcome"]["gates"]
    assert set(gates) == {"held_out_plcc", "parity"}
    registry = json.loads((top / "registry.json").read_text())
    (entry,) = registry["models"]
    assert (entry["id"], entry["sha256"]) == ("m", onnx)
    block = load_sidecar(sidecar_of(top / "register.json"))["run_provenance"]
    assert block["inputs"]["onnx"]["sha256"] == onnx
    assert block["outputs"]["registry"]["sha256"] == sha256(top / "registry.json")


def test_fit_again_from_another_folder_writes_the_same_bytes(work, tmp_path):
    top, _ = work
    before = {p: p.read_bytes() for p in (top / "m.npz.manifest.json", top / "fit.json")}
    proc = vmaf_train(
        "fit", "--config", top / "configs/fit.yaml", "--out-model", top / "m.npz",
        "--json", top / "fit.json", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert {p: p.read_bytes() for p in before} == before


def test_a_failed_gate_exits_1_with_the_report_written(work, tmp_path):
    top, _ = work
    config = tmp_path / "strict.yaml"
    config.write_text(f"table: {top / 'k150k.parquet'}\ngate: {{min_plcc: 0.9999}}\n")
    proc = vmaf_train(
        "fit", "--config", config, "--out-model", tmp_path / "m.npz", "--json", tmp_path / "r.json"
    )
    assert proc.returncode == 1, proc.stderr
    report = report_of(tmp_path / "r.json")
    assert report["verdict"] == "FAIL"
    assert report["gate"]["checks"]["plcc"] is False
    block = load_sidecar(sidecar_of(tmp_path / "m.npz"))["run_provenance"]
    assert block["outcome"]["status"] == "failed"
    assert block["outcome"]["exit_code"] == 1
    assert block["outcome"]["gates"]["mos_head"]["passed"] is False
    assert block["outputs"]["model"]["sha256"] == sha256(tmp_path / "m.npz")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("table: t.parquet\nepochs: 5\n", "unknown key(s) epochs"),
        ("table: [unclosed\n", "not valid YAML"),
        ("table: nowhere.parquet\n", "nowhere.parquet: no such file"),
    ],
    ids=["unknown-key", "bad-yaml", "missing-table"],
)
def test_bad_input_exits_2_in_one_line_and_writes_no_report(tmp_path, text, says):
    config = tmp_path / "fit.yaml"
    config.write_text(text)
    report = tmp_path / "r.json"
    proc = vmaf_train(
        "fit", "--config", config, "--out-model", tmp_path / "m.npz", "--json", report
    )
    assert proc.returncode == 2
    (line,) = proc.stderr.splitlines()
    assert line.startswith("vmaf-train fit: error: ")
    assert says in line
    assert "Traceback" not in proc.stderr
    assert not report.exists()
    assert not (tmp_path / "m.npz").exists()


def test_register_refuses_a_model_whose_onnx_is_not_what_its_sidecar_says(work, tmp_path):
    top, _ = work
    sidecar = json.loads((top / "m.json").read_text())
    (tmp_path / "m.onnx").write_bytes((top / "m.onnx").read_bytes() + b"\0")
    (tmp_path / "m.json").write_text(json.dumps(sidecar))
    registry = tmp_path / "registry.json"
    proc = vmaf_train(
        "register", "--model", tmp_path / "m.json", "--registry", registry,
        "--json", tmp_path / "r.json",
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"vmaf-train register: error: {tmp_path / 'm.onnx'}: its SHA-256 is not the one "
        f"{tmp_path / 'm.json'} records"
    )
    assert not registry.exists()
    assert not (tmp_path / "r.json").exists()
