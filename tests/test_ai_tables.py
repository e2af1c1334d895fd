"""Derived tables (ADR-0668): enriching with clip metadata, combining corpora."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ai.features.tables import motion_fps_weight, per_clip_schema
from tests.conftest import block_of, load_sidecar, run_script, sidecar_of


def metadata_by_clip(path: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {os.path.basename(r["src"]): r for r in rows}


def enrich(table: Path, metadata: Path, out: Path, *extra: object):
    return run_script("enrich_k150k_parquet_metadata", "--table", table, "--metadata", metadata,
                      "--out", out, *extra)  # fmt: skip


def test_enrich_fills_clip_columns_from_matching_metadata(demo, sample, tmp_path):
    metadata = metadata_by_clip(sample / "k150k/metadata.jsonl")
    out = tmp_path / "enriched.parquet"
    proc = enrich(demo / "tables/k150k.parquet", sample / "k150k/metadata.jsonl", out)
    assert proc.returncode == 0, proc.stderr
    rows = pq.read_table(out).to_pylist()
    matched = [r for r in rows if r["clip_name"] in metadata]
    unmatched = [r["clip_name"] for r in rows if r["clip_name"] not in metadata]
    assert unmatched, "the sample's K150K metadata lags its scores for a few clips"
    for row in matched:
        meta = metadata[row["clip_name"]]
        assert (row["width"], row["height"], row["fps"]) == (
            meta["width"],
            meta["height"],
            meta["framerate"],
        )
        assert row["is_hdr"] is (meta["color_transfer"] == "smpte2084")
        assert row["motion_fps_weight"] == motion_fps_weight(meta["framerate"])
    assert all(r["width"] is None for r in rows if r["clip_name"] in unmatched)
    manifest = load_sidecar(sidecar_of(out))
    assert manifest["counters"] == {
        "rows": len(rows),
        "metadata_rows": len(metadata),
        "matched_rows": len(matched),
        "missing_rows": len(unmatched),
        "updated_cells": 5 * len(matched),
    }
    assert manifest["unmatched_clips"] == unmatched
    assert manifest["overwrite"] is False
    assert manifest["policy"] == "fill null cells only"
    assert {"src", "width", "framerate", "color_transfer"} <= set(manifest["metadata_keys"])
    assert manifest["run_provenance"]["inputs"]["table"]["path"].endswith("tables/k150k.parquet")


def test_enrich_leaves_set_cells_alone_unless_asked_to_overwrite(demo, sample, tmp_path):
    rows = [json.loads(line) for line in (sample / "k150k/metadata.jsonl").read_text().splitlines()]
    rows[0]["width"] += 2
    changed = tmp_path / "metadata.jsonl"
    changed.write_text("".join(json.dumps(r) + "\n" for r in rows))
    enriched = demo / "tables/k150k_enriched.parquet"
    kept, replaced = tmp_path / "kept.parquet", tmp_path / "replaced.parquet"
    assert enrich(enriched, changed, kept).returncode == 0
    assert enrich(enriched, changed, replaced, "--overwrite").returncode == 0
    clip = os.path.basename(rows[0]["src"])
    widths = {
        name: dict(zip(*pq.read_table(p, columns=["clip_name", "width"]).to_pydict().values(),
                       strict=True))[clip]
        for name, p in (("kept", kept), ("replaced", replaced))
    }  # fmt: skip
    assert widths == {"kept": rows[0]["width"] - 2, "replaced": rows[0]["width"]}
    assert load_sidecar(sidecar_of(kept))["counters"]["updated_cells"] == 0
    replaced_manifest = load_sidecar(sidecar_of(replaced))
    assert replaced_manifest["counters"]["updated_cells"] == 1
    assert replaced_manifest["updated_by_column"] == {"width": 1}
    assert replaced_manifest["policy"] == "overwrite every matched cell"


def test_enrich_refuses_to_write_over_its_input(demo, sample, tmp_path):
    table = tmp_path / "k150k.parquet"
    table.write_bytes((demo / "tables/k150k.parquet").read_bytes())
    before = table.read_bytes()
    proc = enrich(table, sample / "k150k/metadata.jsonl", table)
    assert proc.returncode == 2
    assert "--out must differ from --table" in proc.stderr
    assert table.read_bytes() == before


def test_enrich_names_the_line_of_a_bad_metadata_row(demo, tmp_path):
    metadata = tmp_path / "metadata.jsonl"
    metadata.write_text(
        json.dumps({"src": "a/k150k_00000.mp4", "framerate": 30}) + "\n"
        + json.dumps({"src": "a/k150k_00001.mp4", "framerate": "fast"}) + "\n"
    )  # fmt: skip
    out = tmp_path / "out.parquet"
    proc = enrich(demo / "tables/k150k.parquet", metadata, out)
    assert proc.returncode == 2
    assert f"{metadata}:2: framerate must be a positive number, got 'fast'" in proc.stderr
    assert not out.exists()
    assert block_of(out)["outcome"]["status"] == "failed"


def test_combine_takes_the_union_and_says_what_it_filled(demo, tmp_path):
    k150k, chug = demo / "tables/k150k_enriched.parquet", demo / "tables/chug_enriched.parquet"
    out = tmp_path / "combined.parquet"
    proc = run_script("combine_full_feature_parquets", f"konvid-150k={k150k}", f"chug={chug}",
                      "--out", out)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    combined = pq.read_table(out)
    k_columns, c_columns = pq.read_schema(k150k).names, pq.read_schema(chug).names
    assert set(combined.column_names) == {*k_columns, *c_columns, "corpus"}
    assert combined.column_names[:3] == ["clip_name", "corpus", "mos"]
    rows = {
        "konvid-150k": pq.read_metadata(k150k).num_rows,
        "chug": pq.read_metadata(chug).num_rows,
    }
    manifest = load_sidecar(sidecar_of(out))
    assert manifest["corpus_distribution"] == dict(sorted(rows.items()))
    assert manifest["row_count"] == combined.num_rows == sum(rows.values())
    assert manifest["output_columns"] == combined.column_names
    filled = {entry["label"]: entry["filled"] for entry in manifest["inputs"]}
    assert filled["chug"] == [c for c in combined.column_names if c not in [*c_columns, "corpus"]]
    assert filled["chug"] == ["ssimulacra2_mean", "ssimulacra2_std"]
    assert filled["konvid-150k"] == []
    chug_rows = combined.filter(pa.compute.equal(combined.column("corpus"), "chug"))
    assert chug_rows.column("ssimulacra2_mean").null_count == chug_rows.num_rows
    assert [e["rows"] for e in manifest["inputs"]] == [rows["konvid-150k"], rows["chug"]]


def test_combine_maps_another_clip_key_name(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(pa.table({"clip_name": ["x.mp4"], "adm2_mean": [0.9]}), a)
    pq.write_table(pa.table({"dis_name": ["y.yuv"], "vif_scale0_mean": [0.5]}), b)
    out = tmp_path / "c.parquet"
    proc = run_script("combine_full_feature_parquets", f"one={a}", f"two={b}", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert pq.read_table(out).to_pylist() == [
        {"clip_name": "x.mp4", "corpus": "one", "adm2_mean": 0.9, "vif_scale0_mean": None},
        {"clip_name": "y.yuv", "corpus": "two", "adm2_mean": None, "vif_scale0_mean": 0.5},
    ]
    inputs = load_sidecar(sidecar_of(out))["inputs"]
    assert [(e["key_column"], e["filled"]) for e in inputs] == [
        ("clip_name", ["vif_scale0_mean"]),
        ("dis_name", ["adm2_mean"]),
    ]


def test_combine_refuses_a_label_given_twice_and_a_table_without_a_key(tmp_path):
    a = tmp_path / "a.parquet"
    pq.write_table(pa.table({"clip_name": ["x.mp4"]}), a)
    out = tmp_path / "c.parquet"
    proc = run_script("combine_full_feature_parquets", f"one={a}", f"one={a}", "--out", out)
    assert proc.returncode == 2
    assert "each input needs its own label" in proc.stderr
    keyless = tmp_path / "keyless.parquet"
    pq.write_table(pa.table({"adm2_mean": [0.9]}), keyless)
    proc = run_script("combine_full_feature_parquets", f"one={a}", f"two={keyless}", "--out", out)
    assert proc.returncode == 2
    assert f"{keyless}: no clip key column" in proc.stderr
    assert not out.exists()


def test_enrich_takes_the_forks_overwrite_metadata_flag_and_the_short_one_alike(tmp_path):
    table = tmp_path / "k150k.parquet"
    head = {"mos": 3.0, "width": 640, "height": 360, "fps": 30.0, "is_hdr": False,
            "motion_fps_weight": 1.0}  # fmt: skip
    rows = [{"clip_name": "a.mp4", **head}, {"clip_name": "b.mp4", **head, "width": None}]
    pq.write_table(pa.Table.from_pylist(rows, schema=per_clip_schema(["adm2"])), table)
    metadata = tmp_path / "metadata.jsonl"
    metadata.write_text(
        "".join(json.dumps({"src": f"clips/{c}", "width": 1920, "height": 1080, "framerate": 60})
                + "\n" for c in ("a.mp4", "b.mp4"))
    )  # fmt: skip
    outs = {flag: tmp_path / f"{flag.strip('-')}.parquet"
            for flag in ("", "--overwrite-metadata", "--overwrite")}  # fmt: skip
    for flag, out in outs.items():
        proc = enrich(table, metadata, out, *([flag] if flag else []))
        assert proc.returncode == 0, proc.stderr
    widths = {f: pq.read_table(o).column("width").to_pylist() for f, o in outs.items()}
    assert widths == {"": [640, 1920], "--overwrite-metadata": [1920, 1920],
                      "--overwrite": [1920, 1920]}  # fmt: skip
    assert outs["--overwrite"].read_bytes() == outs["--overwrite-metadata"].read_bytes()
    for flag in ("--overwrite-metadata", "--overwrite"):
        record = load_sidecar(sidecar_of(outs[flag]))
        assert (record["overwrite"], record["policy"]) == (True, "overwrite every matched cell")
        assert record["run_provenance"]["args"]["overwrite"] is True
        assert flag in record["run_provenance"]["argv"]
