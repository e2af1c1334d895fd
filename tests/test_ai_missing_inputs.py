"""A missing input is a clear error for every script: exit 2, nothing written, an honest sidecar."""

from __future__ import annotations

import pytest

from tests.conftest import load_sidecar, records_and, run_script, sidecar_of

GONE = "gone"


@pytest.mark.parametrize(
    ("script", "argv", "output"),
    [
        ("aggregate_corpora", ["{gone}.jsonl", "--output", "{out}"], "out.jsonl"),
        ("merge_corpora", ["{gone}.jsonl", "{gone}2.jsonl", "--output", "{out}"], "out.jsonl"),
        ("bvi_dvc_to_corpus_jsonl", ["--cache-dir", "{gone}", "--source-root", "{gone}",
                                     "--output", "{out}"], "out.jsonl"),
        ("extract_full_features", ["--corpus-root", "{gone}", "--cache-dir", "{gone}",
                                   "--out", "{out}"], "out.parquet"),
        ("konvid_to_vmaf_pairs", ["--konvid-root", "{gone}", "--cache-dir", "{gone}",
                                  "--out", "{out}"], "out.parquet"),
        ("extract_k150k_features", ["--cache-dir", "{tmp}", "--scores", "{gone}.csv",
                                    "--out", "{out}"], "out.parquet"),
        ("enrich_k150k_parquet_metadata", ["--table", "{gone}.parquet", "--metadata",
                                           "{gone}.jsonl", "--out", "{out}"], "out.parquet"),
        ("combine_full_feature_parquets", ["a={gone}.parquet", "--out", "{out}"], "out.parquet"),
        ("train_konvid_mos_head", ["--table", "{gone}.parquet", "--out-model", "{out}",
                                   "--out-json", "{tmp}/m.json"], "m.npz"),
        ("train_chug_hdr_mos_head", ["--table", "{gone}.parquet", "--out-model", "{out}",
                                     "--out-json", "{tmp}/m.json"], "m.npz"),
        ("export_mos_head_onnx", ["--checkpoint", "{gone}.npz", "--out", "{out}"], "m.onnx"),
        ("validate_mos_head", ["--onnx", "{gone}.onnx", "--checkpoint", "{gone}.npz",
                               "--table", "{gone}.parquet", "--out-json", "{out}"], "r.json"),
        ("ptq_dynamic", ["--fp32", "{gone}.onnx", "--out", "{out}"], "q.onnx"),
        ("ptq_static", ["--fp32", "{gone}.onnx", "--calibration-table", "{gone}.parquet",
                        "--out", "{out}"], "q.onnx"),
        ("measure_quant_drop", ["--fp32", "{gone}.onnx", "--int8", "{gone}.int8.onnx",
                                "--table", "{gone}.parquet", "--out-json", "{out}"], "r.json"),
        ("measure_quant_drop_per_ep", ["--registry", "{gone}.json", "--table", "{gone}.parquet",
                                       "--out-json", "{out}", "--out-md", "{tmp}/r.md"],
         "r.json"),
        ("validate_model_registry", ["--registry", "{gone}.json", "--out-json", "{out}"],
         "r.json"),
        ("feature_correlation", ["--table", "{gone}.parquet", "--out-json", "{out}"], "r.json"),
        ("phase3_subset_sweep", ["--table", "{gone}.parquet", "--subset", "a=adm2",
                                 "--out-json", "{out}"], "r.json"),
        ("chug_extract_features", ["--chug-jsonl", "{gone}.jsonl", "--cache-dir", "{tmp}",
                                   "--split-out", "{out}", "--audit-out", "{tmp}/a.json",
                                   "--out", "{tmp}/t.parquet"],
         "split.json"),
        ("calibrate_phase_f_recipes", ["--corpus", "{gone}.jsonl", "--out", "{out}"], "r.json"),
        ("calibrate_nr_threshold", ["--corpus-dir", "{gone}", "--model", "{gone}.onnx",
                                    "--out-json", "{out}", "--report-md", "{tmp}/r.md"],
         "t.json"),
        ("render_model_card", ["--model", "{gone}.onnx", "--root", "{tmp}", "--out", "{out}"],
         "card.md"),
    ],
)  # fmt: skip
def test_a_missing_input_is_exit_2_with_its_name_and_nothing_written(
    tmp_path, script, argv, output
):
    out = tmp_path / output
    values = {"gone": tmp_path / GONE, "out": out, "tmp": tmp_path}
    proc = run_script(script, *(a.format(**values) for a in argv))
    assert proc.returncode == 2, proc.stderr
    assert str(tmp_path / GONE) in proc.stderr
    assert "no such" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert records_and(tmp_path) == [f"{output}.manifest.json"]
    outcome = load_sidecar(sidecar_of(out))["run_provenance"]["outcome"]
    assert (outcome["status"], outcome["exit_code"]) == ("failed", 2)
