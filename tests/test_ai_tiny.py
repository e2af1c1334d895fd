"""The vmaf_tiny family run for real: trainers, exporters, smoke validators, LOSO reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ai.sample.generator import Tree
from ai.sample.tiny import write_tiny
from ai.tiny.models import load_checkpoint
from tests.conftest import block_of, load_sidecar, run_script, sidecar_of

FAST = ["--epochs", "30", "--batch-size", "32", "--lr", "0.01"]
QUICK = ["--epochs", "3", "--batch-size", "64", "--lr", "0.01"]


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    write_tiny(Tree(root), np.random.default_rng([0, 12]))
    return root / "tiny"


@pytest.fixture(scope="module")
def trained(tables: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models")
    for v in ("v2", "v3"):
        done = run_script(
            f"train_vmaf_tiny_{v}",
            "--parquet",
            tables / "netflix_frames.parquet",
            "--out-ckpt",
            out / f"{v}.npz",
            "--out-stats",
            out / f"{v}.json",
            *FAST,
        )
        assert done.returncode == 0, done.stderr
        done = run_script(
            f"export_vmaf_tiny_{v}",
            "--ckpt",
            out / f"{v}.npz",
            "--out-onnx",
            out / f"{v}.onnx",
            "--out-sidecar",
            out / f"{v}.onnx.json",
        )
        assert done.returncode == 0, done.stderr
    return out


def without(table: Path, column: str, dest: Path) -> Path:
    t = pq.read_table(table)
    pq.write_table(t.drop_columns([column]), dest)
    return dest


class TestTrainers:
    def test_stats_carry_the_forks_keys_and_the_block_naming_table_and_targets(
        self, trained, tables
    ):
        stats = json.loads((trained / "v3.json").read_text())
        keys = [
            "features",
            "input_mean",
            "input_std",
            "train_metrics",
            "epochs",
            "lr",
            "batch_size",
            "seed",
            "arch",
            "n_params",
            "n_train_rows",
            "run_provenance",
        ]
        assert list(stats) == keys
        assert stats["arch"] == "mlp_medium"
        assert stats["n_params"] == 769
        assert stats["train_metrics"]["plcc"] > 0.95
        block = stats["run_provenance"]
        assert block["inputs"]["parquet"]["path"].endswith("netflix_frames.parquet")
        assert block["inputs"]["parquet"]["exists"]
        assert set(block["outputs"]) == {"checkpoint", "stats"}
        assert block["outputs"]["stats"]["embedded_here"]
        assert block["args"]["epochs"] == 30
        v2 = json.loads((trained / "v2.json").read_text())
        assert "arch" not in v2
        assert v2["n_train_rows"] == 162

    def test_the_checkpoint_holds_the_pt_keys_with_torch_layout(self, trained):
        with np.load(trained / "v2.npz") as archive:
            names = archive.files
            assert archive["state_dict.0.weight"].shape == (16, 6)
            assert archive["state_dict.4.weight"].shape == (1, 8)
        assert {
            "features",
            "input_mean",
            "input_std",
            "train_metrics",
            "epochs",
            "lr",
            "batch_size",
            "seed",
        } <= set(names)
        assert load_checkpoint(trained / "v2.npz", "mlp_small").model.n_params == 257

    def test_two_runs_write_byte_identical_files(self, tables, tmp_path):
        written = []
        for _ in range(2):
            done = run_script(
                "train_vmaf_tiny_v4",
                "--parquet",
                tables / "netflix_frames.parquet",
                "--out-ckpt",
                tmp_path / "m.npz",
                "--out-stats",
                tmp_path / "m.json",
                *QUICK,
            )
            assert done.returncode == 0, done.stderr
            written.append(
                [(tmp_path / n).read_bytes() for n in ("m.npz", "m.json", "m.npz.manifest.json")]
            )
        assert written[0] == written[1]

    def test_a_missing_column_is_exit_2_and_nothing_written(self, tables, tmp_path):
        bad = without(tables / "netflix_frames.parquet", "motion2", tmp_path / "bad.parquet")
        done = run_script(
            "train_vmaf_tiny_v2",
            "--parquet",
            bad,
            "--out-ckpt",
            tmp_path / "m.npz",
            "--out-stats",
            tmp_path / "m.json",
            *QUICK,
        )
        assert done.returncode == 2
        assert done.stderr.strip().splitlines() == [
            f"train_vmaf_tiny_v2.py: error: {bad}: missing column(s) motion2"
        ]
        assert not (tmp_path / "m.npz").exists()
        assert not (tmp_path / "m.json").exists()

    def test_v5_trains_on_both_tables_and_stops_with_exit_1_on_a_missing_column(
        self, tables, tmp_path
    ):
        base, extra = tables / "netflix_frames.parquet", tables / "ugc_frames.parquet"
        done = run_script(
            "train_vmaf_tiny_v5",
            "--parquet-base",
            base,
            "--parquet-extra",
            extra,
            "--out-ckpt",
            tmp_path / "m.npz",
            "--out-stats",
            tmp_path / "m.json",
            *QUICK,
        )
        assert done.returncode == 0, done.stderr
        stats = json.loads((tmp_path / "m.json").read_text())
        assert stats["n_train_rows"] == 162 + 60
        assert stats["parquet_extra"] == str(extra)
        assert set(stats["run_provenance"]["inputs"]) == {"parquet_base", "parquet_extra"}
        bad = without(extra, "vmaf", tmp_path / "bad.parquet")
        done = run_script(
            "train_vmaf_tiny_v5",
            "--parquet-base",
            base,
            "--parquet-extra",
            bad,
            "--out-ckpt",
            tmp_path / "n.npz",
            "--out-stats",
            tmp_path / "n.json",
            *QUICK,
        )
        assert done.returncode == 1
        assert "missing column(s) vmaf" in done.stderr
        assert not (tmp_path / "n.npz").exists()


class TestExporters:
    def test_the_onnx_interface_and_parity_with_the_checkpoint(self, trained, tables):
        model = onnx.load(str(trained / "v3.onnx"))
        (inp,), (out,) = model.graph.input, model.graph.output
        assert inp.name == "features"
        assert out.name == "vmaf"
        assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["N", 6]
        assert [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim] == ["N"]
        assert model.opset_import[0].version == 17
        import onnxruntime as ort

        x = np.stack(
            [
                pq.read_table(tables / "netflix_frames.parquet").column(c).to_numpy()
                for c in ("adm2", "vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3", "motion2")
            ],
            axis=1,
        )
        got = ort.InferenceSession(str(trained / "v3.onnx")).run(
            None, {"features": x.astype(np.float32)}
        )[0]
        want = load_checkpoint(trained / "v3.npz", "mlp_medium").model.predict(x).reshape(-1)
        assert got.shape == (162,)
        assert np.max(np.abs(got - want)) < 1e-3

    def test_the_sidecar_names_the_checkpoint_and_both_outputs(self, trained):
        sidecar = json.loads((trained / "v3.onnx.json").read_text())
        assert list(sidecar)[:12] == [
            "id",
            "kind",
            "onnx",
            "opset",
            "sha256",
            "input_name",
            "input_shape",
            "output_name",
            "output_shape",
            "features",
            "input_mean",
            "input_std",
        ]
        assert sidecar["id"] == "vmaf_tiny_v3"
        assert sidecar["n_params"] == 769
        block = sidecar["run_provenance"]
        assert block["inputs"]["checkpoint"]["path"].endswith("v3.npz")
        assert set(block["outputs"]) == {"onnx", "model_sidecar"}
        assert block["outputs"]["onnx"]["sha256"] == sidecar["sha256"]

    def test_a_checkpoint_of_another_architecture_is_exit_2(self, trained, tmp_path):
        done = run_script(
            "export_vmaf_tiny_v2",
            "--ckpt",
            trained / "v3.npz",
            "--out-onnx",
            tmp_path / "m.onnx",
            "--out-sidecar",
            tmp_path / "m.json",
        )
        assert done.returncode == 2
        assert "is not mlp_small's" in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "m.onnx").exists()
        assert not (tmp_path / "m.json").exists()


class TestValidators:
    def test_without_out_json_nothing_is_written(self, trained, tables, tmp_path):
        done = run_script(
            "validate_vmaf_tiny_v2",
            "--onnx",
            trained / "v2.onnx",
            "--parquet",
            tables / "netflix_frames.parquet",
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        assert "PASS" in done.stdout
        assert list(tmp_path.iterdir()) == []

    def test_a_failed_gate_is_exit_1_with_its_report_and_record(self, trained, tables, tmp_path):
        report = tmp_path / "r.json"
        done = run_script(
            "validate_vmaf_tiny_v3",
            "--onnx",
            trained / "v3.onnx",
            "--parquet",
            tables / "netflix_frames.parquet",
            "--v2-onnx",
            trained / "v2.onnx",
            "--min-plcc",
            "0.9999",
            "--out-json",
            report,
        )
        assert done.returncode == 1
        assert "FAIL" in done.stderr
        document = json.loads(report.read_text())
        assert document["verdict"] == "FAIL"
        assert document["rows"] == 100
        assert set(document["comparisons"]["v2"]) == {"onnx", "delta_mean", "delta_max_abs"}
        block = block_of(report)
        assert block["outcome"]["gates"]["plcc"]["passed"] is False
        assert block["outcome"]["gates"]["plcc"]["min_plcc"] == 0.9999
        assert set(block["inputs"]) == {"onnx", "parquet", "v2_onnx"}
        assert block["outputs"]["report"]["exists"]

    def test_a_passing_gate_is_exit_0(self, trained, tables, tmp_path):
        report = tmp_path / "r.json"
        done = run_script(
            "validate_vmaf_tiny_v2",
            "--onnx",
            trained / "v2.onnx",
            "--parquet",
            tables / "netflix_frames.parquet",
            "--out-json",
            report,
        )
        assert done.returncode == 0, done.stderr
        assert load_sidecar(sidecar_of(report))["run_provenance"]["outcome"]["gates"]["plcc"][
            "passed"
        ]

    def test_missing_columns_are_exit_2_with_no_report(self, trained, tables, tmp_path):
        bad = without(tables / "netflix_frames.parquet", "adm2", tmp_path / "bad.parquet")
        done = run_script(
            "validate_vmaf_tiny_v4",
            "--onnx",
            trained / "v2.onnx",
            "--parquet",
            bad,
            "--out-json",
            tmp_path / "r.json",
        )
        assert done.returncode == 2
        assert done.stderr.strip().endswith("missing column(s) adm2")
        assert not (tmp_path / "r.json").exists()


class TestLoso:
    def test_v3_folds_every_source_and_records_the_table(self, tables, tmp_path):
        report = tmp_path / "r.json"
        done = run_script(
            "eval_loso_vmaf_tiny_v3",
            "--parquet",
            tables / "netflix_frames.parquet",
            "--out-json",
            report,
            *QUICK,
        )
        assert done.returncode == 0, done.stderr
        document = json.loads(report.read_text())
        assert document["model"] == "vmaf_tiny_v3"
        assert document["n_folds"] == 9
        assert list(document["per_fold"]) == sorted(document["per_fold"])
        assert set(document["per_fold"]["Tennis"]) == {"n", "plcc", "srocc", "rmse"}
        assert document["per_fold"]["Tennis"]["n"] == 18
        assert set(document["aggregate"]) == {
            f"{s}_{m}" for s in ("mean", "std") for m in ("plcc", "srocc", "rmse")
        }
        assert document["run_provenance"]["inputs"]["parquet"]["exists"]

    def test_no_source_column_is_exit_2(self, tables, tmp_path):
        bad = without(tables / "netflix_frames.parquet", "source", tmp_path / "bad.parquet")
        for script, extra in (
            ("eval_loso_vmaf_tiny_v4", []),
            ("eval_multiseed_v3_v4", ["--arch", "mlp_large"]),
        ):
            done = run_script(
                script, "--parquet", bad, "--out-json", tmp_path / "r.json", *extra, *QUICK
            )
            assert done.returncode == 2, script
            assert "missing column(s) source" in done.stderr
            assert not (tmp_path / "r.json").exists()

    def test_v5_holds_out_netflix_sources_only_and_decides(self, tables, tmp_path):
        report = tmp_path / "r.json"
        done = run_script(
            "eval_loso_vmaf_tiny_v5",
            "--parquet-base",
            tables / "netflix_frames.parquet",
            "--parquet-extra",
            tables / "ugc_frames.parquet",
            "--out-json",
            report,
            *QUICK,
        )
        assert done.returncode == 0, done.stderr
        document = json.loads(report.read_text())
        assert list(document["v2_baseline"]["per_fold"]) == list(
            document["v5_extended"]["per_fold"]
        )
        assert not any(k.startswith("ugc") for k in document["v5_extended"]["per_fold"])
        assert len(document["v5_extended"]["per_fold"]) == 9
        assert document["decision"] in ("ship_v5", "defer")
        expected = document["delta_plcc"] >= document["v2_sigma_plcc"]
        assert (document["decision"] == "ship_v5") == expected
        assert set(document["run_provenance"]["inputs"]) == {"parquet_base", "parquet_extra"}

    def test_multiseed_summarises_per_seed_per_fold_and_overall(self, tables, tmp_path):
        report = tmp_path / "r.json"
        done = run_script(
            "eval_multiseed_v3_v4",
            "--arch",
            "mlp_medium",
            "--parquet",
            tables / "netflix_frames.parquet",
            "--seeds",
            "0",
            "1",
            "--label",
            "x",
            "--out-json",
            report,
            *QUICK,
        )
        assert done.returncode == 0, done.stderr
        document = json.loads(report.read_text())
        assert list(document["per_seed_per_fold"]) == ["0", "1"]
        seed0 = document["per_seed_per_fold"]["0"]
        mean0 = np.mean([f["plcc"] for f in seed0.values()])
        assert document["per_seed_aggregate"]["0"]["mean_plcc"] == pytest.approx(mean0, abs=1e-6)
        means = [document["per_seed_aggregate"][s]["mean_plcc"] for s in ("0", "1")]
        assert document["overall"]["std_plcc"] == pytest.approx(np.std(means, ddof=1), abs=1e-6)
        assert document["run_provenance"]["args"]["seeds"] == [0, 1]


def test_the_sample_tables_hold_nine_netflix_sources_and_a_ugc_table_without_corpus(tables):
    netflix, ugc = (
        pq.read_table(tables / f) for f in ("netflix_frames.parquet", "ugc_frames.parquet")
    )
    assert len(set(netflix.column("source").to_pylist())) == 9
    assert set(netflix.column("corpus").to_pylist()) == {"netflix"}
    assert "corpus" not in ugc.column_names
    assert isinstance(ugc, pa.Table)
