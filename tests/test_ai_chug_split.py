"""The CHUG extractor's preflight (ADR-0661): the content split map and the HDR audit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import block_of, load_sidecar, run_script, sidecar_of

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
                      tmp_path / "audit.json", *extra)  # fmt: skip


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["chug.jsonl", "split.json.manifest.json"]
