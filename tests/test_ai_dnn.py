"""The DNN feature-model exporters: ONNX interfaces, sidecars, registry rows, fatal checks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from ai.common.onnx_checks import disallowed_ops, run_bytes
from ai.demo import EMPTY_REGISTRY, FASTDVDNET_SAMPLE_SHA256
from ai.dnn import fastdvdnet
from ai.dnn.export import load_checkpoint
from ai.sample.dnn import write_dnn
from ai.sample.generator import Tree
from provenance import validate
from tests.conftest import block_of, load_sidecar, run_script, sidecar_of


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sample")
    write_dnn(Tree(root), np.random.default_rng([0, 13]))
    return root / "dnn"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    (tmp_path / "registry.json").write_bytes(EMPTY_REGISTRY)
    return tmp_path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def shape(value: onnx.ValueInfoProto) -> list[object]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_the_demo_pin_is_the_sample_weights_digest(weights):
    assert sha256(weights / "fastdvdnet/model.npz") == FASTDVDNET_SAMPLE_SHA256


def test_fastdvdnet_pre_exports_the_contract_and_records_its_weights(weights, out):
    onnx_path = out / "fastdvdnet_pre.onnx"
    proc = run_script(
        "export_fastdvdnet_pre", "--upstream-dir", weights / "fastdvdnet",
        "--weights-sha256", FASTDVDNET_SAMPLE_SHA256, "--output", onnx_path,
        "--height", 16, "--width", 24, "--registry", out / "registry.json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    model = onnx.load(str(onnx_path))
    assert [i.name for i in model.graph.input] == ["frames"]
    assert shape(model.graph.input[0]) == [1, 5, "H", "W"]
    assert shape(model.graph.output[0]) == [1, 1, "H", "W"]
    assert model.opset_import[0].version == 17
    assert not disallowed_ops(model)
    assert "DepthToSpace" not in {n.op_type for n in model.graph.node}
    # H and W are dynamic: another size runs, and matches the numpy forward of the weights.
    state = fastdvdnet.strip_module(load_checkpoint(weights / "fastdvdnet/model.npz").state)
    frames = np.random.default_rng(5).random((1, 5, 8, 12), dtype=np.float32)
    got = run_bytes(onnx_path.read_bytes(), {"frames": frames})[0]
    assert np.max(np.abs(got - fastdvdnet.forward(state, frames, 25 / 255))) < 1e-4
    sidecar = json.loads((out / "fastdvdnet_pre.json").read_text())
    assert sidecar["smoke"] is False
    assert sidecar["id"] == "fastdvdnet_pre"
    assert sidecar["upstream_weights_sha256"] == FASTDVDNET_SAMPLE_SHA256
    block = sidecar["run_provenance"]
    assert block["inputs"]["weights"]["sha256"] == FASTDVDNET_SAMPLE_SHA256
    assert set(block["outputs"]) == {"onnx", "sidecar", "registry"}
    row = json.loads((out / "registry.json").read_text())["models"][0]
    assert row["sha256"] == sha256(onnx_path) == sidecar["sha256"]
    assert row["license"] == "MIT"
    assert row["smoke"] is False


def test_a_wrong_digest_or_missing_weights_is_fatal_and_writes_nothing(weights, out):
    onnx_path = out / "f.onnx"
    wrong = run_script(
        "export_fastdvdnet_pre", "--upstream-dir", weights / "fastdvdnet",
        "--output", onnx_path, "--registry", out / "registry.json",
    )  # fmt: skip
    assert wrong.returncode == 1
    assert "is not the pinned 9d9d8413" in wrong.stderr
    assert len(wrong.stderr.splitlines()) == 1
    missing = run_script(
        "export_transnet_v2", "--upstream-dir", out / "nowhere", "--output", out / "t.onnx",
        "--registry", out / "registry.json",
    )  # fmt: skip
    assert missing.returncode == 1
    assert "no such weights file" in missing.stderr
    assert not onnx_path.exists()
    assert not (out / "t.onnx").exists()
    assert load_sidecar(sidecar_of(onnx_path))["run_provenance"]["outcome"]["exit_code"] == 1
    assert json.loads((out / "registry.json").read_text())["models"] == []


def test_a_missing_registry_is_fatal_unless_no_registry(tmp_path):
    onnx_path = tmp_path / "tp.onnx"
    proc = run_script(
        "export_transnet_v2_placeholder", "--output", onnx_path,
        "--registry", tmp_path / "registry.json",
    )  # fmt: skip
    assert proc.returncode == 1
    assert "no such registry" in proc.stderr
    assert not onnx_path.exists()
    proc = run_script("export_transnet_v2_placeholder", "--output", onnx_path, "--no-registry")
    assert proc.returncode == 0, proc.stderr
    assert not onnx_path.with_suffix(".json").exists()
    record = load_sidecar(sidecar_of(onnx_path))  # beside the ONNX, with the sidecar's fields
    assert record["run_provenance"]["outputs"]["onnx"]["sha256"] == sha256(onnx_path)
    assert record["model_transnet_v2"]["smoke"] is True


def test_placeholders_say_so_and_runs_are_byte_identical(out):
    def run() -> tuple[bytes, bytes, bytes]:
        onnx_path = out / "fp.onnx"
        proc = run_script(
            "export_fastdvdnet_pre_placeholder", "--output", onnx_path, "--height", 8,
            "--width", 8, "--registry", out / "registry.json",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        side = onnx_path.with_suffix(".json")
        return onnx_path.read_bytes(), side.read_bytes(), sidecar_of(onnx_path).read_bytes()

    first = run()
    assert run() == first
    sidecar = json.loads(first[1])
    assert sidecar["smoke"] is True
    assert sidecar["name"].endswith("placeholder_v0")


def test_transnet_v2_keeps_the_contract_and_the_fork_registry_kind(weights, out):
    onnx_path = out / "transnet_v2.onnx"
    proc = run_script(
        "export_transnet_v2", "--upstream-dir", weights / "transnetv2", "--output", onnx_path,
        "--registry", out / "registry.json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    model = onnx.load(str(onnx_path))
    assert shape(model.graph.input[0]) == [1, 100, 3, 27, 48]
    assert [o.name for o in model.graph.output] == ["boundary_logits"]
    assert shape(model.graph.output[0]) == [1, 100]
    block = block_of(onnx_path)
    assert block["outcome"]["gates"]["transnet_v2_checks"]["passed"] is True
    row = json.loads((out / "registry.json").read_text())["models"][0]
    assert row["kind"] == "nr"
    assert json.loads(onnx_path.with_suffix(".json").read_text())["kind"] == "shot_detector"


def test_tiny_models_export_both_and_refuse_a_bad_checkpoint(weights, out):
    proc = run_script(
        "export_tiny_models", "--c2-ckpt", weights / "c2_konvid/last.npz",
        "--c3-ckpt", weights / "c3_konvid/last.npz", "--out-dir", out,
        "--frame-size", 32, "--registry", out / "registry.json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    c2 = onnx.load(str(out / "nr_metric_v1.onnx"))
    assert shape(c2.graph.input[0]) == ["N", 1, 32, 32]
    assert c2.graph.output[0].name == "mos"
    c3 = onnx.load(str(out / "learned_filter_v1.onnx"))
    assert [c3.graph.input[0].name, c3.graph.output[0].name] == ["degraded", "filtered"]
    sidecar = json.loads((out / "nr_metric_v1.json").read_text())
    assert list(sidecar)[:6] == ["id", "kind", "onnx", "opset", "sha256", "notes"]
    gates = sidecar["run_provenance"]["outcome"]["gates"]
    assert gates["nr_metric_v1_checks"]["passed"]
    assert gates["learned_filter_v1_checks"]["passed"]
    # ADR-0661: the C3 sidecar carries the same block as C2's, both marked as its hosts.
    c3_sidecar = json.loads((out / "learned_filter_v1.json").read_text())
    assert c3_sidecar["run_provenance"] == sidecar["run_provenance"]
    hosts = sidecar["run_provenance"]["outputs"]["sidecar"]
    assert [h["embedded_here"] for h in hosts] == [True, True]
    validate({"schema": "provenance.manifest/v1", "run_provenance": c3_sidecar["run_provenance"]})
    ids = [m["id"] for m in json.loads((out / "registry.json").read_text())["models"]]
    assert ids == ["learned_filter_v1", "nr_metric_v1"]
    bad = out / "bad.npz"
    bad.write_bytes(b"not a zip")
    proc = run_script(
        "export_tiny_models", "--c2-ckpt", bad, "--c3-ckpt", out / "none.npz",
        "--out-dir", out / "o", "--registry", out / "registry.json",
    )  # fmt: skip
    assert proc.returncode == 2
    assert len(proc.stderr.splitlines()) == 1
    assert not (out / "o").exists() or not any((out / "o").glob("*.onnx"))
    proc = run_script(
        "export_tiny_models", "--c2-ckpt", out / "a.npz", "--c3-ckpt", out / "b.npz",
        "--out-dir", out / "o", "--registry", out / "registry.json",
    )  # fmt: skip
    assert proc.returncode == 1
    assert "nothing to export" in proc.stderr
