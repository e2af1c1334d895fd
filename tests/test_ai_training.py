"""Trainers, exporter and gates (ADR-0661): KonViD and CHUG heads, ONNX, validation, seeds."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pyarrow.parquet as pq
import pytest

from ai.demo import Step, run_step
from ai.mos.mos_head import INPUTS, load_checkpoint
from tests.conftest import block_of, load_sidecar, run_script, sidecar_of

KONVID = "ai/scripts/train_konvid_mos_head.py"
CHUG = "ai/scripts/train_chug_hdr_mos_head.py"


def train(script: str, table: Path, out: Path, *extra: object):
    return run_script(script, "--table", table, "--out-model", out / "head.npz",
                      "--out-json", out / "head.json", *extra)  # fmt: skip


def test_konvid_head_passes_the_real_gate_and_embeds_its_provenance(demo, tmp_path):
    proc = train("train_konvid_mos_head", demo / "tables/k150k_enriched.parquet", tmp_path)
    assert proc.returncode == 0, proc.stderr
    model = json.loads((tmp_path / "head.json").read_text())
    assert model["features"] == list(INPUTS)
    assert model["input_sources"]["adm2"] == "adm2_mean"
    assert model["input_sources"]["saliency_mean"] == "zero"  # no saliency in the table
    assert len(model["folds"]) == 5
    assert model["mean_plcc"] == pytest.approx(
        np.mean([f["plcc"] for f in model["folds"]]), abs=1e-6
    )
    assert model["gate"]["name"] == "real"
    assert model["gate"]["passed"] is True
    assert model["gate"]["checks"] == {
        "plcc": True,
        "srocc": True,
        "rmse": True,
        "plcc_spread": True,
    }
    embedded = model["run_provenance"]
    assert embedded["entrypoint"]["path"] == KONVID
    assert "shared_trainer" not in embedded
    assert embedded["outputs"]["model_json"]["embedded_here"] is True
    sidecar = load_sidecar(sidecar_of(tmp_path / "head.npz"))
    block = sidecar["run_provenance"]
    assert block["outcome"]["gates"]["mos_head"]["passed"] is True
    assert (
        block["outputs"]["model"]["sha256"]
        == hashlib.sha256((tmp_path / "head.npz").read_bytes()).hexdigest()
    )
    assert "ai/mos/mos_head.py" in block["code"]
    # The checkpoint is the model the JSON describes: it predicts the table's MOS well.
    head, features = load_checkpoint(tmp_path / "head.npz")
    assert features == INPUTS
    table = pq.read_table(demo / "tables/k150k_enriched.parquet")
    x = np.stack([table.column(f"{n}_mean").to_numpy() for n in INPUTS[:6]]
                 + [np.zeros(table.num_rows)] * 5, axis=1)  # fmt: skip
    assert np.corrcoef(head.predict(x), table.column("mos").to_numpy())[0, 1] > 0.95


@pytest.mark.parametrize(
    ("script", "table", "extra"),
    [
        ("train_konvid_mos_head", "k150k_enriched", ()),
        ("train_chug_hdr_mos_head", "chug_enriched", ("--gate", "synthetic", "--folds", "4")),
    ],
)
def test_a_failed_gate_exits_0_as_the_fork_with_the_verdict_in_json_and_sidecar(
    demo, tmp_path, script, table, extra
):
    proc = train(script, demo / f"tables/{table}.parquet", tmp_path, *extra,
                 "--min-plcc", "0.9999")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "failed (plcc); the model and its record are written with gate.passed false" in (
        proc.stderr
    )
    model = json.loads((tmp_path / "head.json").read_text())
    assert model["gate"]["passed"] is False
    assert model["gate"]["checks"]["plcc"] is False
    assert model["gate"]["min_plcc"] == 0.9999
    assert (tmp_path / "head.npz").is_file()
    record = load_sidecar(sidecar_of(tmp_path / "head.npz"))
    outcome = record["run_provenance"]["outcome"]
    assert (outcome["status"], outcome["exit_code"]) == ("succeeded", 0)  # the exit code it had
    assert outcome["gates"]["mos_head"]["passed"] is False
    assert outcome["gates"]["mos_head"]["min_plcc"] == 0.9999
    assert record["gate_passed"] is False
    assert model["run_provenance"]["outcome"] == outcome


def test_the_demo_stops_at_a_step_whose_gate_failed_though_it_exited_0(demo, tmp_path):
    table, out = demo / "tables/k150k_enriched.parquet", tmp_path / "head.npz"
    step = Step("train_konvid_mos_head", f"--table {table} --out-model {out} "
                f"--out-json {tmp_path / 'head.json'} --min-plcc 0.9999", str(out))  # fmt: skip
    with pytest.raises(SystemExit, match="demo: train_konvid_mos_head: gate mos_head failed"):
        run_step(step)
    assert block_of(out)["outcome"]["exit_code"] == 0


def test_a_table_without_a_canonical_feature_writes_no_model(demo, tmp_path):
    table = pq.read_table(demo / "tables/k150k_enriched.parquet").drop_columns(["adm2_mean"])
    path = tmp_path / "t.parquet"
    pq.write_table(table, path)
    proc = train("train_konvid_mos_head", path, tmp_path)
    assert proc.returncode == 2
    assert f"{path}: missing feature column adm2_mean" in proc.stderr
    assert not (tmp_path / "head.npz").exists()
    assert not (tmp_path / "head.json").exists()


def test_chug_run_names_itself_and_the_shared_trainer(demo, tmp_path):
    proc = train("train_chug_hdr_mos_head", demo / "tables/chug_enriched.parquet", tmp_path,
                 "--gate", "synthetic", "--folds", "4")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    block = block_of(tmp_path / "head.npz")
    assert block["entrypoint"]["path"] == CHUG
    assert block["shared_trainer"]["path"] == KONVID
    assert (
        block["shared_trainer"]["sha256"] == hashlib.sha256(Path(KONVID).read_bytes()).hexdigest()
    )
    assert block["args"]["mos_scale"] == "0-100"
    assert block["args"]["require_hdr"] is True
    assert block["args"]["allow_sdr"] is False
    model = json.loads((tmp_path / "head.json").read_text())
    assert model["id"] == "chug_hdr_mos_head"
    assert model["run_provenance"]["entrypoint"]["path"] == CHUG
    assert model["run_provenance"]["shared_trainer"]["path"] == KONVID


def test_chug_refuses_a_table_that_was_never_enriched(demo, tmp_path):
    proc = train("train_chug_hdr_mos_head", demo / "tables/chug.parquet", tmp_path)
    assert proc.returncode == 2
    assert "has no is_hdr: enrich the table with clip metadata first" in proc.stderr
    assert not (tmp_path / "head.npz").exists()
    block = block_of(tmp_path / "head.npz")
    assert block["entrypoint"]["path"] == CHUG
    assert block["shared_trainer"]["path"] == KONVID
    assert block["outcome"]["exit_code"] == 2


def test_chug_options_given_by_the_user_win_over_its_defaults(demo, tmp_path):
    proc = train("train_chug_hdr_mos_head", demo / "tables/chug_enriched.parquet", tmp_path,
                 "--gate", "synthetic", "--folds", "4", "--model-id", "chug_trial")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "head.json").read_text())["id"] == "chug_trial"


# -- export and validation ---------------------------------------------------------------------


def export(checkpoint: Path, out: Path, *extra: object):
    return run_script("export_mos_head_onnx", "--checkpoint", checkpoint, "--out", out, *extra)


def test_export_writes_a_checked_onnx_model_its_sidecar_and_registry_entry(demo, tmp_path):
    checkpoint = demo / "models/konvid_seed0.npz"
    out = tmp_path / "head.onnx"
    registry = tmp_path / "registry.json"
    proc = export(checkpoint, out, "--registry", registry, "--opset", "18")
    assert proc.returncode == 0, proc.stderr
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    sidecar = json.loads((tmp_path / "head.json").read_text())
    fields = ["id", "kind", "onnx", "opset", "sha256", "input_name", "input_shape", "output_name",
              "output_shape", "features", "input_mean", "input_std"]  # fmt: skip
    assert list(sidecar)[: len(fields)] == fields
    assert sidecar["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert (sidecar["input_shape"], sidecar["output_shape"]) == (["N", 11], ["N", 1])
    assert sidecar["opset"] == 18
    head, _ = load_checkpoint(checkpoint)
    assert sidecar["input_mean"] == pytest.approx(head.mean.tolist())
    [entry] = json.loads(registry.read_text())["models"]
    assert entry == {"id": "konvid_seed0", "kind": "mos_head", "onnx": "head.onnx",
                     "sha256": sidecar["sha256"], "sidecar": "head.json", "opset": 18}  # fmt: skip
    manifest = load_sidecar(sidecar_of(out))
    assert (manifest["opset"], manifest["input_shape"]) == (18, ["N", 11])
    block = manifest["run_provenance"]
    assert (
        block["inputs"]["checkpoint"]["sha256"]
        == hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    )
    assert block["outputs"]["onnx"]["sha256"] == sidecar["sha256"]
    assert sidecar["run_provenance"]["outputs"]["model_sidecar"]["embedded_here"] is True


def test_export_is_byte_stable(demo, tmp_path):
    a, b = tmp_path / "a" / "m.onnx", tmp_path / "b" / "m.onnx"
    for out in (a, b):
        out.parent.mkdir()
        assert export(demo / "models/konvid_seed0.npz", out).returncode == 0
    assert a.read_bytes() == b.read_bytes()


def test_export_refuses_what_is_not_a_checkpoint(tmp_path):
    bogus = tmp_path / "model.npz"
    bogus.write_text("not a zip")
    out = tmp_path / "m.onnx"
    proc = export(bogus, out)
    assert proc.returncode == 2
    assert f"{bogus}: not a MOS head checkpoint" in proc.stderr
    assert not out.exists()


def validate(demo: Path, out: Path, checkpoint: str = "konvid_seed0.npz", *extra: object):
    return run_script(
        "validate_mos_head",
        "--onnx", demo / "models/konvid_mos_head.onnx",
        "--checkpoint", demo / "models" / checkpoint,
        "--table", demo / "tables/k150k_enriched.parquet",
        "--out-json", out, *extra,
    )  # fmt: skip


def test_validation_checks_parity_and_the_held_out_gate(demo, tmp_path):
    out = tmp_path / "report.json"
    proc = validate(demo, out)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["verdict"] == "PASS"
    assert report["parity"]["max_abs_diff"] <= 1e-4
    split = load_sidecar(sidecar_of(demo / "tables/k150k.parquet"))["split"]
    assert report["held_out_rows"] == split["test"]  # the content split the extractor recorded
    trained = json.loads((demo / "models/konvid_seed0.json").read_text())["rows"]
    assert trained == {
        "total": split["train"] + split["val"] + split["test"],
        "train": split["train"] + split["val"],
        "held_out": split["test"],
    }
    gates = block_of(out)["outcome"]["gates"]
    assert gates["parity"]["passed"] is True
    assert gates["held_out_plcc"]["plcc"] == report["plcc"]
    assert report["run_provenance"]["inputs"]["onnx"]["path"].endswith("konvid_mos_head.onnx")


def test_validation_fails_parity_against_another_checkpoint(demo, tmp_path):
    """The CHUG checkpoint has the same inputs but other weights: the ONNX is not from it."""
    out = tmp_path / "report.json"
    proc = validate(demo, out, "chug_hdr_mos_head.npz")
    assert proc.returncode == 1
    report = json.loads(out.read_text())
    assert report["parity"]["passed"] is False
    assert report["verdict"] == "FAIL"
    assert block_of(out)["outcome"]["gates"]["parity"]["passed"] is False


def test_validation_gate_failure_exits_1_with_the_report(demo, tmp_path):
    out = tmp_path / "report.json"
    proc = validate(demo, out, "konvid_seed0.npz", "--min-plcc", "0.9999")
    assert proc.returncode == 1
    report = json.loads(out.read_text())
    assert (report["parity"]["passed"], report["gate"]["passed"]) == (True, False)


# -- the ensemble seed gate --------------------------------------------------------------------


def seed_gate(loso: Path, out: Path, *extra: object):
    return run_script("validate_ensemble_seeds", "--loso-dir", loso, "--seeds", "0", "1", "2",
                      "--out-dir", out, *extra)  # fmt: skip


def copy_loso(demo: Path, tmp_path: Path) -> Path:
    loso = tmp_path / "loso"
    shutil.copytree(demo / "reports/loso", loso)
    return loso


def test_seeds_that_clear_the_bar_promote(demo, tmp_path):
    out = tmp_path / "gate"
    proc = seed_gate(copy_loso(demo, tmp_path), out)
    assert proc.returncode == 0, proc.stderr
    verdict = json.loads((out / "PROMOTE.json").read_text())
    plccs = [json.loads((demo / f"reports/loso/loso_seed{s}.json").read_text())["mean_plcc"]
             for s in range(3)]  # fmt: skip
    assert verdict["per_seed_plcc"] == {str(s): p for s, p in enumerate(plccs)}
    assert verdict["mean_plcc"] == pytest.approx(sum(plccs) / 3, abs=1e-6)
    assert not (out / "HOLD.json").exists()
    manifest = load_sidecar(out / "verdict.manifest.json")
    assert manifest["verdict"] == "PROMOTE"
    assert len(manifest["run_provenance"]["inputs"]["seed_reports"]) == 3
    assert verdict["run_provenance"]["outputs"]["verdict"]["embedded_here"] is True


def test_one_weak_seed_holds_exits_1_and_replaces_a_stale_promote(demo, tmp_path):
    loso = copy_loso(demo, tmp_path)
    out = tmp_path / "gate"
    assert seed_gate(loso, out).returncode == 0
    report = json.loads((loso / "loso_seed1.json").read_text())
    report["mean_plcc"] = 0.94
    (loso / "loso_seed1.json").write_text(json.dumps(report))
    proc = seed_gate(loso, out)
    assert proc.returncode == 1
    assert "removed the stale PROMOTE.json" in proc.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith("verdict.")) == [
        "HOLD.json"
    ]
    verdict = json.loads((out / "HOLD.json").read_text())
    assert verdict["failing_seeds"] == [1]
    assert verdict["checks"]["every_seed"] is False
    manifest = load_sidecar(out / "verdict.manifest.json")
    block = manifest["run_provenance"]
    assert (block["outcome"]["status"], block["outcome"]["exit_code"]) == ("failed", 1)
    assert block["outcome"]["gates"]["ensemble_seeds"]["passed"] is False
    assert block["outputs"]["stale_verdict"]["exists"] is False
    earlier = load_sidecar(out / "verdict.manifest.previous.json")
    assert earlier["verdict"] == "PROMOTE"


def test_a_missing_seed_report_is_an_input_error_and_writes_no_verdict(demo, tmp_path):
    loso = copy_loso(demo, tmp_path)
    (loso / "loso_seed2.json").unlink()
    out = tmp_path / "gate"
    proc = seed_gate(loso, out)
    assert proc.returncode == 2
    assert f"{loso / 'loso_seed2.json'}: no such file" in proc.stderr
    assert not (out / "PROMOTE.json").exists()
    assert not (out / "HOLD.json").exists()
    block = load_sidecar(out / "verdict.manifest.json")["run_provenance"]
    assert block["outcome"]["exit_code"] == 2
    assert block["inputs"]["seed_reports"][2]["exists"] is False
