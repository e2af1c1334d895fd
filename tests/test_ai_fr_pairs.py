"""KoNViD-1k synthetic-distortion FR pairs (ADR-0670): the pair parquet and its manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import block_of, load_sidecar, run_script, sidecar_of


def pairs(sample: Path, out: Path, *extra: object, cache: Path | None = None):
    return run_script(
        "konvid_to_vmaf_pairs",
        "--konvid-root", sample / "konvid",
        "--cache-dir", cache or sample / "konvid/vmaf_cache",
        "--vmaf-model", sample / "konvid/vmaf_v0.6.1.json",
        "--out", out, *extra,
    )  # fmt: skip


def test_every_clip_becomes_one_pair_of_per_frame_rows(sample, tmp_path):
    out = tmp_path / "pairs.parquet"
    proc = pairs(sample, out, "--crf", "35", "--features", "adm2,vif_scale0,motion2")
    assert proc.returncode == 0, proc.stderr
    clips = sorted(p.stem for p in (sample / "konvid/videos").glob("*.mp4"))
    documents = {c: json.loads((sample / f"konvid/vmaf_cache/{c}__crf35.json").read_text())
                 for c in clips}  # fmt: skip
    table = pq.read_table(out)
    assert table.column_names == ["key", "frame_index", "adm2", "vif_scale0", "motion2", "vmaf"]
    expected_keys = [f"{c}__crf35" for c in clips for _ in documents[c]["frames"]]
    assert table.column("key").to_pylist() == expected_keys
    adm2 = [f["metrics"]["integer_adm2"] for c in clips for f in documents[c]["frames"]]
    assert table.column("adm2").to_pylist() == pytest.approx(adm2)
    manifest = load_sidecar(sidecar_of(out))
    assert manifest["konvid_root"] == str(sample / "konvid")  # outside the root: absolute
    assert manifest["vmaf_model"].endswith("konvid/vmaf_v0.6.1.json")
    assert (manifest["cache_policy"], manifest["crf"]) == ("reuse", 35)
    assert manifest["features"] == ["adm2", "vif_scale0", "motion2"]
    assert manifest["selected_clips"] == manifest["processed_clips"] == len(clips)
    assert (manifest["failed_clips"], manifest["failed_clip_ids"]) == (0, [])
    assert manifest["frame_count"] == sum(len(d["frames"]) for d in documents.values())
    assert manifest["cache"] == {"hits": len(clips), "misses": 0}
    block = manifest["run_provenance"]
    assert block["inputs"]["vmaf_model"]["exists"] is True
    assert block["inputs"]["cache"]["kind"] == "directory"


def test_a_clip_missing_from_a_read_only_cache_fails_and_is_named(sample, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(sample / "konvid/vmaf_cache", cache)
    (cache / "konvid_0003__crf35.json").unlink()
    out = tmp_path / "pairs.parquet"
    proc = pairs(sample, out, "--cache-policy", "read-only", "--max-clips", "5", cache=cache)
    assert proc.returncode == 1
    assert "konvid_0003__crf35: not in the libvmaf cache" in proc.stderr
    keys = set(pq.read_table(out).column("key").to_pylist())
    assert keys == {f"konvid_{i:04d}__crf35" for i in (0, 1, 2, 4)}
    manifest = load_sidecar(sidecar_of(out))
    assert (manifest["selected_clips"], manifest["processed_clips"]) == (5, 4)
    assert (manifest["failed_clips"], manifest["failed_clip_ids"]) == (1, ["konvid_0003"])
    assert manifest["cache"] == {"hits": 4, "misses": 1}
    outcome = manifest["run_provenance"]["outcome"]
    assert (outcome["status"], outcome["exit_code"]) == ("failed", 1)


def test_a_miss_without_the_vmaf_binary_fails_that_clip(sample, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(sample / "konvid/vmaf_cache", cache)
    (cache / "konvid_0000__crf35.json").unlink()
    out = tmp_path / "pairs.parquet"
    proc = pairs(sample, out, "--max-clips", "2", "--vmaf-bin", str(tmp_path / "no-vmaf"),
                 cache=cache)  # fmt: skip
    assert proc.returncode == 1
    assert "was not found or is not executable" in proc.stderr
    assert load_sidecar(sidecar_of(out))["failed_clip_ids"] == ["konvid_0000"]


def test_a_missing_vmaf_model_is_exit_2_and_writes_no_table(sample, tmp_path):
    out = tmp_path / "pairs.parquet"
    gone = tmp_path / "gone.json"
    proc = run_script("konvid_to_vmaf_pairs", "--konvid-root", sample / "konvid",
                      "--cache-dir", sample / "konvid/vmaf_cache", "--vmaf-model", gone,
                      "--out", out)  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"konvid_to_vmaf_pairs.py: error: {gone}: no such file"
    assert not out.exists()
    assert block_of(out)["outputs"]["table"] == {"path": str(out), "exists": False}
