"""The CHUG extractor's preflight (ADR-0661): the content split map and the HDR audit."""

from __future__ import annotations

import hashlib
import json
import shutil
import statistics
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ai.features.libvmaf import FULL_FEATURES
from tests.conftest import block_of, load_sidecar, records_and, run_script, sidecar_of

CHUG_FEATURES = ",".join(f for f in FULL_FEATURES if f != "ssimulacra2")
CHECKS = ["transfer_function", "color_primaries", "bit_depth", "peak_luminance", "in_cache"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def split_of(seed: int, clip: str) -> str:
    content = Path(clip).stem.split("__")[0]
    digest = hashlib.blake2s(f"{seed}\0{content}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2.0**64
    return "train" if fraction < 0.8 else "val" if fraction < 0.9 else "test"


def clips_of(jsonl: Path) -> list[str]:
    return [json.loads(line)["src"].rsplit("/", 1)[-1] for line in jsonl.read_text().splitlines()]


def test_the_split_map_is_the_content_hash_split_with_its_digests(demo):
    source = demo / "sample/chug/metadata.jsonl"
    split_path = demo / "tables/chug_split.json"
    split = json.loads(split_path.read_text())
    clips = clips_of(source)
    expected = {clip: split_of(0, clip) for clip in sorted(clips)}
    assert split["clips"] == expected
    assert list(split["clips"]) == sorted(clips)
    assert (split["source"], split["source_sha256"]) == (source.name, sha256(source))
    assert split["parameters"]["seed"] == 0
    assert split["parameters"]["bounds"] == {
        "train": [0.0, 0.8],
        "val": [0.8, 0.9],
        "test": [0.9, 1.0],
    }
    for name in ("train", "val", "test"):
        members = sorted(c for c, s in expected.items() if s == name)
        digest = hashlib.sha256("".join(f"{c}\n" for c in members).encode()).hexdigest()
        assert split["splits"][name] == {
            "clips": len(members),
            "contents": len({c.split("__")[0] for c in members}),
            "ids_sha256": digest,
        }
    assert split["splits"]["test"]["clips"] > 0  # the sample exercises every split
    manifest = load_sidecar(sidecar_of(split_path))
    assert manifest["per_split"] == split["splits"]
    assert manifest["split"] == split["parameters"]
    assert (manifest["clips"], manifest["vmaf_bin"]) == (len(clips), "vmaf")
    assert manifest["clip_dir"] is None
    assert manifest["cache_root"].endswith("sample/chug/vmaf_cache")
    block = manifest["run_provenance"]
    assert block["inputs"]["chug_jsonl"]["sha256"] == sha256(source)
    assert block["inputs"]["cache"]["kind"] == "directory"
    assert block["outputs"]["split"]["sha256"] == sha256(split_path)
    audit_path = demo / "reports/audits/chug_hdr_audit.json"
    assert block["outputs"]["audit"]["sha256"] == sha256(audit_path)
    audit = json.loads(audit_path.read_text())
    assert audit["run_provenance"]["outputs"]["audit"]["embedded_here"] is True
    assert list(audit["checks"]) == CHECKS
    assert all(
        c["verdict"] == "pass" and c["checked"] == len(clips) for c in audit["checks"].values()
    )
    assert audit["verdict"] == "pass"
    assert audit["run_provenance"]["outcome"]["gates"]["hdr_preflight"]["passed"] is True


def preflight(tmp_path: Path, jsonl: Path, cache: Path, *extra: object):
    return run_script("chug_extract_features", "--chug-jsonl", jsonl, "--cache-dir", cache,
                      "--split-out", tmp_path / "split.json", "--audit-out",
                      tmp_path / "audit.json", "--out", tmp_path / "chug.parquet",
                      "--features", CHUG_FEATURES, *extra)  # fmt: skip


def test_an_sdr_clip_fails_the_audit_exit_1_with_both_files_written(sample, tmp_path):
    rows = [json.loads(line) for line in (sample / "chug/metadata.jsonl").read_text().splitlines()]
    rows[3] = {**rows[3], "color_transfer": "bt709", "color_primaries": "bt709"}
    rows[5] = {**rows[5], "pix_fmt": "yuv420p"}
    del rows[6]["max_luminance"]
    jsonl = tmp_path / "chug.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = preflight(tmp_path, jsonl, sample / "chug/vmaf_cache", "--split-seed", "3")
    assert proc.returncode == 1, proc.stderr
    assert "HDR check transfer_function failed for 1 clip(s)" in proc.stderr
    audit = json.loads((tmp_path / "audit.json").read_text())
    name = {i: rows[i]["src"].rsplit("/", 1)[-1] for i in (3, 5, 6)}
    checks = audit["checks"]
    assert checks["transfer_function"]["failing"] == [{"clip": name[3], "value": "bt709"}]
    assert checks["color_primaries"]["failing"] == [{"clip": name[3], "value": "bt709"}]
    assert checks["bit_depth"]["failing"] == [{"clip": name[5], "value": "yuv420p"}]
    assert checks["peak_luminance"]["failing"] == [{"clip": name[6], "value": None}]
    assert checks["in_cache"]["verdict"] == "pass"
    assert audit["failing_checks"] == CHECKS[:4]
    assert audit["verdict"] == "fail"
    split = json.loads((tmp_path / "split.json").read_text())
    assert split["clips"] == {c: split_of(3, c) for c in sorted(clips_of(jsonl))}
    block = block_of(tmp_path / "split.json")
    gate = block["outcome"]["gates"]["hdr_preflight"]
    assert (gate["passed"], gate["failing_checks"]) == (False, CHECKS[:4])
    assert block["outcome"]["exit_code"] == 1


@pytest.mark.parametrize("row", ['{"pix_fmt": "yuv420p10le"}', "not json"])
def test_an_unreadable_row_is_exit_2_and_writes_neither_file(sample, tmp_path, row):
    jsonl = tmp_path / "chug.jsonl"
    jsonl.write_text((sample / "chug/metadata.jsonl").read_text() + row + "\n")
    proc = preflight(tmp_path, jsonl, sample / "chug/vmaf_cache")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"chug_extract_features.py: error: {jsonl}:65:")
    assert records_and(tmp_path) == ["chug.jsonl", "split.json.manifest.json"]


def test_the_feature_table_is_the_cache_s_statistics_with_the_rows_clip_columns(demo):
    source = demo / "sample/chug/metadata.jsonl"
    table_path = demo / "tables/chug_features.parquet"
    table = pq.read_table(table_path)
    features = CHUG_FEATURES.split(",")
    head = ["clip_name", "mos", "width", "height", "fps", "is_hdr", "motion_fps_weight"]
    assert table.column_names == head + [f"{f}_{s}" for f in features for s in ("mean", "std")]
    rows = table.to_pylist()
    assert [r["clip_name"] for r in rows] == sorted(clips_of(source))
    clip = rows[9]
    meta = next(
        json.loads(line)
        for line in source.read_text().splitlines()
        if json.loads(line)["src"].endswith("/" + clip["clip_name"])
    )
    assert (clip["width"], clip["height"], clip["fps"]) == (
        meta["width"], meta["height"], meta["framerate"]
    )  # fmt: skip
    assert clip["is_hdr"] is True
    fps = meta["framerate"]
    assert clip["motion_fps_weight"] == (1.0 if 24 <= fps <= 32 else min(4.0, max(0.25, 30 / fps)))
    assert clip["mos"] is None  # the sample's rows carry no MOS
    document = json.loads((demo / f"sample/chug/vmaf_cache/{clip['clip_name']}.json").read_text())
    cambi = [f["metrics"]["cambi"] for f in document["frames"]]
    assert clip["cambi_mean"] == pytest.approx(statistics.fmean(cambi))
    assert clip["cambi_std"] == pytest.approx(statistics.pstdev(cambi))
    manifest = load_sidecar(sidecar_of(demo / "tables/chug_split.json"))
    assert (manifest["row_count"], manifest["failed"]) == (len(rows), [])
    assert manifest["columns"] == table.column_names
    assert manifest["backends"]["libvmaf-cache"]["clips_read"] == len(rows)
    assert manifest["extractor_split"]["cambi"] == {
        "extractor": "cambi", "backend": "libvmaf-cache", "metric_keys": {"cambi": len(rows)}
    }  # fmt: skip
    block = manifest["run_provenance"]
    assert block["outputs"]["table"]["sha256"] == sha256(table_path)
    assert sorted(block["inputs"]) == ["cache", "chug_jsonl", "clips"]


def test_a_clip_missing_from_the_cache_is_left_out_named_and_exit_1(sample, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(sample / "chug/vmaf_cache", cache)
    victim = sorted(cache.iterdir())[2]
    victim.unlink()
    clip = victim.name.removesuffix(".json")
    proc = preflight(tmp_path, sample / "chug/metadata.jsonl", cache)
    assert proc.returncode == 1
    assert "not in the libvmaf cache" in proc.stderr
    names = pq.read_table(tmp_path / "chug.parquet").column("clip_name").to_pylist()
    assert clip not in names
    assert len(names) == len(clips_of(sample / "chug/metadata.jsonl")) - 1
    manifest = load_sidecar(sidecar_of(tmp_path / "split.json"))
    assert [f["clip_name"] for f in manifest["failed"]] == [clip]
    assert manifest["failed_count"] == 1
    audit = json.loads((tmp_path / "audit.json").read_text())
    assert audit["checks"]["in_cache"]["failing"] == [{"clip": clip, "value": False}]


def test_a_row_s_mos_fills_the_table_and_an_off_scale_one_is_exit_2(sample, tmp_path):
    rows = [json.loads(line) for line in (sample / "chug/metadata.jsonl").read_text().splitlines()]
    rows[0]["mos"] = 61.5
    jsonl = tmp_path / "chug.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = preflight(tmp_path, jsonl, sample / "chug/vmaf_cache")
    assert proc.returncode == 0, proc.stderr
    by_clip = {
        r["clip_name"]: r["mos"] for r in pq.read_table(tmp_path / "chug.parquet").to_pylist()
    }
    assert by_clip[rows[0]["src"].rsplit("/", 1)[-1]] == 61.5
    rows[0]["mos"] = 4.2e2
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "chug.parquet").unlink()
    proc = preflight(tmp_path, jsonl, sample / "chug/vmaf_cache")
    assert proc.returncode == 2
    assert "mos must be a number on the 0-100 scale, got 420.0" in proc.stderr
    assert not (tmp_path / "chug.parquet").exists()
