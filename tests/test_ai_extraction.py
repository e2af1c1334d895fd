"""Legacy extraction (ADR-0670) and per-clip features (ADR-0668), on the libvmaf cache."""

from __future__ import annotations

import csv
import json
import os
import shutil
import statistics
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ai.corpus.corpora import CORPUS_ROW_KEYS
from ai.features.libvmaf import FULL_FEATURES
from tests.conftest import FAKES, block_of, load_sidecar, run_script, sidecar_of

CHUG_FEATURES = ",".join(f for f in FULL_FEATURES if f != "ssimulacra2")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- bvi_dvc_to_corpus_jsonl -------------------------------------------------------------------


def bvi(sample: Path, out: Path, cache: Path | None = None):
    return run_script(
        "bvi_dvc_to_corpus_jsonl",
        "--cache-dir", cache or sample / "bvi_dvc/vmaf_cache",
        "--source-root", sample / "bvi_dvc/sources",
        "--output", out,
    )  # fmt: skip


def test_bvi_rows_carry_every_v3_key_measured_or_null(sample, tmp_path):
    out = tmp_path / "bvi.jsonl"
    proc = bvi(sample, out)
    assert proc.returncode == 0, proc.stderr
    rows = read_jsonl(out)
    cache_files = sorted((sample / "bvi_dvc/vmaf_cache").glob("*.json"))
    assert len(rows) == len(cache_files)
    for row, path in zip(rows, cache_files, strict=True):
        assert list(row) == list(CORPUS_ROW_KEYS)
        document = json.loads(path.read_text())
        pooled = document.get("pooled_metrics", {}).get("vmaf", {}).get("mean")
        expected = pooled if pooled is not None else document["frames"][-1]["metrics"]["vmaf"]
        assert row["vmaf_score"] == pytest.approx(expected)
        _, size, fps = path.stem.split("_")[:3]
        assert f"{row['width']}x{row['height']}" == size
        assert row["framerate"] == float(fps.removesuffix("fps"))
        assert row["crf"] == int(path.stem.rsplit("crf", 1)[1])
        adm2 = [f["metrics"]["integer_adm2"] for f in document["frames"]]
        assert row["adm2_mean"] == pytest.approx(statistics.fmean(adm2), abs=1e-6)
    fallbacks = [p for p in cache_files if "pooled_metrics" not in json.loads(p.read_text())]
    assert fallbacks, "the sample must exercise the last-frame fallback"
    manifest = load_sidecar(sidecar_of(out))
    assert manifest["row_count"] == len(rows)
    assert manifest["cache_file_count"] == len(cache_files)
    assert manifest["schema_version"] == 3
    assert manifest["row_keys"] == 54
    assert manifest["adapter_label"] == "bvi-dvc"
    assert "encode_size_bytes" in manifest["unavailable_keys"]
    assert all(row[key] is None for row in rows for key in manifest["unavailable_keys"])
    assert "vmaf_score" not in manifest["unavailable_keys"]
    assert manifest["failed"] == []


def test_bvi_rows_are_accepted_by_merge(sample, tmp_path):
    out = tmp_path / "bvi.jsonl"
    assert bvi(sample, out).returncode == 0
    merged = tmp_path / "merged.jsonl"
    proc = run_script("merge_corpora", sample / "grid/shard_a.jsonl", out, "--output", merged)
    assert proc.returncode == 0, proc.stderr


def test_bvi_failed_clips_exit_1_with_the_rest_written_and_named(sample, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(sample / "bvi_dvc/vmaf_cache", cache)
    good = len(list(cache.glob("*.json")))
    (cache / "Nowhere_1920x1080_30fps_libx265_medium_crf22.json").write_text(
        (cache / sorted(os.listdir(cache))[0]).read_text()
    )
    (cache / "Broken_1920x1080_30fps_libx265_medium_crf22.json").write_text('{"frames": []}')
    out = tmp_path / "bvi.jsonl"
    proc = bvi(sample, out, cache)
    assert proc.returncode == 1
    assert "no source Nowhere_1920x1080_30fps.*" in proc.stderr
    assert len(read_jsonl(out)) == good
    manifest = load_sidecar(sidecar_of(out))
    assert manifest["failed_count"] == 2
    assert sorted(Path(f["cache_file"]).name.split("_")[0] for f in manifest["failed"]) == [
        "Broken",
        "Nowhere",
    ]
    assert manifest["run_provenance"]["outcome"]["status"] == "failed"


# -- extract_full_features ---------------------------------------------------------------------


def netflix_copy(sample: Path, tmp_path: Path) -> Path:
    root = tmp_path / "netflix"
    shutil.copytree(sample / "netflix", root)
    return root


def extract(root: Path, out: Path, *extra: object):
    return run_script("extract_full_features", "--corpus-root", root,
                      "--cache-dir", root / "vmaf_cache", "--out", out, *extra)  # fmt: skip


def fake_vmaf(tmp_path: Path) -> Path:
    binary = tmp_path / "bin" / "vmaf"
    binary.parent.mkdir()
    binary.write_text(f"#!{sys.executable}\n" + (FAKES / "vmaf.py").read_text())
    binary.chmod(0o755)
    return binary


def test_full_features_from_the_cache(sample, tmp_path):
    out = tmp_path / "frames.parquet"
    proc = extract(sample / "netflix", out, "--vmaf-bin", tmp_path / "no-such-vmaf")
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(out)
    assert table.column_names == ["key", "frame_index", *FULL_FEATURES, "vmaf"]
    cache = sorted((sample / "netflix/vmaf_cache").glob("*.json"))
    frames = {p.stem: json.loads(p.read_text())["frames"] for p in cache}
    assert table.num_rows == sum(len(f) for f in frames.values())
    first = frames[table.column("key")[0].as_py()][0]["metrics"]
    assert table.column("psnr_y")[0].as_py() == first["psnr_y"]
    assert table.column("adm2")[0].as_py() == first["integer_adm2"]
    manifest = load_sidecar(sidecar_of(out))
    assert manifest["pair_count"] == len(cache) == len(list((sample / "netflix/dis").iterdir()))
    assert manifest["row_count"] == table.num_rows
    assert manifest["cache"] == {"hits": len(cache), "misses": 0}
    assert manifest["features"] == list(FULL_FEATURES)
    assert manifest["vmaf_bin"] == str(tmp_path / "no-such-vmaf")  # named, never needed
    assert manifest["corpus_root"].endswith("netflix")


def test_a_cache_miss_without_the_binary_fails_that_pair_clearly(sample, tmp_path):
    root = netflix_copy(sample, tmp_path)
    victim = sorted((root / "vmaf_cache").glob("*.json"))[0]
    victim.unlink()
    out = tmp_path / "frames.parquet"
    proc = extract(root, out, "--vmaf-bin", tmp_path / "no-such-vmaf")
    assert proc.returncode == 1
    assert "was not found or is not executable" in proc.stderr
    assert victim.stem not in set(pq.read_table(out).column("key").to_pylist())
    manifest = load_sidecar(sidecar_of(out))
    assert [f["pair"] for f in manifest["failed"]] == [victim.stem]
    assert manifest["cache"]["misses"] == 1
    assert not victim.exists()
    assert [p.name for p in (root / "vmaf_cache").iterdir() if p.name.startswith(".")] == []


def test_a_cache_miss_runs_the_vmaf_binary_and_fills_the_cache(sample, tmp_path):
    root = netflix_copy(sample, tmp_path)
    victim = sorted((root / "vmaf_cache").glob("*.json"))[0]
    victim.unlink()
    out = tmp_path / "frames.parquet"
    proc = extract(root, out, "--vmaf-bin", fake_vmaf(tmp_path))
    assert proc.returncode == 0, proc.stderr
    document = json.loads(victim.read_text())
    assert document["version"] == "fake"
    assert len(document["frames"]) == 4
    keys = pq.read_table(out).column("key").to_pylist()
    assert keys.count(victim.stem) == 4
    manifest = load_sidecar(sidecar_of(out))
    pairs = len(list((root / "dis").iterdir()))
    assert manifest["cache"] == {"hits": pairs - 1, "misses": 1}
    assert manifest["run_provenance"]["inputs"]["cache"]["changed_during_run"] is True


def test_a_failing_vmaf_binary_leaves_no_cache_entry(sample, tmp_path, monkeypatch):
    root = netflix_copy(sample, tmp_path)
    victim = sorted((root / "vmaf_cache").glob("*.json"))[0]
    victim.unlink()
    monkeypatch.setenv("FAKE_VMAF_EXIT", "3")
    out = tmp_path / "frames.parquet"
    proc = extract(root, out, "--vmaf-bin", fake_vmaf(tmp_path))
    assert proc.returncode == 1
    assert "vmaf exited with 3: libvmaf ERROR problem reading distorted" in proc.stderr
    assert sorted(p.name for p in (root / "vmaf_cache").iterdir()) == sorted(
        p.name for p in (sample / "netflix/vmaf_cache").iterdir() if p.name != victim.name
    )


def test_an_unknown_feature_is_a_usage_error(sample, tmp_path):
    out = tmp_path / "frames.parquet"
    proc = extract(sample / "netflix", out, "--features", "adm2,vmaf_neg")
    assert proc.returncode == 2
    assert "unknown feature(s) vmaf_neg" in proc.stderr
    assert not out.exists()
    assert not sidecar_of(out).exists()


# -- extract_k150k_features --------------------------------------------------------------------


def k150k(sample: Path, out: Path, cache: Path | None = None, scores: Path | None = None, *extra):
    return run_script(
        "extract_k150k_features",
        "--cache-dir", cache or sample / "k150k/vmaf_cache",
        "--scores", scores or sample / "k150k/scores.csv",
        "--out", out, *extra,
    )  # fmt: skip


def test_per_clip_table_matches_the_cache_and_the_scores(sample, tmp_path):
    out = tmp_path / "k150k.parquet"
    proc = k150k(sample, out)
    assert proc.returncode == 0, proc.stderr
    table = pq.read_table(out)
    head = ["clip_name", "mos", "width", "height", "fps", "is_hdr", "motion_fps_weight"]
    assert table.column_names == head + [f"{f}_{s}" for f in FULL_FEATURES for s in ("mean", "std")]
    with (sample / "k150k/scores.csv").open() as handle:
        scores = {r["clip_name"]: float(r["mos"]) for r in csv.DictReader(handle)}
    rows = table.to_pylist()
    assert {r["clip_name"]: r["mos"] for r in rows} == scores
    assert all(r["width"] is None and r["motion_fps_weight"] is None for r in rows)
    clip = rows[7]
    frames = json.loads((sample / f"k150k/vmaf_cache/{clip['clip_name']}.json").read_text())[
        "frames"
    ]
    motion2 = [f["metrics"]["integer_motion2"] for f in frames]
    assert clip["motion2_mean"] == pytest.approx(statistics.fmean(motion2))
    assert clip["motion2_std"] == pytest.approx(statistics.pstdev(motion2))
    manifest = load_sidecar(sidecar_of(out))
    assert manifest["features"] == list(FULL_FEATURES)
    assert manifest["columns"] == table.column_names
    assert manifest["row_count"] == len(scores) == manifest["clips_in_scores"]
    split = manifest["split"]
    assert split["train"] + split["val"] + split["test"] == len(scores)
    assert split["train"] > split["val"] > 0
    assert split["test"] > 0
    backend = {"workers": 4, "features": list(FULL_FEATURES), "clips_read": len(scores),
               "restarts": 0}  # fmt: skip
    assert manifest["backends"] == {"libvmaf-cache": backend}
    assert manifest["resumed"] is None
    split_of = manifest["extractor_split"]
    assert sorted(split_of) == sorted(FULL_FEATURES)
    assert split_of["adm2"] == {"extractor": "adm", "backend": "libvmaf-cache",
                                "metric_keys": {"integer_adm2": len(scores)}}  # fmt: skip
    assert split_of["psnr_y"]["extractor"] == "psnr"
    assert split_of["ciede2000"] == {"extractor": "ciede", "backend": "libvmaf-cache",
                                     "metric_keys": {"ciede2000": len(scores)}}  # fmt: skip
    assert not (tmp_path / "k150k.parquet.done").exists()
    assert manifest["run_provenance"]["inputs"]["scores"]["path"].endswith("k150k/scores.csv")


def test_the_table_does_not_depend_on_the_worker_count(sample, tmp_path):
    one, eight = tmp_path / "one.parquet", tmp_path / "eight.parquet"
    assert k150k(sample, one, None, None, "--workers", "1").returncode == 0
    assert k150k(sample, eight, None, None, "--workers", "8").returncode == 0
    assert one.read_bytes() == eight.read_bytes()


def test_failed_clips_exit_1_and_the_table_and_manifest_name_them(sample, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(sample / "k150k/vmaf_cache", cache)
    names = sorted(p.name.removesuffix(".json") for p in cache.iterdir())
    (cache / f"{names[3]}.json").unlink()
    (cache / f"{names[5]}.json").write_text('{"frames": [{"metrics": {"integer_adm2": "x"}}]}')
    out = tmp_path / "k150k.parquet"
    proc = k150k(sample, out, cache)
    assert proc.returncode == 1
    assert f"{names[3]}.json: not in the libvmaf cache" in proc.stderr
    assert "integer_adm2 is not a number" in proc.stderr
    clips = pq.read_table(out).column("clip_name").to_pylist()
    assert len(clips) == len(names) - 2
    assert names[3] not in clips
    assert names[5] not in clips
    manifest = load_sidecar(sidecar_of(out))
    assert [f["clip_name"] for f in manifest["failed"]] == [names[3], names[5]]
    assert manifest["failed_count"] == 2
    assert manifest["row_count"] == len(names) - 2
    block = manifest["run_provenance"]
    assert (block["outcome"]["status"], block["outcome"]["exit_code"]) == ("failed", 1)
    assert block["outputs"]["table"]["written_by_run"] is True


def test_a_feature_the_cache_lacks_fails_the_clip(sample, tmp_path):
    """CHUG's cache has no ssimulacra2: asking for it fails every clip, honestly."""
    out = tmp_path / "chug.parquet"
    proc = k150k(sample, out, sample / "chug/vmaf_cache", sample / "chug/scores.csv",
                 "--mos-scale", "0-100")  # fmt: skip
    assert proc.returncode == 1
    assert "has no ssimulacra2" in proc.stderr
    assert pq.read_table(out).num_rows == 0
    proc = k150k(sample, out, sample / "chug/vmaf_cache", sample / "chug/scores.csv",
                 "--mos-scale", "0-100", "--features", CHUG_FEATURES)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "ssimulacra2_mean" not in pq.read_table(out).column_names


def test_a_malformed_scores_csv_writes_no_table(sample, tmp_path):
    scores = tmp_path / "scores.csv"
    scores.write_text("clip_name,mos\nk150k_00000.mp4,4.1\nk150k_00001.mp4,7.5\n")
    out = tmp_path / "k150k.parquet"
    proc = k150k(sample, out, None, scores)
    assert proc.returncode == 2
    assert f"{scores}:3: mos 7.5 is outside the 1-5 scale" in proc.stderr
    assert not out.exists()
    assert block_of(out)["outputs"]["table"]["exists"] is False


def test_scores_from_the_aggregated_corpus_give_the_same_table(demo, sample, tmp_path):
    """The demo takes K150K's scores from aggregate_corpora's output: the same MOS as the CSV."""
    from_csv = tmp_path / "csv.parquet"
    assert k150k(sample, from_csv).returncode == 0
    from_corpus = tmp_path / "jsonl.parquet"
    proc = k150k(sample, from_corpus, None, demo / "corpora/mos_aggregated.jsonl",
                 "--corpus", "konvid-150k")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(from_corpus).equals(pq.read_table(from_csv))
    proc = k150k(sample, tmp_path / "none.parquet", None, demo / "corpora/mos_aggregated.jsonl",
                 "--corpus", "no-such-corpus")  # fmt: skip
    assert proc.returncode == 2
    assert "no rows of corpus 'no-such-corpus'" in proc.stderr


def test_a_cache_file_that_cannot_be_read_is_retried_then_failed(sample, tmp_path):
    """/proc/self/mem reads as an I/O error: the worker restarts once, then names the clip."""
    cache = tmp_path / "cache"
    shutil.copytree(sample / "k150k/vmaf_cache", cache)
    victim = sorted(cache.iterdir())[4]
    victim.unlink()
    victim.symlink_to("/proc/self/mem")
    out = tmp_path / "k150k.parquet"
    proc = k150k(sample, out, cache, None, "--retries", "2")
    assert proc.returncode == 1
    assert "cannot be read: Input/output error" in proc.stderr
    manifest = load_sidecar(sidecar_of(out))
    assert manifest["restarts"] == 2
    assert [f["clip_name"] for f in manifest["failed"]] == [victim.name.removesuffix(".json")]
    untouched = tmp_path / "again.parquet"
    assert k150k(sample, untouched).returncode == 0
    assert load_sidecar(sidecar_of(untouched))["restarts"] == 0
