"""The demo pipeline: sample data to gate verdict, every step a recorded script run for real.

``python -m ai.demo [--out runs/demo]`` runs each step as its own process, checks each exit
code, each sidecar against the schema and each gate it recorded (a trainer whose gate failed
exits 0, as the fork's does, so the gate is what stops the demo), and prints a table of
artifacts and outcomes.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ai.features.libvmaf import FULL_FEATURES
from provenance import atomic_write, validate

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)
MOS_SHARDS = ("konvid-1k", "konvid-150k", "lsvq", "waterloo-ivc-4k", "chug", "ugc-misc")
# CHUG's libvmaf build has no ssimulacra2: its tables have one feature fewer than K150K's.
CHUG_FEATURES = ",".join(f for f in FULL_FEATURES if f != "ssimulacra2")


@dataclass(frozen=True)
class Step:
    script: str
    command: str  # the script's arguments, as typed in a shell
    artifact: str
    sidecar: str | None = None  # default: <artifact>.manifest.json

    @property
    def sidecar_path(self) -> str:
        return self.sidecar or f"{self.artifact}.manifest.json"


def chain_steps(out: str) -> list[Step]:
    """From the sample data to the shipped KonViD head and the FR ensemble, one after another."""
    s, c, t, m, r = (f"{out}/{d}" for d in ("sample", "corpora", "tables", "models", "reports"))
    shards = " ".join(f"{s}/mos/{n}.jsonl" for n in MOS_SHARDS)
    chain = [
        Step("generate_sample_data", f"--out {s} --seed 0", s),
        Step(
            "aggregate_corpora",
            f"{shards} --corpus-source-override {s}/mos/ugc-misc.jsonl=youtube-ugc "
            f"--output {c}/mos_aggregated.jsonl",
            f"{c}/mos_aggregated.jsonl",
        ),
        Step(
            "bvi_dvc_to_corpus_jsonl",
            f"--cache-dir {s}/bvi_dvc/vmaf_cache --source-root {s}/bvi_dvc/sources "
            f"--output {c}/bvi_dvc.jsonl",
            f"{c}/bvi_dvc.jsonl",
        ),
        Step(
            "merge_corpora",
            f"{s}/grid/shard_a.jsonl {s}/grid/shard_b.jsonl {c}/bvi_dvc.jsonl "
            f"--output {c}/encode_grid.jsonl",
            f"{c}/encode_grid.jsonl",
        ),
        Step(
            "extract_full_features",
            f"--corpus-root {s}/netflix --cache-dir {s}/netflix/vmaf_cache "
            f"--out {t}/netflix_frames.parquet",
            f"{t}/netflix_frames.parquet",
        ),
        Step(
            "konvid_to_vmaf_pairs",
            f"--konvid-root {s}/konvid --cache-dir {s}/konvid/vmaf_cache "
            f"--vmaf-model {s}/konvid/vmaf_v0.6.1.json --crf 35 --out {t}/konvid_pairs.parquet",
            f"{t}/konvid_pairs.parquet",
        ),
    ]
    # K150K's scores come from the aggregated corpus, so its tables and models lead back to
    # the MOS shards; CHUG has no scale entry (it is dropped as unknown) and keeps its CSV.
    k150k_scores = f"{c}/mos_aggregated.jsonl --corpus konvid-150k --mos-scale 1-5"
    chug_scores = f"{s}/chug/scores.csv --mos-scale 0-100 --features {CHUG_FEATURES}"
    for corpus, scores in (("k150k", k150k_scores), ("chug", chug_scores)):
        chain += [
            Step(
                "extract_k150k_features",
                f"--cache-dir {s}/{corpus}/vmaf_cache --scores {scores} --out {t}/{corpus}.parquet",
                f"{t}/{corpus}.parquet",
            ),
            Step(
                "enrich_k150k_parquet_metadata",
                f"--table {t}/{corpus}.parquet --metadata {s}/{corpus}/metadata.jsonl "
                f"--out {t}/{corpus}_enriched.parquet",
                f"{t}/{corpus}_enriched.parquet",
            ),
        ]
    chain.append(
        Step(
            "combine_full_feature_parquets",
            f"konvid-150k={t}/k150k_enriched.parquet chug={t}/chug_enriched.parquet "
            f"--out {t}/combined.parquet",
            f"{t}/combined.parquet",
        )
    )
    for seed in SEEDS:
        chain.append(
            Step(
                "train_konvid_mos_head",
                f"--table {t}/k150k_enriched.parquet --seed {seed} "
                f"--out-model {m}/konvid_seed{seed}.npz --out-json {m}/konvid_seed{seed}.json",
                f"{m}/konvid_seed{seed}.npz",
            )
        )
    for seed in SEEDS:  # the FR regressor ensemble's seeds, judged on the KoNViD pairs
        chain.append(
            Step(
                "train_fr_regressor_v2_ensemble_loso",
                f"--corpus {t}/konvid_pairs.parquet --seed {seed} --out-dir {r}/loso",
                f"{r}/loso/loso_seed{seed}.json",
            )
        )
    seeds = " ".join(map(str, SEEDS))
    chain += [
        Step(
            "train_chug_hdr_mos_head",
            f"--table {t}/chug_enriched.parquet --gate synthetic --folds 4 "
            f"--out-model {m}/chug_hdr_mos_head.npz --out-json {m}/chug_hdr_mos_head.json",
            f"{m}/chug_hdr_mos_head.npz",
        ),
        Step(
            "export_mos_head_onnx",
            f"--checkpoint {m}/konvid_seed0.npz --model-id konvid_mos_head "
            f"--out {m}/konvid_mos_head.onnx --registry {m}/registry.json",
            f"{m}/konvid_mos_head.onnx",
        ),
        Step(
            "validate_mos_head",
            f"--onnx {m}/konvid_mos_head.onnx --checkpoint {m}/konvid_seed0.npz "
            f"--table {t}/k150k_enriched.parquet --out-json {r}/konvid_validation.json",
            f"{r}/konvid_validation.json",
        ),
        Step(
            "validate_ensemble_seeds",
            f"--loso-dir {r}/loso --seeds {seeds} --out-dir {r}/gate",
            f"{r}/gate/PROMOTE.json",
            f"{r}/gate/verdict.manifest.json",
        ),
        Step(
            "export_ensemble_v2_seeds",
            f"--corpus {t}/konvid_pairs.parquet --verdict {r}/gate/PROMOTE.json "
            f"--out-dir {m}/ensemble --registry {m}/ensemble/registry.json",
            f"{m}/ensemble/fr_regressor_v2_ensemble_v1.json",
        ),
    ]
    return chain


def lanes(out: str) -> list[list[Step]]:
    """Families that only read what the chain made: each lane runs in order, lanes side by side.

    A lane writes only under its own names (its own registry file too), so lanes running at
    once cannot change each other's records.
    """
    s, c, t, m, r = (f"{out}/{d}" for d in ("sample", "corpora", "tables", "models", "reports"))
    return [
        quantization_and_registry_steps(out),
        audit_steps(s, c, t, m, r),
        vmaf_train_steps(out),
        legacy_eval_steps(out),
        tables_steps(out),
        tiny_steps(out),
        dnn_steps(out),
        saliency_steps(out),
        quant_steps(out),
        fr_steps(out),
    ]


def stages(out: str) -> list[list[list[Step]]]:
    """The demo in order: the chain, then the family lanes together, then the cards."""
    return [[chain_steps(out)], lanes(out), [card_steps(out)]]


def steps(out: str) -> list[Step]:
    """Every step, in an order that runs them one at a time."""
    return [step for stage in stages(out) for lane in stage for step in lane]


def legacy_eval_steps(out: str) -> list[Step]:
    """Per-fold tiny models of three architectures and two baselines, then both LOSO evals.

    The fork's recipe trains each fold for 90 epochs of 256-row batches on tens of thousands
    of frames; on the sample's 192 frames a fold gets shorter, smaller batches instead.
    """
    data, m, r = f"{out}/sample/netflix_loso", f"{out}/models/legacy", f"{out}/reports/legacy"
    runs = f"{m}/training_runs"
    return [
        Step(
            "train_loso_fold_models",
            f"--data-root {data} --archs mlp_small,mlp_medium,linear --training-runs-dir {runs} "
            f"--mlp-small-baseline {m}/vmaf_tiny_v1.onnx "
            f"--mlp-medium-baseline {m}/vmaf_tiny_v1_medium.onnx "
            f"--epochs 40 --batch-size 8 --lr 0.05 --out-json {m}/loso_fold_training.json",
            f"{m}/loso_fold_training.json",
        ),
        Step(
            "eval_loso_mlp_small",
            f"--data-root {data} --loso-dir {runs}/loso_mlp_small "
            f"--mlp-small-baseline {m}/vmaf_tiny_v1.onnx "
            f"--mlp-medium-baseline {m}/vmaf_tiny_v1_medium.onnx --out {r}",
            f"{r}/loso_mlp_small_eval.json",
        ),
        Step(
            "eval_loso_3arch",
            f"--data-root {data} --training-runs-dir {runs} --out {r}",
            f"{r}/loso_3arch_eval.json",
        ),
    ]


# -- vmaf-train: the same pipeline as one command, its fit driven by a YAML config ------------

VMAF_TRAIN = "vmaf-train"
# Relative paths in a fit config resolve from its folder: this one names <out>/tables.
FIT_CONFIG = """\
# The KonViD MOS head on the canonical six libvmaf features, gated as on a real corpus.
table: ../tables/k150k_enriched.parquet
features: [adm2, vif_scale0, vif_scale1, vif_scale2, vif_scale3, motion2]
mos_scale: 1-5
ridge: 1.0
folds: 5
seed: 0
split_seed: 0
model_id: konvid_vmaf_train
gate: real
"""


def fit_config_path(out: str) -> Path:
    return Path(out) / "configs" / "konvid_fit.yaml"


# The QAT driver's config: a small MLP on the canonical six, trained on the enriched K150K table.
QAT_CONFIG = """\
model: mos_mlp
model_args: {lr: 0.01, hidden: 16, features: [adm2, vif_scale0, vif_scale1, vif_scale2,
                                              vif_scale3, motion2]}
cache: ../tables/k150k_enriched.parquet
batch_size: 32
val_frac: 0.1
test_frac: 0.1
qat: {input_name: input, output_name: output}
"""


def qat_config_path(out: str) -> Path:
    return Path(out) / "configs" / "qat_mos_mlp.yaml"


def quant_steps(out: str) -> list[Step]:
    """vmaf-train's model checks and the QAT driver, once each, over the chain's KonViD head
    and the sample's learned filter. profile runs with --iters 0: it starts and runs each
    provider and shape but times nothing, since measured times would change its report, and so
    its record, from one demo run to the next."""
    s, t, m = (f"{out}/{d}" for d in ("sample", "tables", "models"))
    q, r = f"{out}/models/quant", f"{out}/reports/vmaf_train"
    head, table = f"{m}/konvid_mos_head.onnx", f"{t}/k150k_enriched.parquet"
    cpu = "--provider CPUExecutionProvider"
    return [
        Step(
            "qat_train",
            f"--config {qat_config_path(out)} --output {q}/mos_mlp.int8.onnx --epochs-fp32 5 "
            f"--epochs-qat 2 --report-out {r}/qat_train.json",
            f"{q}/mos_mlp.int8.onnx",
        ),
        Step(
            VMAF_TRAIN,
            f"validate-norm --model {head} --features {table} --json {r}/validate_norm.json",
            f"{r}/validate_norm.json",
        ),
        Step(
            VMAF_TRAIN,
            f"profile --model {head} {cpu} --shape 1,11 --shape 64,11 --warmup 1 --iters 0 "
            f"--json {r}/profile.json",
            f"{r}/profile.json",
        ),
        Step(
            VMAF_TRAIN,
            f"audit-learned-filter --model {s}/filter/learned_filter.onnx "
            f"--frames {s}/filter/frames.npy --json {r}/audit_learned_filter.json",
            f"{r}/audit_learned_filter.json",
        ),
        Step(
            VMAF_TRAIN,
            f"quantize-int8 --fp32 {head} --output {q}/konvid_mos_head.int8.onnx "
            f"--calibration {table} --n-calibration 128 --json {r}/quantize_int8.json",
            f"{q}/konvid_mos_head.int8.onnx",
        ),
        Step(
            VMAF_TRAIN,
            f"cross-backend --model {head} --features {table} {cpu} "
            f"--provider CUDAExecutionProvider --json {r}/cross_backend.json",
            f"{r}/cross_backend.json",
        ),
        Step(
            VMAF_TRAIN,
            f"bisect-model-quality {head} {q}/konvid_mos_head.int8.onnx --features {table} "
            f"--min-plcc 0.9 --input-name features --json {r}/bisect_model_quality.json",
            f"{r}/bisect_model_quality.json",
        ),
    ]


def vmaf_train_steps(out: str) -> list[Step]:
    t, m, r = (f"{out}/{d}" for d in ("tables", "models", "reports"))
    return [
        Step(
            VMAF_TRAIN,
            f"fit --config {fit_config_path(out)} --out-model {m}/konvid_vmaf_train.npz "
            f"--json {r}/vmaf_train_fit.json",
            f"{m}/konvid_vmaf_train.npz",
        ),
        Step(
            VMAF_TRAIN,
            f"eval --checkpoint {m}/konvid_vmaf_train.npz --table {t}/k150k_enriched.parquet "
            f"--json {r}/vmaf_train_eval.json",
            f"{r}/vmaf_train_eval.json",
        ),
    ]


def vmaf_train_command() -> str:
    """The installed ``vmaf-train`` console script of this environment."""
    found = Path(sys.executable).with_name(VMAF_TRAIN)
    if not found.is_file():
        raise SystemExit(
            f"demo: {found} is not installed: `make demo` installs it "
            "(pip install -e pipeline, the ai/ pipeline's own distribution)"
        )
    return str(found)


# The digest of sample/dnn/fastdvdnet/model.npz (seed 0): the pin the demo gives the exporter,
# as the fork pins upstream's model.pth.
FASTDVDNET_SAMPLE_SHA256 = "01992501721e6fdc64308eef0cf1c4feaa84a28dc97c6964f9f6ac1acdd8ee0a"
EMPTY_REGISTRY = b'{\n  "schema_version": 1,\n  "models": []\n}\n'


def dnn_registry_path(out: str) -> Path:
    return Path(out) / "models" / "dnn" / "registry.json"


def dnn_steps(out: str) -> list[Step]:
    """The DNN feature-model exporters, small frames, into their own registry.

    The registry must exist (the fork's exporters refuse a missing one): the demo starts it
    empty. The placeholders go first and the real exporters then take over their ids, as the
    real weights took over from the placeholders in the fork.
    """
    s, d, r = f"{out}/sample/dnn", f"{out}/models/dnn", f"{out}/reports"
    reg = f"--registry {d}/registry.json"
    return [
        Step(
            "export_fastdvdnet_pre_placeholder",
            f"--output {d}/fastdvdnet_pre_placeholder.onnx --height 32 --width 32 {reg}",
            f"{d}/fastdvdnet_pre_placeholder.onnx",
        ),
        Step(
            "export_transnet_v2_placeholder",
            f"--output {d}/transnet_v2_placeholder.onnx {reg}",
            f"{d}/transnet_v2_placeholder.onnx",
        ),
        Step(
            "export_fastdvdnet_pre",
            f"--upstream-dir {s}/fastdvdnet --weights-sha256 {FASTDVDNET_SAMPLE_SHA256} "
            f"--output {d}/fastdvdnet_pre.onnx --height 32 --width 32 {reg}",
            f"{d}/fastdvdnet_pre.onnx",
        ),
        Step(
            "export_transnet_v2",
            f"--upstream-dir {s}/transnetv2 --output {d}/transnet_v2.onnx {reg}",
            f"{d}/transnet_v2.onnx",
        ),
        Step(
            "export_tiny_models",
            f"--c2-ckpt {s}/c2_konvid/last.npz --c3-ckpt {s}/c3_konvid/last.npz "
            f"--out-dir {d} --frame-size 64 {reg}",
            f"{d}/nr_metric_v1.onnx",
        ),
        Step(
            "validate_model_registry",
            f"--registry {d}/registry.json --out-json {r}/registry/dnn_registry.json",
            f"{r}/registry/dnn_registry.json",
        ),
    ]


def quantization_and_registry_steps(out: str) -> list[Step]:
    """Int8 quantization of the exported KonViD head, its gates, and the registry validation.

    Only the static model is registered: a registry written by two runs would make the first
    run's record depend on what the second left there the time before.
    """
    t, m, r = (f"{out}/{d}" for d in ("tables", "models", "reports"))
    fp32, table = f"{m}/konvid_mos_head.onnx", f"{t}/k150k_enriched.parquet"
    dynamic, static = (f"{m}/konvid_mos_head.int8_{k}.onnx" for k in ("dynamic", "static"))
    return [
        Step(
            "ptq_dynamic",
            f"--fp32 {fp32} --out {dynamic} --report-out {r}/quant/ptq_dynamic.json",
            dynamic,
        ),
        Step(
            "ptq_static",
            f"--fp32 {fp32} --calibration-table {table} --calibration-rows 128 "
            f"--out {static} --registry {m}/int8_registry.json "
            f"--report-out {r}/quant/ptq_static.json",
            static,
        ),
        Step(
            "measure_quant_drop",
            f"--fp32 {fp32} --int8 {dynamic} --table {table} "
            f"--out-json {r}/quant/konvid_mos_head.int8_dynamic.json",
            f"{r}/quant/konvid_mos_head.int8_dynamic.json",
        ),
        Step(
            "measure_quant_drop_per_ep",
            f"--registry {m}/int8_registry.json --table {table} --hardware-tag demo-cpu "
            f"--out-json {r}/quant/per_ep.json --out-md {r}/quant/per_ep.md",
            f"{r}/quant/per_ep.json",
        ),
        Step(
            "validate_model_registry",
            f"--registry {m}/registry.json --out-json {r}/registry/registry.json",
            f"{r}/registry/registry.json",
        ),
        Step(
            "validate_model_registry",
            f"--registry {m}/int8_registry.json --out-json {r}/registry/int8_registry.json",
            f"{r}/registry/int8_registry.json",
        ),
    ]


def tiny_steps(out: str) -> list[Step]:
    """The vmaf_tiny family on the sample's per-frame tables: train, export, validate, LOSO.

    Few epochs, small batches and a larger step than the fork's defaults, so the lane stays a
    demo; the LOSO reports train on even fewer, and the multi-seed one on two seeds.
    """
    tables, m, r = f"{out}/sample/tiny", f"{out}/models/tiny", f"{out}/reports/tiny"
    netflix, ugc = f"{tables}/netflix_frames.parquet", f"{tables}/ugc_frames.parquet"
    fit = "--epochs 40 --batch-size 32 --lr 0.01"
    quick = "--epochs 12 --batch-size 32 --lr 0.01"
    steps = [
        Step(f"train_vmaf_tiny_{v}", f"--parquet {netflix} --out-ckpt {m}/vmaf_tiny_{v}.npz "
             f"--out-stats {m}/vmaf_tiny_{v}.stats.json {fit}", f"{m}/vmaf_tiny_{v}.npz")
        for v in ("v2", "v3", "v4")
    ]  # fmt: skip
    steps.append(
        Step(
            "train_vmaf_tiny_v5",
            f"--parquet-base {netflix} --parquet-extra {ugc} --out-ckpt {m}/vmaf_tiny_v5.npz "
            f"--out-stats {m}/vmaf_tiny_v5.stats.json {fit}",
            f"{m}/vmaf_tiny_v5.npz",
        )
    )
    steps += [
        Step(f"export_vmaf_tiny_{v}", f"--ckpt {m}/vmaf_tiny_{v}.npz --out-onnx "
             f"{m}/vmaf_tiny_{v}.onnx --out-sidecar {m}/vmaf_tiny_{v}.json",
             f"{m}/vmaf_tiny_{v}.onnx")
        for v in ("v2", "v3", "v4")
    ]  # fmt: skip
    older = {"v2": "", "v3": f"--v2-onnx {m}/vmaf_tiny_v2.onnx",
             "v4": f"--v2-onnx {m}/vmaf_tiny_v2.onnx --v3-onnx {m}/vmaf_tiny_v3.onnx"}  # fmt: skip
    steps += [
        Step(f"validate_vmaf_tiny_{v}", f"--onnx {m}/vmaf_tiny_{v}.onnx --parquet {netflix} "
             f"{older[v]} --out-json {r}/validate_{v}.json", f"{r}/validate_{v}.json")
        for v in ("v2", "v3", "v4")
    ]  # fmt: skip
    steps += [
        Step(f"eval_loso_vmaf_tiny_{v}", f"--parquet {netflix} --out-json {r}/loso_{v}.json "
             f"{quick}", f"{r}/loso_{v}.json")
        for v in ("v3", "v4")
    ]  # fmt: skip
    steps += [
        Step(
            "eval_loso_vmaf_tiny_v5",
            f"--parquet-base {netflix} --parquet-extra {ugc} --out-json {r}/loso_v5.json {quick}",
            f"{r}/loso_v5.json",
        ),
        Step(
            "eval_multiseed_v3_v4",
            f"--arch mlp_large --parquet {netflix} --seeds 0 1 --label demo "
            f"--out-json {r}/multiseed_mlp_large.json --epochs 6 --batch-size 32 --lr 0.01",
            f"{r}/multiseed_mlp_large.json",
        ),
    ]
    return steps


# The canonical six, the six with the SSIM/PSNR family, and every FULL feature: Phase-3's subsets.
SUBSETS = {
    "canonical6": "adm2,vif_scale0,vif_scale1,vif_scale2,vif_scale3,motion2",
    "canonical6_ssim": "adm2,vif_scale0,vif_scale1,vif_scale2,vif_scale3,motion2,float_ssim,"
    "float_ms_ssim,psnr_y",
    "full": ",".join(FULL_FEATURES),
}


def audit_steps(s: str, c: str, t: str, m: str, r: str) -> list[Step]:
    """Audits, sweeps, the CHUG preflight and calibration, over what the chain above made."""
    a = f"{r}/audits"
    subsets = " ".join(f"--subset {name}={features}" for name, features in SUBSETS.items())
    return [
        Step(
            "feature_correlation",
            f"--table {t}/k150k_enriched.parquet --target mos --top-k 8 "
            f"--out-json {a}/feature_correlation.json",
            f"{a}/feature_correlation.json",
        ),
        Step(
            "phase3_subset_sweep",
            f"--table {t}/k150k_enriched.parquet {subsets} --seeds 0 1 2 "
            f"--out-json {a}/phase3_subset_sweep.json",
            f"{a}/phase3_subset_sweep.json",
        ),
        Step(
            "chug_extract_features",
            f"--chug-jsonl {s}/chug/metadata.jsonl --cache-dir {s}/chug/vmaf_cache "
            f"--features {CHUG_FEATURES} --out {t}/chug_features.parquet "
            f"--split-out {t}/chug_split.json --audit-out {a}/chug_hdr_audit.json",
            f"{t}/chug_split.json",
        ),
        Step(
            "calibrate_phase_f_recipes",
            f"--corpus {c}/encode_grid.jsonl --max-rows 1000 --out {m}/phase_f_recipes.json",
            f"{m}/phase_f_recipes.json",
        ),
        Step(
            "calibrate_nr_threshold",
            f"--corpus-dir {s}/bvi_dvc --model {m}/konvid_mos_head.onnx --crf-grid 22,27,32,37 "
            f"--out-json {m}/nr_metric_v1.json --report-md {r}/nr_threshold.md",
            f"{m}/nr_metric_v1.json",
        ),
    ]


def tables_steps(out: str) -> list[Step]:
    """The predictor's CV gate, the derived tables beside the chain's, and their signal mix."""
    s, c, t, m = (f"{out}/{d}" for d in ("sample", "corpora", "tables", "models"))
    d, r = f"{t}/derived", f"{out}/reports/tables"
    codecs = " ".join(f"--codec {codec}" for codec in ("libx264", "libx265", "libsvtav1"))
    signals = " ".join(
        f"--signal {name}={d}/{name}.parquet"
        for name in ("mos_labels", "saliency", "second_opinion")
    )
    return [
        Step(
            "train_predictor_v2_realcorpus",
            f"--corpus-root {s}/predictor {codecs} --epochs 60 "
            f"--report-out {r}/predictor_v2_realcorpus.json",
            f"{r}/predictor_v2_realcorpus.json",
        ),
        Step(
            "materialize_mos_labels",
            f"--table {t}/k150k_enriched.parquet --labels {c}/mos_aggregated.jsonl "
            f"--corpus konvid-150k --out {d}/mos_labels.parquet --report-out {r}/mos_labels.json",
            f"{d}/mos_labels.parquet",
        ),
        Step(
            "materialize_saliency_features",
            f"--table {t}/k150k_enriched.parquet --cache-dir {s}/k150k/vmaf_cache "
            f"--out {d}/saliency.parquet --report-out {r}/saliency.json",
            f"{d}/saliency.parquet",
        ),
        Step(
            "materialize_second_opinion_features",
            f"--table {t}/chug_enriched.parquet --mos-scale 0-100 "
            f"--model {m}/konvid_mos_head.onnx --out {d}/second_opinion.parquet "
            f"--report-out {r}/second_opinion.json",
            f"{d}/second_opinion.parquet",
        ),
        Step(
            "signal_mix_audit",
            f"--table {t}/combined.parquet {signals} --out-json {r}/signal_mix.json",
            f"{r}/signal_mix.json",
        ),
    ]


def saliency_steps(out: str) -> list[Step]:
    """Both saliency students on the sample's DUTS root (tiny crops, two epochs), the v1
    validation against the chain's registry, its masks and their per-block IoU."""
    duts, m, r = f"{out}/sample/saliency/duts", f"{out}/models/saliency", f"{out}/reports/saliency"
    small = "--epochs 2 --batch-size 4 --crop-size 32 --min-val-images 2 --parity-size 32"
    steps = [
        Step(
            script,
            f"--duts-root {duts} --output {m}/{name}.onnx --metrics-out {m}/{name}.json {small}",
            f"{m}/{name}.onnx",
        )
        for script, name in (
            ("train_saliency_student", "saliency_student_v1"),
            ("train_saliency_student_v2", "saliency_student_v2"),
        )
    ]
    return [
        *steps,
        Step(
            "validate_saliency_student",
            f"--onnx {m}/saliency_student_v1.onnx --parity-size 32 "
            f"--registry {out}/models/registry.json --out-json {r}/validation.json",
            f"{r}/validation.json",
        ),
        Step(
            "predict_saliency_masks",
            f"--onnx {m}/saliency_student_v1.onnx --duts-root {duts} --out-dir {r}/masks",
            f"{r}/masks",
        ),
        Step(
            "eval_saliency_per_mb",
            f"--pred-dir {r}/masks/pred --gt-dir {r}/masks/gt --block-size 8 "
            f"--out-json {r}/per_mb.json",
            f"{r}/per_mb.json",
        ),
    ]


def fr_steps(out: str) -> list[Step]:
    """The FR regressors v1, v2 and v3, the v2 deep ensemble and its interval coverage; small
    epochs. Each writes a registry of its own: one shared by several would make a run's record
    depend on what the later steps left in it the time before."""
    s, c, t = (f"{out}/{d}" for d in ("sample", "corpora", "tables"))
    m, r = f"{out}/models/fr", f"{out}/reports/fr"
    grid = f"{c}/encode_grid.jsonl"
    return [
        Step(
            "train_fr_regressor",
            f"--parquet {t}/netflix_frames.parquet --epochs 150 --batch-size 16 --lr 0.005 "
            f"--out-onnx {m}/fr_regressor_v1.onnx --out-sidecar {m}/fr_regressor_v1.json "
            f"--registry {m}/registry.json --metrics-out {r}/fr_regressor_v1_metrics.json",
            f"{r}/fr_regressor_v1_metrics.json",
        ),
        Step(
            "train_fr_regressor_v2",
            f"--corpus {grid} --epochs 120 --batch-size 16 --lr 0.005 "
            f"--out-onnx {m}/fr_regressor_v2.onnx --out-sidecar {m}/fr_regressor_v2.json "
            f"--registry {m}/registry_v2.json --metrics-out {r}/fr_regressor_v2_metrics.json",
            f"{r}/fr_regressor_v2_metrics.json",
        ),
        Step(
            "train_fr_regressor_v3",
            f"--corpus {grid} --epochs 100 --batch-size 16 --lr 0.002 "
            f"--out-onnx {m}/fr_regressor_v3.onnx --out-sidecar {m}/fr_regressor_v3.json "
            f"--registry {m}/registry_v3.json",
            f"{m}/fr_regressor_v3.onnx",
        ),
        Step(
            "train_fr_regressor_v2_ensemble",
            f"--corpus {s}/fr/ensemble_train.parquet --ensemble-size 3 --epochs 80 "
            f"--batch-size 32 --conformal-calibration-frac 0.2 --out-dir {m} "
            f"--registry {m}/registry_ensemble.json",
            f"{m}/fr_regressor_v2_ensemble_v1.json",
        ),
        Step(
            "eval_probabilistic_proxy",
            f"--manifest {m}/fr_regressor_v2_ensemble_v1.json "
            f"--parquet {s}/fr/ensemble_eval.parquet --metrics-out {r}/probabilistic_proxy.json",
            f"{r}/probabilistic_proxy.json",
        ),
    ]


def card_steps(out: str) -> list[Step]:
    """The shipped models' cards: last, since they read the records of every step before."""
    m, r, cards = f"{out}/models", f"{out}/reports", f"{out}/cards"
    return [
        Step(
            "render_model_card",
            f"--model {m}/konvid_mos_head.onnx --evidence {r}/konvid_validation.json "
            f"--root {out} --out {cards}/konvid_mos_head.md",
            f"{cards}/konvid_mos_head.md",
        ),
        Step(
            "render_model_card",
            f"--model {m}/ensemble/fr_regressor_v2_ensemble_v1.json --root {out} "
            f"--out {cards}/fr_regressor_v2_ensemble_v1.md",
            f"{cards}/fr_regressor_v2_ensemble_v1.md",
        ),
    ]


def run_step(step: Step) -> tuple[int, dict[str, object]]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    program = (
        [vmaf_train_command()]
        if step.script == VMAF_TRAIN
        else [sys.executable, "-m", f"ai.scripts.{step.script}"]
    )
    done = subprocess.run(
        [*program, *shlex.split(step.command)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"demo: {step.script} exited with {done.returncode}")
    sidecar = json.loads((ROOT / step.sidecar_path).read_text("utf-8"))
    validate(sidecar)
    # A trainer whose gate failed exits 0, as the fork's does: the gate, not the exit code,
    # is what stops the demo from building on a model that did not pass.
    failed = [name for name, gate in sidecar["run_provenance"]["outcome"]["gates"].items()
              if not gate.get("passed")]  # fmt: skip
    if failed:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"demo: {step.script}: gate {', '.join(failed)} failed")
    return done.returncode, sidecar


def gates_of(sidecar: dict[str, object]) -> str:
    block = sidecar["run_provenance"]
    assert isinstance(block, dict)
    gates = block["outcome"]["gates"]
    return ", ".join(f"{n}={'pass' if g['passed'] else 'FAIL'}" for n, g in gates.items()) or "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/demo", help="folder for every artifact")
    parser.add_argument(
        "--jobs",
        type=int,
        default=max(1, min(4, os.cpu_count() or 1)),
        help="family lanes run side by side (default: the machine's cores, at most 4)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    if any(ch.isspace() for ch in args.out):
        parser.error("--out must not contain whitespace: the steps are written as shell words")
    started = time.monotonic()
    config = ROOT / fit_config_path(args.out)
    config.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(config, FIT_CONFIG.encode("utf-8"))
    registry = ROOT / dnn_registry_path(args.out)
    registry.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(registry, EMPTY_REGISTRY)
    atomic_write(ROOT / qat_config_path(args.out), QAT_CONFIG.encode("utf-8"))
    results: dict[int, dict[str, object]] = {}
    plan = stages(args.out)
    order = [step for stage in plan for lane in stage for step in lane]
    index = {id(step): i for i, step in enumerate(order)}

    def run_lane(lane: list[Step]) -> None:
        for step in lane:
            results[index[id(step)]] = run_step(step)[1]

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for stage in plan:
            for future in [pool.submit(run_lane, lane) for lane in stage]:
                future.result()  # the first failed lane stops the demo, as one step did
    rows = []
    for i, step in enumerate(order):
        outcome = results[i]["run_provenance"]["outcome"]  # type: ignore[index]
        rows.append(
            (
                step.script,
                step.artifact,
                Path(step.sidecar_path).name,
                outcome["status"],
                gates_of(results[i]),
            )
        )
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    header = ("script", "artifact", "sidecar", "outcome")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + "  gates")
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)) + f"  {row[4]}")
    signed = sign_shipped(args.out)
    print(f"\n{len(rows)} runs, every sidecar valid, in {time.monotonic() - started:.1f} s")
    print(signed)
    return 0


# The models the demo ships, signed with a key it makes for itself (never a key to trust).
SHIPPED = ("models/konvid_mos_head.onnx", "models/konvid_mos_head.int8_static.onnx")


def sign_shipped(out: str) -> str:
    """Sign each shipped model (``provenance attest``) with a fresh P-256 key written to
    ``<out>/keys/``, then check each signature as a consumer would; a line saying what was done.

    The key is new on every demo, so the ``.sig`` and ``.intoto.jsonl`` files differ from one
    demo to the next (ECDSA signatures differ even under one key); the records do not."""
    try:
        import model_signing  # noqa: F401 -- only to know the sign extra is there
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError:
        return "models not signed: pip install 'provenance-sidecar[sign]' for provenance attest"
    keys = ROOT / out / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    private, public = keys / "demo-signing.pem", keys / "demo-signing.pub.pem"
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    atomic_write(private, pem, mode=0o600)  # never readable by others, not even for a moment
    atomic_write(
        public,
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for model in SHIPPED:
        path = f"{out}/{model}"
        for command in (
            # --outside-root: a demo written outside the checkout names its files by
            # absolute paths, as its records do.
            ["attest", path, "--key", str(private), "--outside-root"],
            ["verify", path, "--attestation", f"{path}.intoto.jsonl", "--public-key",
             str(public), "--quiet", "--outside-root"],
        ):  # fmt: skip
            done = subprocess.run(
                [sys.executable, "-m", "provenance", *command],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                sys.stderr.write(done.stdout + done.stderr)
                raise SystemExit(f"demo: provenance {command[0]} {path} exited {done.returncode}")
    return f"{len(SHIPPED)} shipped models signed and verified with {out}/keys/demo-signing.pem"


if __name__ == "__main__":
    sys.exit(main())
