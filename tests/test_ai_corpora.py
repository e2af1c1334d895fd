"""Corpus JSONL boundary (ADR-0669): aggregate_corpora and merge_corpora, run as users run them."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from ai.corpus.corpora import CORPUS_ROW_KEYS, NATURAL_KEY, SCALES
from tests.conftest import block_of, load_sidecar, run_script, sidecar_of

SHARDS = ("konvid-1k", "lsvq", "waterloo-ivc-4k", "chug", "ugc-misc")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def shard_paths(sample: Path) -> list[Path]:
    return [sample / "mos" / f"{name}.jsonl" for name in SHARDS]


def aggregate(sample: Path, out: Path, *extra: object, inputs: list[Path] | None = None):
    inputs = shard_paths(sample) if inputs is None else inputs
    override = f"{sample / 'mos' / 'ugc-misc.jsonl'}=youtube-ugc"
    return run_script(
        "aggregate_corpora", *inputs, "--corpus-source-override", override, "--output", out, *extra
    )


def expected_counters(sample: Path) -> dict[str, int]:
    """The aggregate counters, worked out from the shards by a route of the test's own."""
    rows = []
    for path in shard_paths(sample):
        for row in read_jsonl(path):
            rows.append(
                {**row, "corpus": "youtube-ugc" if path.stem == "ugc-misc" else row["corpus"]}
            )
    known = [r for r in rows if r["corpus"] in SCALES]
    ranges = {"waterloo-ivc-4k": (0, 100)}

    def on_scale(row):
        low, high = ranges.get(row["corpus"], (1, 5))
        return low - 0.05 <= row["mos"] <= high + 0.05

    placed = [r for r in known if on_scale(r)]
    by_sha = Counter(r["src_sha256"] for r in placed)
    corpora_of = {}
    for r in placed:
        corpora_of.setdefault(r["src_sha256"], []).append(r["corpus"])
    same = sum(n - len(set(c)) for c in corpora_of.values() for n in [len(c)])
    cross = sum(len(set(c)) - 1 for c in corpora_of.values())
    return {
        "rows_in": len(rows),
        "rows_out": len(by_sha),
        "dropped_unknown_corpus": len(rows) - len(known),
        "dropped_bad_scale": len(known) - len(placed),
        "cross_corpus_dedups": cross,
        "same_corpus_dedups": same,
        "inputs_seen": len(SHARDS),
        "inputs_missing": 0,
    }


def test_aggregate_writes_sorted_unified_rows_and_its_manifest(sample, tmp_path):
    out = tmp_path / "aggregated.jsonl"
    proc = aggregate(sample, out)
    assert proc.returncode == 0, proc.stderr
    rows = read_jsonl(out)
    assert [(r["corpus_source"], r["src_sha256"]) for r in rows] == sorted(
        (r["corpus_source"], r["src_sha256"]) for r in rows
    )
    for row in rows:
        scale = SCALES[row["corpus_source"]]
        assert row["mos"] == pytest.approx(scale.slope * row["mos_native"] + scale.intercept)
        assert row["mos_native_scale"] == scale.name
        assert -1.5 <= row["mos"] <= 101.5
    manifest = load_sidecar(sidecar_of(out))
    assert manifest["counters"] == expected_counters(sample)
    assert manifest["scale_conversions"]["konvid-1k"]["slope"] == 25.0
    assert manifest["scale_conversions"]["konvid-1k"]["intercept"] == -25.0
    assert manifest["scale_conversions"]["waterloo-ivc-4k"]["slope"] == 1.0
    assert "chug" not in manifest["scale_conversions"]  # never used: dropped as unknown
    assert manifest["unknown_corpora"] == {"chug": len(read_jsonl(sample / "mos/chug.jsonl"))}
    [(path, label)] = manifest["corpus_source_overrides"].items()
    assert path.endswith("mos/ugc-misc.jsonl")
    assert label == "youtube-ugc"
    assert {r["corpus_source"] for r in rows} >= {"youtube-ugc", "konvid-1k", "lsvq"}
    block = manifest["run_provenance"]
    assert [e["path"].rsplit("/", 1)[1] for e in block["inputs"]["corpora"]] == [
        f"{name}.jsonl" for name in SHARDS
    ]
    assert all(len(e["sha256"]) == 64 for e in block["inputs"]["corpora"])
    assert block["outputs"]["output"]["written_by_run"] is True
    assert block["entrypoint"]["path"] == "ai/scripts/aggregate_corpora.py"


def test_aggregate_bytes_do_not_depend_on_input_order(sample, tmp_path):
    forward, backward = tmp_path / "f.jsonl", tmp_path / "b.jsonl"
    assert aggregate(sample, forward).returncode == 0
    assert aggregate(sample, backward, inputs=shard_paths(sample)[::-1]).returncode == 0
    assert forward.read_bytes() == backward.read_bytes()


def mos_row(corpus, sha, mos, std):
    return {"src": f"{corpus}/{sha}.mp4", "src_sha256": sha, "mos": mos, "mos_std_dev": std,
            "corpus": corpus}  # fmt: skip


def write_rows(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    ("konvid_std", "lsvq_std", "kept"),
    [(0.5, 0.3, "lsvq"), (0.3, 0.5, "konvid-1k"), (0.0, 0.9, "lsvq"), (math.nan, 0.0, "konvid-1k"),
     (0.4, 0.4, "konvid-1k")],
)  # fmt: skip
def test_cross_corpus_dedup_keeps_the_smaller_published_spread(
    tmp_path, konvid_std, lsvq_std, kept
):
    a = write_rows(tmp_path / "a.jsonl", [mos_row("konvid-1k", "s1", 3.0, konvid_std)])
    b = write_rows(tmp_path / "b.jsonl", [mos_row("lsvq", "s1", 4.0, lsvq_std)])
    out = tmp_path / "out.jsonl"
    proc = run_script("aggregate_corpora", a, b, "--output", out)
    assert proc.returncode == 0, proc.stderr
    [row] = read_jsonl(out)
    assert row["corpus_source"] == kept
    assert load_sidecar(sidecar_of(out))["counters"]["cross_corpus_dedups"] == 1


def test_a_malformed_row_is_a_clear_error_and_writes_no_output(tmp_path):
    shard = tmp_path / "konvid.jsonl"
    shard.write_text(json.dumps(mos_row("konvid-1k", "s1", 3.0, 0.4)) + "\n{not json\n")
    out = tmp_path / "out.jsonl"
    proc = run_script("aggregate_corpora", shard, "--output", out)
    assert proc.returncode == 2
    assert f"{shard}:2: not valid JSON" in proc.stderr
    assert not out.exists()
    block = block_of(out)
    assert block["outcome"]["status"] == "failed"
    assert block["outputs"]["output"] == {"path": str(out), "exists": False}
    assert "counters" not in load_sidecar(sidecar_of(out))  # nothing measured, nothing claimed


def test_a_missing_input_is_an_error_unless_allowed_then_counted(tmp_path):
    shard = write_rows(tmp_path / "a.jsonl", [mos_row("konvid-1k", "s1", 3.0, 0.4)])
    gone = tmp_path / "gone.jsonl"
    out = tmp_path / "out.jsonl"
    proc = run_script("aggregate_corpora", shard, gone, "--output", out)
    assert proc.returncode == 2
    assert f"{gone}: no such file" in proc.stderr
    assert not out.exists()
    proc = run_script("aggregate_corpora", shard, gone, "--output", out, "--allow-missing")
    assert proc.returncode == 0, proc.stderr
    counters = load_sidecar(sidecar_of(out))["counters"]
    assert (counters["inputs_seen"], counters["inputs_missing"], counters["rows_out"]) == (1, 1, 1)


def test_an_override_that_names_no_input_is_refused(tmp_path):
    shard = write_rows(tmp_path / "a.jsonl", [mos_row("konvid-1k", "s1", 3.0, 0.4)])
    out = tmp_path / "out.jsonl"
    proc = run_script("aggregate_corpora", shard, "--output", out,
                      "--corpus-source-override", f"{tmp_path / 'other.jsonl'}=lsvq")  # fmt: skip
    assert proc.returncode == 2
    assert "is not one of the inputs" in proc.stderr
    assert not out.exists()


# -- merge_corpora -----------------------------------------------------------------------------


def test_merge_keeps_the_first_row_of_each_natural_key(sample, tmp_path):
    shards = [sample / "grid" / "shard_a.jsonl", sample / "grid" / "shard_b.jsonl"]
    out = tmp_path / "merged.jsonl"
    proc = run_script("merge_corpora", *shards, "--output", out)
    assert proc.returncode == 0, proc.stderr
    rows_in = [row for shard in shards for row in read_jsonl(shard)]
    keys = [tuple(r[k] for k in NATURAL_KEY) for r in rows_in]
    merged = read_jsonl(out)
    assert [tuple(r[k] for k in NATURAL_KEY) for r in merged] == list(dict.fromkeys(keys))
    assert merged[0]["run_id"] == "grid-a"
    assert all(list(r) == list(CORPUS_ROW_KEYS) for r in merged)
    manifest = load_sidecar(sidecar_of(out))
    assert manifest["counters"] == {
        "rows_in": len(rows_in),
        "rows_out": len(set(keys)),
        "duplicates": len(keys) - len(set(keys)),
        "unique_sources": len({r["src_sha256"] for r in rows_in}),
    }
    assert manifest["counters"]["duplicates"] > 0
    assert manifest["required_keys"] == list(CORPUS_ROW_KEYS)
    assert len(manifest["required_keys"]) == 54
    assert manifest["dedup_fields"] == ["src_sha256", "encoder", "preset", "crf"]
    assert [p["rows"] for p in manifest["per_input"]] == [len(read_jsonl(s)) for s in shards]


def test_merge_refuses_a_row_missing_a_v3_key(sample, tmp_path):
    rows = read_jsonl(sample / "grid" / "shard_a.jsonl")
    del rows[2]["enc_internal_skip_ratio"]
    broken = write_rows(tmp_path / "broken.jsonl", rows)
    out = tmp_path / "merged.jsonl"
    proc = run_script("merge_corpora", sample / "grid" / "shard_b.jsonl", broken, "--output", out)
    assert proc.returncode == 2
    assert f"{broken}:3: missing schema-v3 key(s) enc_internal_skip_ratio" in proc.stderr
    assert not out.exists()
    assert block_of(out)["outcome"]["exit_code"] == 2


def test_merge_needs_two_inputs(sample, tmp_path):
    out = tmp_path / "merged.jsonl"
    proc = run_script("merge_corpora", sample / "grid" / "shard_a.jsonl", "--output", out)
    assert proc.returncode == 2
    assert "at least two inputs" in proc.stderr
    assert not out.exists()


def test_manifest_out_puts_the_sidecar_where_the_bundle_wants_it(tmp_path):
    shard = write_rows(tmp_path / "a.jsonl", [mos_row("konvid-1k", "s1", 3.0, 0.4)])
    out = tmp_path / "out.jsonl"
    bundle = tmp_path / "bundle" / "aggregate.manifest.json"
    bundle.parent.mkdir()
    proc = run_script("aggregate_corpora", shard, "--output", out, "--manifest-out", bundle)
    assert proc.returncode == 0, proc.stderr
    assert not sidecar_of(out).exists()
    manifest = load_sidecar(bundle)
    assert manifest["counters"]["rows_out"] == 1
    assert manifest["run_provenance"]["args"]["manifest_out"] == str(bundle)
