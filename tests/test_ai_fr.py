"""The FR regressor family: v1, v2, v3, the v2 deep ensemble and its coverage probe, run as users
run them, on small real files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ai.features.libvmaf import CANONICAL_6
from ai.fr.regressor import (
    ENCODER_VOCAB_V2,
    codec_block_v2,
    codec_v1,
    encoder_v2,
    onehot_v3,
    preset_ordinal,
)
from ai.mos.onnx_head import shape_of
from ai.scripts.train_fr_regressor_v2_ensemble import conformal_q
from tests.conftest import load_sidecar, run_script, sidecar_of

FAST = ["--epochs", "60", "--batch-size", "16", "--lr", "0.01"]


def frames(path: Path, sources: int = 3, per_source: int = 12, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    n = sources * per_source
    quality = rng.uniform(0, 1, n)
    columns: dict[str, Any] = {
        "source": [f"src{i // per_source}" for i in range(n)],
        **{f: 0.3 + 0.6 * quality + rng.normal(0, 0.01, n) for f in CANONICAL_6},
        "vmaf": 10 + 85 * quality + rng.normal(0, 0.5, n),
    }
    pq.write_table(pa.table(columns), path)
    return path


def grid(path: Path, sources: int = 4) -> Path:
    rng = np.random.default_rng(1)
    rows = []
    for s in range(sources):
        for encoder in ("libx264", "libsvtav1"):
            for crf in (20, 28, 36, 44):
                q = max(0.05, 0.95 - 0.02 * (crf - 20) - 0.03 * s)
                row = {f"{f}_mean": 0.3 + 0.6 * q + rng.normal(0, 0.01) for f in CANONICAL_6}
                row |= {"src": f"s{s}", "encoder": encoder, "preset": "medium", "crf": crf}
                rows.append({**row, "vmaf_score": 10 + 85 * q})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def outputs_v1(tmp: Path, name: str = "v1") -> list[str]:
    return [
        "--out-onnx", tmp / f"{name}.onnx", "--out-sidecar", tmp / f"{name}.json",
        "--registry", tmp / "registry.json", "--metrics-out", tmp / f"{name}_metrics.json",
    ]  # fmt: skip


def io_of(path: Path) -> tuple[list[tuple[str, list[Any]]], list[tuple[str, list[Any]]]]:
    model = onnx.load(str(path))
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 17
    return (
        [(v.name, shape_of(v)) for v in model.graph.input],
        [(v.name, shape_of(v)) for v in model.graph.output],
    )


def run_onnx(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {k: v.astype(np.float32) for k, v in feeds.items()})[0])


def block(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text("utf-8"))
    assert "run_provenance" in document, f"{path.name} carries no block"
    result: dict[str, Any] = document["run_provenance"]
    return result


class TestV1:
    def test_a_passing_gate_ships_onnx_sidecar_and_registry_row_with_the_block(self, tmp_path):
        table = frames(tmp_path / "frames.parquet")
        proc = run_script("train_fr_regressor", "--parquet", table, *FAST, *outputs_v1(tmp_path))
        assert proc.returncode == 0, proc.stderr
        sidecar = json.loads((tmp_path / "v1.json").read_text())
        assert sidecar["id"] == "fr_regressor_v1"
        assert sidecar["input_names"] == ["features"]
        assert sidecar["output_names"] == ["score"]
        assert sidecar["training"]["n_sources"] == 3
        assert io_of(tmp_path / "v1.onnx") == (
            [("features", ["batch", 6])],
            [("score", ["batch"])],
        )
        record = load_sidecar(sidecar_of(tmp_path / "v1_metrics.json"))["run_provenance"]
        assert record["outcome"]["gates"]["ship"]["passed"] is True
        assert record["inputs"]["parquet"]["sha256"]
        for host in ("v1.json", "v1_metrics.json"):
            assert block(tmp_path / host)["outputs"]["model_sidecar"]["embedded_here"] is True
        metrics = json.loads((tmp_path / "v1_metrics.json").read_text())
        assert metrics["shipped"] is True
        assert metrics["loso"]["summary"]["n_folds"] == 3
        registry = json.loads((tmp_path / "registry.json").read_text())
        (row,) = registry["models"]
        assert row["onnx"] == "v1.onnx"
        assert row["sha256"] == sidecar["sha256"]

    def test_the_onnx_model_scores_standardised_features_as_trained(self, tmp_path):
        table = frames(tmp_path / "frames.parquet")
        run_script("train_fr_regressor", "--parquet", table, *FAST, *outputs_v1(tmp_path))
        sidecar = json.loads((tmp_path / "v1.json").read_text())
        read = pq.read_table(table)
        x = np.stack([read.column(f).to_numpy() for f in CANONICAL_6], axis=1)
        z = (x - np.array(sidecar["feature_mean"])) / np.array(sidecar["feature_std"])
        score = run_onnx(tmp_path / "v1.onnx", {"features": z})
        vmaf = pq.read_table(table).column("vmaf").to_numpy()
        assert score.shape == (len(x),)
        assert np.corrcoef(score, vmaf)[0, 1] > 0.95

    def test_a_failed_gate_refuses_to_ship_exit_3_and_still_traces_the_run(self, tmp_path):
        table = frames(tmp_path / "frames.parquet")
        proc = run_script(
            "train_fr_regressor", "--parquet", table, *FAST, "--ship-threshold", "1.01",
            *outputs_v1(tmp_path),
        )  # fmt: skip
        assert proc.returncode == 3
        assert "REFUSE TO SHIP" in proc.stderr
        assert not (tmp_path / "v1.onnx").exists()
        assert not (tmp_path / "registry.json").exists()
        metrics = json.loads((tmp_path / "v1_metrics.json").read_text())
        assert metrics["shipped"] is False
        assert metrics["run_provenance"]["outcome"]["exit_code"] == 3
        assert metrics["run_provenance"]["outcome"]["gates"]["ship"]["passed"] is False

    @pytest.mark.parametrize("drop", ["vmaf", "motion2", "source"])
    def test_bad_input_is_one_line_exit_2_and_nothing_written(self, tmp_path, drop):
        table = frames(tmp_path / "frames.parquet")
        pq.write_table(pq.read_table(table).drop_columns([drop]), table)
        proc = run_script("train_fr_regressor", "--parquet", table, *FAST, *outputs_v1(tmp_path))
        assert proc.returncode == 2
        assert proc.stderr.count("\n") == 1
        assert "error:" in proc.stderr
        assert drop in proc.stderr
        assert not (tmp_path / "v1_metrics.json").exists()
        assert not (tmp_path / "v1.onnx").exists()

    def test_two_runs_are_byte_identical(self, tmp_path):
        table = frames(tmp_path / "frames.parquet")
        names = ("v1.onnx", "v1.json", "v1_metrics.json", "registry.json")
        files = []
        for _ in range(2):
            proc = run_script(
                "train_fr_regressor", "--parquet", table, *FAST, *outputs_v1(tmp_path)
            )
            assert proc.returncode == 0, proc.stderr
            names_all = [*names, "v1_metrics.json.manifest.json"]
            files.append([(tmp_path / f).read_bytes() for f in names_all])
        assert files[0] == files[1]


class TestV2:
    def test_smoke_exports_two_inputs_and_both_jsons_carry_the_block(self, tmp_path):
        proc = run_script("train_fr_regressor_v2", "--smoke", *outputs_v1(tmp_path, "v2"))
        assert proc.returncode == 0, proc.stderr
        assert io_of(tmp_path / "v2.onnx") == (
            [("features", ["batch", 6]), ("codec", ["batch", 14])],
            [("score", ["batch"])],
        )
        sidecar = json.loads((tmp_path / "v2.json").read_text())
        assert sidecar["encoder_vocab_version"] == 2
        assert len(sidecar["codec_block_layout"]) == 14
        assert sidecar["training"]["dataset"] == "synthetic-smoke"
        assert json.loads((tmp_path / "registry.json").read_text())["models"][0]["smoke"] is True
        for host in ("v2.json", "v2_metrics.json"):
            assert block(tmp_path / host)["args"]["smoke"] is True

    def test_a_corpus_row_becomes_features_and_codec_block(self, tmp_path):
        corpus = grid(tmp_path / "grid.jsonl")
        proc = run_script(
            "train_fr_regressor_v2", "--corpus", corpus, *FAST, *outputs_v1(tmp_path, "v2")
        )
        assert proc.returncode == 0, proc.stderr
        metrics = json.loads((tmp_path / "v2_metrics.json").read_text())
        assert metrics["n_rows"] == 32
        assert metrics["in_sample"]["plcc"] > 0.9
        assert block(tmp_path / "v2_metrics.json")["inputs"]["corpus"]["sha256"]

    @pytest.mark.parametrize("given", [[], ["--smoke", "--corpus", "x.jsonl"]])
    def test_both_or_neither_source_is_exit_2(self, tmp_path, given):
        proc = run_script("train_fr_regressor_v2", *given, *outputs_v1(tmp_path, "v2"))
        assert proc.returncode == 2
        assert "exactly one of --smoke and --corpus" in proc.stderr
        assert not (tmp_path / "v2_metrics.json").exists()


def outputs_v3(tmp: Path) -> list[object]:
    return [
        "--out-onnx", tmp / "v3.onnx", "--out-sidecar", tmp / "v3.json",
        "--registry", tmp / "registry.json",
    ]  # fmt: skip


class TestV3:
    def test_a_passing_gate_ships_the_codec_block_model(self, tmp_path):
        corpus = grid(tmp_path / "grid.jsonl")
        proc = run_script("train_fr_regressor_v3", "--corpus", corpus, *FAST, *outputs_v3(tmp_path))
        assert proc.returncode == 0, proc.stderr
        assert io_of(tmp_path / "v3.onnx") == (
            [("features", ["batch", 6]), ("codec_block", ["batch", 18])],
            [("vmaf", ["batch"])],
        )
        sidecar = json.loads((tmp_path / "v3.json").read_text())
        assert sidecar["gate_passed"] is True
        assert sidecar["training"]["loso_folds"][0]["held_out"] == "s0"
        assert sidecar["run_provenance"]["outcome"]["gates"]["loso_mean_plcc"]["passed"] is True

    def test_a_failed_gate_ships_a_scaffold_marked_not_gated_and_exits_1(self, tmp_path):
        corpus = grid(tmp_path / "grid.jsonl")
        proc = run_script(
            "train_fr_regressor_v3", "--corpus", corpus, "--epochs", "1", *outputs_v3(tmp_path)
        )
        assert proc.returncode == 1
        sidecar = json.loads((tmp_path / "v3.json").read_text())
        assert sidecar["gate_passed"] is False
        assert sidecar["training"]["epochs"] == 1
        assert json.loads((tmp_path / "registry.json").read_text())["models"][0]["smoke"] is True
        record = load_sidecar(sidecar_of(tmp_path / "v3.onnx"))["run_provenance"]
        assert record["outcome"]["exit_code"] == 1
        assert record["outcome"]["gates"]["loso_mean_plcc"]["passed"] is False

    def test_a_failed_gate_with_no_export_writes_no_model(self, tmp_path):
        corpus = grid(tmp_path / "grid.jsonl")
        proc = run_script(
            "train_fr_regressor_v3", "--corpus", corpus, "--epochs", "1", "--no-export",
            *outputs_v3(tmp_path),
        )  # fmt: skip
        assert proc.returncode == 1
        assert not (tmp_path / "v3.onnx").exists()
        assert not (tmp_path / "registry.json").exists()

    def test_smoke_skips_the_gate(self, tmp_path):
        proc = run_script("train_fr_regressor_v3", "--smoke", *outputs_v3(tmp_path))
        assert proc.returncode == 0, proc.stderr
        sidecar = json.loads((tmp_path / "v3.json").read_text())
        assert sidecar["training"]["dataset"] == "synthetic-smoke"
        assert sidecar["gate_passed"] is False
        assert sidecar["run_provenance"]["outcome"]["gates"] == {}

    def test_a_corpus_of_neither_shape_is_exit_2(self, tmp_path):
        corpus = tmp_path / "grid.jsonl"
        corpus.write_text('{"src": "a", "vmaf": 1}\n')
        proc = run_script("train_fr_regressor_v3", "--corpus", corpus, *outputs_v3(tmp_path))
        assert proc.returncode == 2
        assert "neither the schema-v3 nor the legacy shape" in proc.stderr


def codec_parquet(path: Path, n: int = 60, seed: int = 3) -> Path:
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, 6))
    codecs = [("x264", "hevc", "av1", "vp9")[i % 4] for i in range(n)]
    columns = {f: x[:, i] for i, f in enumerate(CANONICAL_6)}
    columns["vmaf"] = 50 + 30 * x[:, 0] + 10 * x[:, 4]
    pq.write_table(pa.table({**columns, "codec": codecs}), path)
    return path


ENSEMBLE = ["--ensemble-size", "3", "--epochs", "40", "--batch-size", "16"]


class TestEnsembleAndCoverage:
    def test_the_manifest_carries_the_block_with_members_and_registry(self, tmp_path):
        registry = tmp_path / "m" / "registry.json"
        registry.parent.mkdir()
        stale = {"id": "fr_regressor_v2_ensemble_v1_seed9", "kind": "fr", "onnx": "x.onnx"}
        other = {"id": "konvid_mos_head", "kind": "mos_head", "onnx": "k.onnx"}
        registry.write_text(json.dumps({"schema_version": 1, "models": [stale, other]}))
        corpus = codec_parquet(tmp_path / "c.parquet")
        proc = run_script(
            "train_fr_regressor_v2_ensemble", "--corpus", corpus, *ENSEMBLE,
            "--conformal-calibration-frac", "0.2", "--out-dir", tmp_path / "m",
            "--registry", registry,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        manifest = json.loads((tmp_path / "m/fr_regressor_v2_ensemble_v1.json").read_text())
        assert [m["seed"] for m in manifest["members"]] == [0, 1, 2]
        assert manifest["confidence"]["method"] == "ensemble+conformal"
        assert manifest["eval"]["calibration"]["n_calibration"] == 12
        embedded = manifest["run_provenance"]
        assert embedded["inputs"]["corpus"]["sha256"]
        assert len(embedded["outputs"]["members"]) == 3
        assert embedded["outputs"]["registry"]["exists"] is True
        assert embedded["argv"][:2] == ["--corpus", str(corpus)]
        ids = [m["id"] for m in json.loads(registry.read_text())["models"]]
        assert ids == [
            "fr_regressor_v2_ensemble_v1_seed0",
            "fr_regressor_v2_ensemble_v1_seed1",
            "fr_regressor_v2_ensemble_v1_seed2",
            "konvid_mos_head",
        ]
        assert io_of(tmp_path / "m/fr_regressor_v2_ensemble_v1_seed0.onnx") == (
            [("features", ["batch", 6]), ("codec_onehot", ["batch", 6])],
            [("score", ["batch"])],
        )
        out = tmp_path / "cov.json"
        manifest_path = tmp_path / "m/fr_regressor_v2_ensemble_v1.json"
        held_out = codec_parquet(tmp_path / "e.parquet", seed=4)
        proc = run_script(
            "eval_probabilistic_proxy", "--manifest", manifest_path, "--parquet", held_out,
            "--metrics-out", out,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        report = json.loads(out.read_text())
        assert report["ensemble_size"] == 3
        assert set(report["coverage"]["gaussian"]) == {"50", "80", "95"}
        widths = [report["coverage"]["gaussian"][k]["mean_width"] for k in ("50", "80", "95")]
        assert widths == sorted(widths)
        assert (
            report["coverage"]["conformal"]["q"] == manifest["confidence"]["conformal_q_residual"]
        )
        record = report["run_provenance"]
        assert record["inputs"]["manifest"]["sha256"]
        assert len(record["inputs"]["members"]) == 3

    def test_no_export_writes_nothing_and_a_bad_size_is_exit_2(self, tmp_path):
        proc = run_script(
            "train_fr_regressor_v2_ensemble", "--smoke", "--no-export", "--out-dir", tmp_path / "m",
            "--registry", tmp_path / "m/registry.json",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert not list(tmp_path.rglob("*.onnx"))
        assert not (tmp_path / "m/registry.json").exists()
        proc = run_script(
            "train_fr_regressor_v2_ensemble", "--smoke", "--ensemble-size", "0",
            "--out-dir", tmp_path / "bad", "--registry", tmp_path / "bad/registry.json",
        )  # fmt: skip
        assert proc.returncode == 2
        assert "--ensemble-size must be at least 1" in proc.stderr

    def test_a_missing_manifest_is_exit_2_with_a_hint(self, tmp_path):
        proc = run_script(
            "eval_probabilistic_proxy", "--manifest", tmp_path / "none.json",
            "--metrics-out", tmp_path / "cov.json",
        )  # fmt: skip
        assert proc.returncode == 2
        assert "train_fr_regressor_v2_ensemble.py writes it" in proc.stderr
        assert not (tmp_path / "cov.json").exists()


class TestCodecBlocks:
    def test_v2_aliases_and_unknowns(self):
        assert encoder_v2("H264") == "libx264"
        assert encoder_v2("vp9") == "libvpx-vp9"
        assert encoder_v2(None) == encoder_v2("") == encoder_v2("prores") == "unknown"

    def test_v2_preset_ordinals(self):
        assert preset_ordinal("libx264", "placebo") == 9
        assert preset_ordinal("libsvtav1", "13") == 9
        assert preset_ordinal("h264_nvenc", "p2") == 2
        assert preset_ordinal("hevc_qsv", "veryslow") == 8
        assert preset_ordinal("libvvenc", None) == 5

    def test_v2_block_is_onehot_preset_and_crf(self):
        block = codec_block_v2("hevc", "slow", 63)
        assert len(block) == 14
        assert block[ENCODER_VOCAB_V2.index("libx265")] == 1.0
        assert sum(block[:12]) == 1.0
        assert block[12:] == [6 / 9, 1.0]
        assert codec_block_v2("x264", None, None)[13] == 23 / 63

    def test_v3_has_no_unknown_slot_and_v1_maps_aliases(self):
        assert onehot_v3("prores")[0] == 1.0
        assert onehot_v3("libsvtav1")[13] == 1.0
        assert codec_v1("h265") == "x265"
        assert codec_v1("libx264") == "unknown"

    def test_conformal_rank(self):
        residual = np.arange(1.0, 20.0)  # 19 values: rank ceil(20 * 0.95) - 1 = 18
        assert conformal_q(residual, 0.95) == (19.0, pytest.approx(0.05))
        assert conformal_q(np.array([3.0]), 0.5)[0] == 3.0
