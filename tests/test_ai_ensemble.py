"""The FR regressor v2 ensemble (ADR-0661): LOSO seed reports, the seed gate, the export."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pyarrow.parquet as pq
import pytest

from provenance import validate
from tests.conftest import block_of, load_sidecar, run_python, run_script, sidecar_of

ENSEMBLE = "fr_regressor_v2_ensemble_v1"
CANONICAL = ["adm2", "vif_scale0", "vif_scale1", "vif_scale2", "vif_scale3", "motion2"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_loso_report_holds_one_fold_per_source_and_its_evidence(demo):
    corpus = demo / "tables/konvid_pairs.parquet"
    keys = pq.read_table(corpus).column("key").to_pylist()
    by_source: dict[str, int] = {}
    for key in keys:
        by_source[key.split("__")[0]] = by_source.get(key.split("__")[0], 0) + 1
    report = json.loads((demo / "reports/loso/loso_seed1.json").read_text())
    assert [(f["source"], f["frames"]) for f in report["folds"]] == sorted(by_source.items())
    assert report["mean_plcc"] == pytest.approx(np.mean([f["plcc"] for f in report["folds"]]))
    assert report["training"] == {"ridge": 1.0, "bag_fraction": 0.8, "features": CANONICAL}
    assert (report["seed"], report["frames"], report["corpus"]) == (1, len(keys), corpus.name)
    embedded = report["run_provenance"]
    assert embedded["inputs"]["corpus"]["sha256"] == sha256(corpus)
    assert embedded["argv"][embedded["argv"].index("--seed") + 1] == "1"
    assert embedded["outputs"]["report"]["embedded_here"] is True
    manifest = load_sidecar(sidecar_of(demo / "reports/loso/loso_seed1.json"))
    assert (manifest["seed"], manifest["sources"]) == (1, len(by_source))


def test_a_loso_corpus_without_a_feature_is_exit_2_and_writes_no_report(demo, tmp_path):
    table = pq.read_table(demo / "tables/konvid_pairs.parquet").drop_columns(["motion2"])
    corpus = tmp_path / "pairs.parquet"
    pq.write_table(table, corpus)
    out = tmp_path / "loso"
    proc = run_script("train_fr_regressor_v2_ensemble_loso", "--corpus", corpus, "--seed", "0",
                      "--out-dir", out)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(f"{corpus}: missing column(s) motion2")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["loso_seed0.json.manifest.json"]


def test_the_verdict_names_the_one_corpus_its_seeds_were_judged_on(demo, tmp_path):
    verdict = json.loads((demo / "reports/gate/PROMOTE.json").read_text())
    assert verdict["corpus_sha256"] == sha256(demo / "tables/konvid_pairs.parquet")
    loso = tmp_path / "loso"
    shutil.copytree(demo / "reports/loso", loso)
    report = json.loads((loso / "loso_seed2.json").read_text())
    report["run_provenance"]["inputs"]["corpus"]["sha256"] = "0" * 64
    (loso / "loso_seed2.json").write_text(json.dumps(report))
    out = tmp_path / "gate"
    proc = run_script("validate_ensemble_seeds", "--loso-dir", loso, "--seeds", "0", "1", "2",
                      "--out-dir", out)  # fmt: skip
    assert proc.returncode == 2
    assert "the seed reports were judged on different corpora" in proc.stderr
    assert not (out / "PROMOTE.json").exists()


def export(demo: Path, verdict: Path, out: Path, *extra: object):
    return run_script("export_ensemble_v2_seeds", "--corpus", demo / "tables/konvid_pairs.parquet",
                      "--verdict", verdict, "--out-dir", out, *extra)  # fmt: skip


def test_the_demo_exported_every_promoted_seed_with_the_verdict_digest(demo):
    out = demo / "models/ensemble"
    manifest = json.loads((out / f"{ENSEMBLE}.json").read_text())
    verdict = demo / "reports/gate/PROMOTE.json"
    corpus = demo / "tables/konvid_pairs.parquet"
    assert manifest["verdict"] == {"path": "PROMOTE.json", "verdict": "PROMOTE",
                                   "sha256": sha256(verdict)}  # fmt: skip
    assert manifest["corpus"] == {"path": corpus.name, "sha256": sha256(corpus)}
    assert [m["seed"] for m in manifest["members"]] == json.loads(verdict.read_text())["seeds"]
    assert manifest["member_outputs"] == [f"{ENSEMBLE}_seed{s}.onnx" for s in (0, 1, 2)]
    assert manifest["registry"] == "registry.json"
    assert "--verdict" in manifest["argv"]
    registry = json.loads((out / "registry.json").read_text())["models"]
    entries = {e["id"]: e for e in registry}
    table = pq.read_table(corpus)
    x = np.stack([table.column(f).to_numpy() for f in CANONICAL], axis=1).astype(np.float32)
    vmaf = table.column("vmaf").to_numpy()
    for member in manifest["members"]:
        onnx_path = out / member["onnx"]
        assert member["sha256"] == sha256(onnx_path) == entries[member["id"]]["sha256"]
        sidecar = json.loads((out / member["sidecar"]).read_text())
        assert (sidecar["kind"], sidecar["seed"], sidecar["features"]) == (
            "fr_regressor_v2",
            member["seed"],
            CANONICAL,
        )
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        (predicted,) = session.run(None, {"features": x})
        assert np.corrcoef(predicted.reshape(-1), vmaf)[0, 1] > 0.95
    record = load_sidecar(sidecar_of(out / f"{ENSEMBLE}.json"))
    block = record["run_provenance"]
    assert record["verdict_sha256"] == sha256(verdict)
    assert block["inputs"]["verdict"]["sha256"] == sha256(verdict)
    assert block["outcome"]["gates"]["promote_verdict"]["passed"] is True
    assert block["outputs"]["members"][1]["sha256"] == sha256(out / f"{ENSEMBLE}_seed1.onnx")
    seed_sidecars = sorted(out.glob("*_seed?.json"))
    for entry, path in zip(block["outputs"]["member_sidecars"], seed_sidecars, strict=True):
        assert entry["sha256"] == sha256(path), "the sidecar has each seed sidecar's final digest"


def test_each_seed_sidecar_carries_the_run_provenance_of_its_export(demo, tmp_path):
    verdict = demo / "reports/gate/PROMOTE.json"
    corpus = demo / "tables/konvid_pairs.parquet"
    out = tmp_path / "ensemble"
    registry = out / "registry.json"
    proc = export(demo, verdict, out, "--seeds", "0", "2", "--registry", registry)
    assert proc.returncode == 0, proc.stderr
    sidecars = [out / f"{ENSEMBLE}_seed{s}.json" for s in (0, 2)]
    first = [p.read_bytes() for p in sidecars]
    for path in sidecars:
        sidecar = json.loads(path.read_text())
        assert sidecar["ensemble_manifest"] == f"{ENSEMBLE}.json"
        assert sidecar["verdict"] == {"path": "PROMOTE.json", "verdict": "PROMOTE",
                                      "sha256": sha256(verdict)}  # fmt: skip
        block = sidecar["run_provenance"]
        assert block["entrypoint"]["path"] == "ai/scripts/export_ensemble_v2_seeds.py"
        assert block["inputs"]["corpus"]["sha256"] == sha256(corpus)
        assert block["inputs"]["verdict"]["sha256"] == sha256(verdict)
        assert block["argv"][block["argv"].index("--verdict") + 1] == str(verdict)
        assert block["args"]["seeds"] == [0, 2]
        # The run's own block, embedded when it ended: its outcome and the promotion gate too.
        assert block["outcome"]["status"] == "succeeded"
        assert block["outcome"]["gates"]["promote_verdict"] == {"passed": True,
                                                                "verdict": "PROMOTE"}  # fmt: skip
        assert sorted(block["outputs"]) == ["ensemble_manifest", "member_sidecars", "members",
                                            "registry"]  # fmt: skip
        members = block["outputs"]["members"]
        assert [m["sha256"] for m in members] == [  # every seed's target, hashed as shipped
            sha256(out / f"{ENSEMBLE}_seed{seed}.onnx") for seed in (0, 2)
        ]
        hosts = [*block["outputs"]["member_sidecars"], block["outputs"]["ensemble_manifest"]]
        assert [h["path"] for h in hosts[:2]] == [str(p) for p in sidecars]
        assert all(h["embedded_here"] for h in hosts), "no copy holds a host's digest"
        assert block["outputs"]["registry"]["sha256"] == sha256(registry)
        validate({"schema": "provenance.manifest/v1", "run_provenance": block})
        assert block == json.loads((out / f"{ENSEMBLE}.json").read_text())["run_provenance"]
    # Each seed's sidecar read alone: show and verify take the embedded copy.
    shown = run_python("-m", "provenance", "show", sidecars[1])
    assert shown.returncode == 0, shown.stderr
    assert "the block embedded in the artifact" in shown.stdout
    assert "gate promote_verdict: pass" in shown.stdout
    checked = run_python("-m", "provenance", "verify", "--json", "--outside-root", sidecars[1])
    checks = json.loads(checked.stdout)[0]["checks"]
    statuses = {(c["group"], c["name"]): c["status"] for c in checks}
    assert statuses[("input", "verdict")] == statuses[("output", "members[1]")] == "unchanged"
    assert statuses[("output", "member_sidecars[0]")] == "skipped", "an embedded host"
    assert "changed" not in statuses.values()
    assert "missing" not in statuses.values()
    # The same command writes the same sidecars again, over its own output.
    assert export(demo, verdict, out, "--seeds", "0", "2", "--registry", registry).returncode == 0
    assert [p.read_bytes() for p in sidecars] == first
    # Without --registry the block says so, and names no registry file.
    bare = tmp_path / "bare"
    assert export(demo, verdict, bare, "--seeds", "1").returncode == 0
    block = json.loads((bare / f"{ENSEMBLE}_seed1.json").read_text())["run_provenance"]
    assert block["args"]["registry"] is None
    assert block["outputs"]["registry"] is None


def test_a_hold_verdict_is_a_failed_promotion_exit_1_and_exports_nothing(demo, tmp_path):
    verdict = json.loads((demo / "reports/gate/PROMOTE.json").read_text())
    hold = tmp_path / "HOLD.json"
    hold.write_text(json.dumps({**verdict, "verdict": "HOLD"}))
    out = tmp_path / "ensemble"
    proc = export(demo, hold, out)
    assert proc.returncode == 1
    assert "is HOLD: nothing exported" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == [f"{ENSEMBLE}.json.manifest.json"]
    record = load_sidecar(out / f"{ENSEMBLE}.json.manifest.json")
    assert record["verdict_sha256"] == sha256(hold)
    outcome = record["run_provenance"]["outcome"]
    assert (outcome["exit_code"], outcome["gates"]["promote_verdict"]["passed"]) == (1, False)


def test_a_verdict_on_another_corpus_is_exit_2(demo, tmp_path):
    verdict = json.loads((demo / "reports/gate/PROMOTE.json").read_text())
    other = tmp_path / "PROMOTE.json"
    other.write_text(json.dumps({**verdict, "corpus_sha256": "f" * 64}))
    out = tmp_path / "ensemble"
    proc = export(demo, other, out)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "the verdict judged another corpus" in proc.stderr
    assert not (out / f"{ENSEMBLE}.json").exists()
    assert block_of(out / f"{ENSEMBLE}.json")["outcome"]["exit_code"] == 2


def inputs_of(node: dict) -> dict[str, dict]:
    return {item["name"]: item for item in node["inputs"]}


def test_the_ensemble_leads_back_to_the_sample_corpus(demo):
    proc = run_python("-m", "provenance", "lineage", "--json",
                      demo / f"models/ensemble/{ENSEMBLE}.json", "--search", demo)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    tree = json.loads(proc.stdout)
    exporter = tree.get("tree", tree)
    assert exporter["entrypoint"] == "ai/scripts/export_ensemble_v2_seeds.py"
    gate = inputs_of(exporter)["verdict"]["produced_by"]
    assert gate["entrypoint"] == "ai/scripts/validate_ensemble_seeds.py"
    seed = inputs_of(gate)["seed_reports[0]"]["produced_by"]
    assert seed["entrypoint"] == "ai/scripts/train_fr_regressor_v2_ensemble_loso.py"
    assert inputs_of(seed)["corpus"]["produced_by"]["entrypoint"] == (
        "ai/scripts/konvid_to_vmaf_pairs.py"
    )
    pairs = inputs_of(exporter)["corpus"]["produced_by"]  # shown in full where first met
    assert pairs["entrypoint"] == "ai/scripts/konvid_to_vmaf_pairs.py"
    cache = inputs_of(pairs)["cache"]
    assert cache["link"] == "part of"
    assert cache["produced_by"]["entrypoint"] == "ai/scripts/generate_sample_data.py"
