"""Audits and sweeps (ADR-0661): the feature-correlation ranking and the Phase-3 subset sweep."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.conftest import block_of, load_sidecar, run_script, sidecar_of

NOT_FEATURES = {"clip_name", "mos", "width", "height", "fps", "is_hdr", "motion_fps_weight"}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks, as pyarrow ranks them (MOS clipped at 5 has ties)."""
    low = pc.rank(pa.array(values), tiebreaker="min").to_numpy()
    high = pc.rank(pa.array(values), tiebreaker="max").to_numpy()
    return (low + high) / 2.0


def test_the_ranking_is_each_columns_correlation_with_the_target(demo):
    source = demo / "tables/k150k_enriched.parquet"
    report_path = demo / "reports/audits/feature_correlation.json"
    report = json.loads(report_path.read_text())
    table = pq.read_table(source)
    mos = table.column("mos").to_numpy()
    columns = [c for c in table.column_names if c not in NOT_FEATURES]
    plccs = {c: np.corrcoef(table.column(c).to_numpy(), mos)[0, 1] for c in columns}
    order = sorted(columns, key=lambda c: (-abs(plccs[c]), c))
    assert [e["column"] for e in report["ranking"]] == order
    for entry in report["ranking"]:
        values = table.column(entry["column"]).to_numpy()
        assert entry["plcc"] == pytest.approx(plccs[entry["column"]], abs=1e-6)
        assert entry["srocc"] == pytest.approx(
            np.corrcoef(ranks(values), ranks(mos))[0, 1], abs=1e-6
        )
    top = order[:8]
    assert report["top_k_columns"] == top
    expected_pairs = [
        (a, b)
        for i, a in enumerate(top)
        for b in top[i + 1 :]
        if abs(np.corrcoef(table.column(a).to_numpy(), table.column(b).to_numpy())[0, 1]) >= 0.95
    ]
    assert [(p["a"], p["b"]) for p in report["redundant_pairs"]] == expected_pairs
    assert (report["source"], report["rows"], report["target"]) == (source.name, 600, "mos")
    weakest = pytest.approx(abs(plccs[top[-1]]), abs=1e-6)
    assert report["gate"] == {"min_abs_corr": 0.5, "weakest": weakest, "passed": True}
    embedded = report["run_provenance"]
    assert embedded["inputs"]["table"]["sha256"] == sha256(source)
    assert embedded["argv"][embedded["argv"].index("--top-k") + 1] == "8"
    manifest = load_sidecar(sidecar_of(report_path))
    assert manifest["parameters"] == {
        "target": "mos",
        "rank_by": "plcc",
        "top_k": 8,
        "min_abs_corr": 0.5,
        "redundancy_threshold": 0.95,
        "mi_bins": 10,
        "ridge_alpha": 1.0,
        "importance_repeats": 5,
        "importance_seed": 0,
    }
    assert manifest["top_k_columns"] == top
    assert manifest["columns_ranked"] == len(columns)
    assert manifest["source"].endswith("tables/k150k_enriched.parquet")


def binned_mi(a: np.ndarray, b: np.ndarray, bins: int) -> float:
    """I(a; b) in nats over equal-count bins, counted cell by cell."""

    def binned(v: np.ndarray) -> np.ndarray:
        return np.minimum(((ranks(v) - 1) * bins / len(v)).astype(int), bins - 1)

    ba, bb = binned(a), binned(b)
    total = 0.0
    for i in range(bins):
        for j in range(bins):
            pij = np.mean((ba == i) & (bb == j))
            if pij:
                total += pij * np.log(pij / (np.mean(ba == i) * np.mean(bb == j)))
    return total


def test_mutual_information_and_importance_see_what_correlation_misses(tmp_path):
    rng = np.random.default_rng(7)
    y = rng.uniform(0.0, 1.0, 400)
    columns = {
        "linear": y + rng.normal(0, 0.05, 400),
        "fold": (y - 0.5) ** 2 + rng.normal(0, 0.002, 400),  # no linear trend, fully dependent
        "noise": rng.normal(0, 1, 400),
        "copy": y + rng.normal(0, 0.05, 400),
    }
    source = tmp_path / "t.parquet"
    pq.write_table(pa.table({"mos": y, **columns}), source)
    out = tmp_path / "r.json"
    proc = run_script("feature_correlation", "--table", source, "--out-json", out,
                      "--top-k", "1", "--mi-bins", "8", "--importance-seed", "3")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    by = {e["column"]: e for e in report["ranking"]}
    for name, values in columns.items():
        assert by[name]["mutual_information"] == pytest.approx(binned_mi(values, y, 8), abs=1e-6)
    assert abs(by["fold"]["plcc"]) < 0.1
    assert by["fold"]["mutual_information"] > 5 * by["noise"]["mutual_information"]
    # A ridge fit cannot use "fold"; "noise" carries nothing; "linear" and "copy" share the load.
    assert by["noise"]["permutation_importance"] < 0.01
    assert by["fold"]["permutation_importance"] < 0.01
    assert by["linear"]["permutation_importance"] > 0.1
    assert by["copy"]["permutation_importance"] > 0.1
    # The same numbers, recomputed from the ridge fit the report describes.
    names = list(columns)  # the table's order, the fit's order
    x = np.column_stack([columns[n] for n in names])
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    centred = y - y.mean()
    coef = np.linalg.solve(z.T @ z + np.eye(len(names)), z.T @ centred)
    base = np.mean((z @ coef - centred) ** 2)
    shuffle = np.random.default_rng(3)
    for j, name in enumerate(names):
        rises = []
        for _ in range(5):
            moved = z.copy()
            moved[:, j] = z[shuffle.permutation(400), j]
            rises.append(np.mean((moved @ coef - centred) ** 2) - base)
        assert by[name]["permutation_importance"] == pytest.approx(
            np.mean(rises) / np.var(y), abs=2e-6
        )
    assert (report["importance_seed"], report["mi_bins"]) == (3, 8)
    assert block_of(out)["args"]["mi_bins"] == 8


def correlate(demo: Path, out: Path, *extra: object):
    return run_script("feature_correlation", "--table", demo / "tables/k150k_enriched.parquet",
                      "--out-json", out, *extra)  # fmt: skip


def test_a_top_k_below_the_floor_fails_the_gate_and_still_writes_the_report(demo, tmp_path):
    out = tmp_path / "correlation.json"
    proc = correlate(demo, out, "--rank-by", "srocc", "--top-k", "3", "--min-abs-corr", "0.991")
    assert proc.returncode == 1, proc.stderr
    report = json.loads(out.read_text())
    assert report["rank_by"] == "srocc"
    by_srocc = sorted(report["ranking"], key=lambda e: (-abs(e["srocc"]), e["column"]))
    assert report["ranking"] == [{**e, "rank": i} for i, e in enumerate(by_srocc, start=1)]
    assert report["top_k_columns"] == [e["column"] for e in by_srocc[:3]]
    assert report["gate"]["passed"] is False
    gate = block_of(out)["outcome"]["gates"]["top_k_correlation"]
    assert gate["passed"] is False
    assert gate["failing"] == [
        e["column"] for e in report["ranking"][:3] if abs(e["srocc"]) < 0.991
    ]
    assert gate["failing"]


def test_a_column_the_table_lacks_is_exit_2_and_writes_no_report(demo, tmp_path):
    out = tmp_path / "correlation.json"
    proc = correlate(demo, out, "--columns", "adm2_mean,no_such_mean")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("missing column(s) no_such_mean")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["correlation.json.manifest.json"]


def test_a_constant_target_is_exit_2_since_nothing_correlates_with_it(demo, tmp_path):
    table = pq.read_table(demo / "tables/k150k_enriched.parquet")
    flat = table.set_column(table.column_names.index("mos"), "mos", pa.array([3.0] * 600))
    source = tmp_path / "flat.parquet"
    pq.write_table(flat, source)
    out = tmp_path / "correlation.json"
    proc = run_script("feature_correlation", "--table", source, "--out-json", out)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"feature_correlation.py: error: {source}: mos or every column is constant: nothing to rank"
    ]
    assert not out.exists()


# -- the Phase-3 subset sweep ------------------------------------------------------------------


def fraction(seed: int, content: str) -> float:
    digest = hashlib.blake2s(f"{seed}\0{content}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def content(clip: str) -> str:
    return Path(clip).stem.split("__")[0]


def ridge_plcc(x: np.ndarray, y: np.ndarray, test: np.ndarray, ridge: float, scale: bool) -> float:
    """Ridge as least squares over rows of sqrt(ridge) * I, on centred (and scaled) inputs."""
    mean, std = x[~test].mean(axis=0), x[~test].std(axis=0) if scale else 1.0
    z = (x - mean) / std
    design = np.vstack([z[~test], np.sqrt(ridge) * np.eye(x.shape[1])])
    target = np.concatenate([y[~test] - y[~test].mean(), np.zeros(x.shape[1])])
    weights, *_ = np.linalg.lstsq(design, target, rcond=None)
    return float(np.corrcoef(z[test] @ weights, y[test])[0, 1])


def test_each_unscaled_subsets_fold_plcc_is_what_least_squares_gives(demo, tmp_path):
    source = demo / "tables/k150k_enriched.parquet"
    out = tmp_path / "sweep.json"
    proc = run_script("phase3_subset_sweep", "--table", source, "--subset", "pair=adm2,motion2",
                      "--subset", "one=vif_scale0_mean", "--seeds", "0", "4", "--folds", "3",
                      "--ridge", "2", "--no-standardize", "--min-plcc", "0.9999",
                      "--out-json", out)  # fmt: skip
    assert proc.returncode == 1, proc.stderr  # no subset reaches 0.9999: the gate fails
    report = json.loads(out.read_text())
    table = pq.read_table(source)
    clips = table.column("clip_name").to_pylist()
    kept = np.array([fraction(0, content(c)) < 0.9 for c in clips])
    assert report["rows"] == {"swept": int(kept.sum()), "held_out": int((~kept).sum())}
    y = table.column("mos").to_numpy()[kept]
    names = [c for c, k in zip(clips, kept, strict=True) if k]
    subsets = (["adm2_mean", "motion2_mean"], ["vif_scale0_mean"])
    for result, columns in zip(report["subsets"], subsets, strict=True):
        assert result["columns"] == columns
        x = np.stack([table.column(c).to_numpy()[kept] for c in columns], axis=1)
        every = []
        for seed in (0, 4):
            folds = np.array([min(2, int(fraction(seed, content(c)) * 3)) for c in names])
            expected = [ridge_plcc(x, y, folds == f, 2.0, scale=False) for f in range(3)]
            assert result["fold_plcc"][str(seed)] == pytest.approx(expected, abs=2e-6)
            every += expected
        assert result["mean_plcc"] == pytest.approx(np.mean(every), abs=2e-6)
    best = max(report["subsets"], key=lambda r: r["mean_plcc"])
    assert report["best_subset"] == best["subset"]
    assert report["gate"] == {"min_plcc": 0.9999, "mean_plcc": best["mean_plcc"], "passed": False}
    manifest = load_sidecar(sidecar_of(out))
    assert manifest["subsets"] == {"pair": ["adm2", "motion2"], "one": ["vif_scale0_mean"]}
    assert manifest["seed_policy"]["seeds"] == [0, 4]
    assert manifest["training"] == {
        "target": "mos",
        "folds": 3,
        "ridge": 2.0,
        "standardize": False,
        "split_seed": 0,
    }
    assert manifest["plcc_table"] == {r["subset"]: r["mean_plcc"] for r in report["subsets"]}
    block = manifest["run_provenance"]
    assert block["inputs"]["table"]["sha256"] == sha256(source)
    assert block["outcome"]["gates"]["best_subset"]["passed"] is False
    assert block["outcome"]["exit_code"] == 1


def test_the_demo_sweep_is_standardised_ridge_on_every_seed(demo):
    report = json.loads((demo / "reports/audits/phase3_subset_sweep.json").read_text())
    assert [r["subset"] for r in report["subsets"]] == ["canonical6", "canonical6_ssim", "full"]
    table = pq.read_table(demo / "tables/k150k_enriched.parquet")
    clips = table.column("clip_name").to_pylist()
    kept = np.array([fraction(0, content(c)) < 0.9 for c in clips])
    names = [c for c, k in zip(clips, kept, strict=True) if k]
    y = table.column("mos").to_numpy()[kept]
    canonical = report["subsets"][0]
    x = np.stack([table.column(c).to_numpy()[kept] for c in canonical["columns"]], axis=1)
    for seed in ("0", "1", "2"):
        folds = np.array([min(4, int(fraction(int(seed), content(c)) * 5)) for c in names])
        expected = [ridge_plcc(x, y, folds == f, 1.0, scale=True) for f in range(5)]
        assert canonical["fold_plcc"][seed] == pytest.approx(expected, abs=2e-6)
    assert report["gate"]["passed"] is True
    assert report["run_provenance"]["outcome"]["gates"]["best_subset"]["passed"] is True


def test_a_subset_feature_the_table_lacks_is_exit_2_and_writes_no_report(demo, tmp_path):
    out = tmp_path / "sweep.json"
    proc = run_script("phase3_subset_sweep", "--table", demo / "tables/k150k_enriched.parquet",
                      "--subset", "x=adm2,saliency_mean", "--out-json", out)  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("subset 'x': no column saliency_mean or saliency_mean_mean")
    assert not out.exists()
    assert block_of(out)["outputs"]["report"] == {"path": str(out), "exists": False}
