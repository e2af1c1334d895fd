"""The legacy LOSO evaluations (ADR-0661): fold models, baselines, reports and their records."""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from ai.evaluation.loso import ARCHS, CLIPS, fold_model_path
from ai.sample.evaluation import CONDITIONS, FRAMES, write_netflix_loso
from ai.sample.generator import Tree
from tests.conftest import load_sidecar, records_and, run_python, run_script, sidecar_of

SMALL = "eval_loso_mlp_small"
THREE = "eval_loso_3arch"
SMALL_REPORT = "loso_mlp_small_eval"
THREE_REPORT = "loso_3arch_eval"
TRAIN = "train_loso_fold_models"
CLIP_FRAMES = len(CONDITIONS) * FRAMES


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tree = Tree(tmp_path_factory.mktemp("sample"))
    write_netflix_loso(tree, np.random.default_rng([0, 17]))
    return tree.root / "netflix_loso"


def train(data: Path, out: Path, *extra: object):
    return run_script(
        TRAIN, "--data-root", data, "--archs", "mlp_small,mlp_medium,linear",
        "--training-runs-dir", out / "runs", "--mlp-small-baseline", out / "v1.onnx",
        "--mlp-medium-baseline", out / "v1_medium.onnx", "--epochs", "6", "--batch-size", "16",
        "--lr", "0.05", "--out-json", out / "training.json", *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def trained(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained")
    proc = train(data_root, out)
    assert proc.returncode == 0, proc.stderr
    return out


def eval_small(data: Path, models: Path, out: Path, *extra: object):
    return run_script(
        SMALL, "--data-root", data, "--loso-dir", models / "runs/loso_mlp_small",
        "--mlp-small-baseline", models / "v1.onnx",
        "--mlp-medium-baseline", models / "v1_medium.onnx", "--out", out, *extra,
    )  # fmt: skip


def report_of(out: Path, name: str) -> dict[str, Any]:
    return json.loads((out / f"{name}.json").read_text())


def copy_models(trained: Path, to: Path) -> Path:
    shutil.copytree(trained / "runs", to / "runs")
    for name in ("v1.onnx", "v1_medium.onnx"):
        shutil.copy(trained / name, to / name)
    return to


class TestFoldTraining:
    def test_every_fold_and_baseline_is_an_onnx_model_of_the_fork_interface(self, trained):
        report = report_of(trained, "training")
        for arch, sizes in ARCHS.items():
            for clip in CLIPS:
                path = fold_model_path(trained / "runs", arch, clip)
                facts = report["folds"][arch][clip]
                assert facts["sha256"] == sha256(path)
                assert facts["train_rows"] == CLIP_FRAMES * (len(CLIPS) - 1)  # the clip left out
                model = onnx.load(str(path))
                assert model.opset_import[0].version == 17
                (inp,), (out,) = model.graph.input, model.graph.output
                assert inp.name == "features"
                assert out.name == "vmaf"
                dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
                assert dims == ["N", 6]
                assert [d.dim_param for d in out.type.tensor_type.shape.dim] == ["N"]
                gemms = [i for i in model.graph.initializer if i.name.endswith(".weight")]
                assert [list(g.dims) for g in gemms] == [
                    [a, b] for a, b in itertools.pairwise(sizes)
                ]
        assert report["baselines"]["mlp_small_v1"]["train_clips"] == [
            "BigBuckBunny", "BirdsInCage", "CrowdRun", "ElFuente2", "FoxBird", "Seeking",
        ]  # fmt: skip
        assert report["baselines"]["mlp_medium_v1"]["arch"] == "mlp_medium"

    def test_the_record_names_each_model_it_wrote_and_embeds_itself(self, trained, data_root):
        report = report_of(trained, "training")
        block = load_sidecar(sidecar_of(trained / "training.json"))["run_provenance"]
        written = {Path(e["path"]).name + str(Path(e["path"]).parent.name): e["sha256"]
                   for e in block["outputs"]["fold_models"]}  # fmt: skip
        assert len(written) == len(ARCHS) * len(CLIPS)
        assert block["outputs"]["mlp_small_baseline"]["sha256"] == sha256(trained / "v1.onnx")
        assert block["inputs"]["data_root"]["kind"] == "directory"
        assert report["run_provenance"]["outputs"]["report"]["embedded_here"] is True

    def test_training_twice_writes_the_same_bytes(self, trained, data_root, tmp_path):
        proc = train(data_root, tmp_path)
        assert proc.returncode == 0, proc.stderr
        for arch in ARCHS:
            path = fold_model_path(Path("runs"), arch, "Seeking")
            assert (tmp_path / path).read_bytes() == (trained / path).read_bytes()
        assert (tmp_path / "v1.onnx").read_bytes() == (trained / "v1.onnx").read_bytes()

    def test_a_data_root_lacking_a_clip_writes_nothing(self, data_root, tmp_path):
        partial = tmp_path / "netflix"
        shutil.copytree(data_root, partial)
        for path in (partial / "dis").glob("Tennis_*"):
            path.unlink()
        proc = train(partial, tmp_path / "out")
        assert proc.returncode == 2
        assert proc.stderr.strip().splitlines() == [
            f"{TRAIN}.py: error: {partial}: no pairs of clip(s) Tennis under dis/"
        ]
        out = tmp_path / "out"
        assert records_and(out, deep=True) == ["training.json.manifest.json"]
        block = load_sidecar(sidecar_of(out / "training.json"))["run_provenance"]
        assert block["outcome"]["exit_code"] == 2
        assert block["outputs"]["report"]["exists"] is False


@pytest.fixture(scope="module")
def evaluated(data_root: Path, trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval")
    proc = eval_small(data_root, trained, out)
    assert proc.returncode == 0, proc.stderr
    return out


class TestEvalLosoMlpSmall:
    def test_report_holds_each_fold_on_its_held_out_clip_and_both_baselines(self, evaluated):
        report = report_of(evaluated, SMALL_REPORT)
        assert list(report) == ["generated", "corpus", "loso_per_fold", "loso_aggregate",
                                "baselines", "run_provenance"]  # fmt: skip
        assert report["generated"] is None  # wall time would make every report differ
        assert list(report["loso_per_fold"]) == list(CLIPS)
        for fold in report["loso_per_fold"].values():
            assert set(fold) == {"n", "plcc", "srocc", "rmse"}
            assert fold["n"] == CLIP_FRAMES
        plccs = [f["plcc"] for f in report["loso_per_fold"].values()]
        agg = report["loso_aggregate"]
        assert agg["mean_plcc"] == pytest.approx(np.mean(plccs), abs=1e-6)
        assert agg["std_plcc"] == pytest.approx(np.std(plccs, ddof=1), abs=1e-6)
        assert set(agg) == {f"{s}_{m}" for s in ("mean", "std") for m in ("plcc", "srocc", "rmse")}
        assert list(report["baselines"]) == ["mlp_small_v1", "mlp_medium_v1"]
        small = report["baselines"]["mlp_small_v1"]
        assert small["model_path"].endswith("v1.onnx")
        assert list(small["per_clip"]) == list(CLIPS)
        assert small["all_clips_concat"]["n"] == CLIP_FRAMES * len(CLIPS)
        md = (evaluated / f"{SMALL_REPORT}.md").read_text()
        assert "| **mean ± std** |" in md
        assert md.count("| **all clips (concat)** | 216 |") == 2
        assert "## Baseline mlp_medium_v1" in md

    def test_a_fold_is_scored_by_its_own_model_on_its_own_clip(self, evaluated, trained,
                                                               data_root):  # fmt: skip
        import onnxruntime as ort

        from ai.evaluation.loso import load_clips

        data, _ = load_clips(data_root, data_root / "vmaf_cache")
        path = fold_model_path(trained / "runs", "mlp_small", "FoxBird")
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        pred = session.run(None, {"features": data["FoxBird"].x.astype(np.float32)})[0]
        want = np.sqrt(np.mean((pred - data["FoxBird"].y) ** 2))
        got = report_of(evaluated, SMALL_REPORT)["loso_per_fold"]["FoxBird"]["rmse"]
        assert got == pytest.approx(want, abs=1e-4)

    def test_the_record_leads_to_every_fold_model_baseline_and_the_data(
        self, evaluated, trained, data_root
    ):
        block = load_sidecar(sidecar_of(evaluated / f"{SMALL_REPORT}.json"))["run_provenance"]
        folds = block["inputs"]["fold_models"]
        assert [e["sha256"] for e in folds] == [
            sha256(fold_model_path(trained / "runs", "mlp_small", clip)) for clip in CLIPS
        ]
        training = load_sidecar(sidecar_of(trained / "training.json"))["run_provenance"]
        produced = {e["sha256"] for e in training["outputs"]["fold_models"]}
        assert {e["sha256"] for e in folds} <= produced  # lineage: eval input = trainer output
        for name, file in (("mlp_small_baseline", "v1.onnx"),
                           ("mlp_medium_baseline", "v1_medium.onnx")):  # fmt: skip
            assert block["inputs"][name]["sha256"] == sha256(trained / file)
            assert training["outputs"][name]["sha256"] == sha256(trained / file)
        assert block["inputs"]["data_root"]["path"] == str(data_root)
        assert block["inputs"]["data_root"]["kind"] == "directory"
        assert set(block["outputs"]) == {"report", "report_md"}
        assert block["outputs"]["report_md"]["sha256"] == sha256(evaluated / f"{SMALL_REPORT}.md")
        embedded = report_of(evaluated, SMALL_REPORT)["run_provenance"]
        assert embedded["inputs"]["fold_models"] == folds
        assert embedded["outputs"]["report"]["embedded_here"] is True

    def test_a_second_run_is_byte_identical_even_with_volatile_time_asked_for(
        self, evaluated, data_root, trained, tmp_path
    ):
        first = eval_small(data_root, trained, tmp_path)
        assert first.returncode == 0, first.stderr
        files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        again = eval_small(data_root, trained, tmp_path)
        assert again.returncode == 0, again.stderr
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files
        # Asked for, the time goes into the sidecar only: the report's bytes stay the same.
        timed = run_python(
            "-c",
            "import os, sys; os.environ['PROVENANCE_VOLATILE'] = 'time'; "
            "from ai.scripts.eval_loso_mlp_small import main; sys.exit(main(sys.argv[1:]))",
            "--data-root", data_root, "--loso-dir", trained / "runs/loso_mlp_small",
            "--mlp-small-baseline", trained / "v1.onnx",
            "--mlp-medium-baseline", trained / "v1_medium.onnx", "--out", tmp_path,
        )  # fmt: skip
        assert timed.returncode == 0, timed.stderr
        sidecar = load_sidecar(sidecar_of(tmp_path / f"{SMALL_REPORT}.json"))
        assert "started_at" in sidecar["run_provenance"]["volatile"]
        assert (tmp_path / f"{SMALL_REPORT}.md").read_bytes() == files[f"{SMALL_REPORT}.md"]
        report = report_of(tmp_path, SMALL_REPORT)
        assert report["generated"] is None
        assert "volatile" not in report["run_provenance"]
        assert json.loads(files[f"{SMALL_REPORT}.json"])["loso_per_fold"] == report["loso_per_fold"]

    def test_a_renamed_model_finds_its_external_weights_beside_it(self, data_root, trained,
                                                                  evaluated, tmp_path):  # fmt: skip
        models = copy_models(trained, tmp_path / "models")
        fold = fold_model_path(models / "runs", "mlp_small", "Tennis")
        proto = onnx.load(str(fold))
        saved = fold.with_name("exported.onnx")
        onnx.save(proto, str(saved), save_as_external_data=True, location="exported.onnx.data",
                  size_threshold=0)  # fmt: skip
        fold.unlink()
        saved.rename(fold)  # its tensors still name exported.onnx.data
        saved.with_name("exported.onnx.data").rename(fold.with_name(f"{fold.name}.data"))
        proc = eval_small(data_root, models, tmp_path / "out")
        assert proc.returncode == 0, proc.stderr
        report = report_of(tmp_path / "out", SMALL_REPORT)
        assert report["loso_per_fold"] == report_of(evaluated, SMALL_REPORT)["loso_per_fold"]
        block = load_sidecar(sidecar_of(tmp_path / "out" / f"{SMALL_REPORT}.json"))[
            "run_provenance"
        ]
        (weights,) = block["inputs"]["external_weights"]
        assert weights["path"].endswith("fold_Tennis/mlp_small_final.onnx.data")

    @pytest.mark.parametrize(
        "breakage",
        ["no_data_root", "no_fold", "no_baseline", "not_onnx", "wrong_shape", "no_cache_entry"],
    )
    def test_bad_input_exits_2_with_one_line_and_writes_nothing(
        self, data_root, trained, tmp_path, breakage
    ):
        models = copy_models(trained, tmp_path / "models")
        data = data_root
        fold = fold_model_path(models / "runs", "mlp_small", "CrowdRun")
        if breakage == "no_data_root":
            data = tmp_path / "nowhere"
        elif breakage == "no_fold":
            fold.unlink()
        elif breakage == "no_baseline":
            (models / "v1_medium.onnx").unlink()
        elif breakage == "not_onnx":
            fold.write_bytes(b"not a model")
        elif breakage == "wrong_shape":  # a [N, 1] output where the targets are [N]
            shutil.copy(fold_model_path(models / "runs", "linear", "CrowdRun"), fold)
            proto = onnx.load(str(fold))
            squeeze = next(n for n in proto.graph.node if n.op_type == "Squeeze")
            proto.graph.node.remove(squeeze)
            identity = next(n for n in proto.graph.node if n.op_type == "Identity")
            identity.input[0] = squeeze.input[0]
            del proto.graph.output[0].type.tensor_type.shape.dim[:]
            onnx.save(proto, str(fold))
        else:
            data = tmp_path / "netflix"
            shutil.copytree(data_root, data)
            (data / "vmaf_cache" / "Seeking_25fps__50_720_1050.json").unlink()
        out = tmp_path / "out"
        proc = eval_small(data, models, out)
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"{SMALL}.py: error: ")
        assert "Traceback" not in proc.stderr
        assert_only_the_failed_record(out, SMALL_REPORT)


class TestEvalLoso3Arch:
    def test_missing_folds_are_named_and_an_arch_with_none_has_no_aggregate(
        self, data_root, trained, evaluated, tmp_path
    ):
        runs = copy_models(trained, tmp_path / "models") / "runs"
        fold_model_path(runs, "mlp_medium", "Seeking").unlink()
        shutil.rmtree(runs / "loso_linear")
        proc = run_script(THREE, "--data-root", data_root, "--training-runs-dir", runs,
                          "--out", tmp_path / "out")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "MISSING mlp_medium fold Seeking" in proc.stdout
        assert proc.stdout.count("MISSING linear fold") == len(CLIPS)
        report = report_of(tmp_path / "out", THREE_REPORT)
        assert list(report) == ["generated", "corpus", "archs", "run_provenance"]
        archs = report["archs"]
        assert list(archs) == ["mlp_small", "mlp_medium", "linear"]
        assert len(archs["mlp_small"]["per_fold"]) == len(CLIPS)
        assert "Seeking" not in archs["mlp_medium"]["per_fold"]
        assert len(archs["mlp_medium"]["per_fold"]) == len(CLIPS) - 1
        assert archs["mlp_medium"]["missing"] == ["Seeking"]
        assert archs["linear"] == {"per_fold": {}, "aggregate": None, "missing": list(CLIPS)}
        small = report_of(evaluated, SMALL_REPORT)
        assert archs["mlp_small"]["per_fold"] == small["loso_per_fold"]
        assert archs["mlp_small"]["aggregate"] == small["loso_aggregate"]
        block = load_sidecar(sidecar_of(tmp_path / "out" / f"{THREE_REPORT}.json"))[
            "run_provenance"
        ]
        recorded = [Path(e["path"]) for e in block["inputs"]["fold_models"]]
        assert len(recorded) == 2 * len(CLIPS) - 1  # the models read, and only those
        assert all(e["sha256"] == sha256(Path(e["path"])) for e in block["inputs"]["fold_models"])
        md = (tmp_path / "out" / f"{THREE_REPORT}.md").read_text()
        assert "| linear | 0 | — | — | — |" in md
        assert "| Seeking | — | — | — | — |" in md

    def test_one_fold_has_a_standard_deviation_of_zero(self, data_root, trained, tmp_path):
        runs = copy_models(trained, tmp_path / "models") / "runs"
        for clip in CLIPS[1:]:
            fold_model_path(runs, "linear", clip).unlink()
        proc = run_script(THREE, "--data-root", data_root, "--training-runs-dir", runs,
                          "--out", tmp_path / "out")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        agg = report_of(tmp_path / "out", THREE_REPORT)["archs"]["linear"]["aggregate"]
        assert agg["std_plcc"] == agg["std_srocc"] == agg["std_rmse"] == 0.0

    def test_a_missing_data_root_exits_2_and_writes_nothing(self, trained, tmp_path):
        proc = run_script(THREE, "--data-root", tmp_path / "nowhere", "--training-runs-dir",
                          trained / "runs", "--out", tmp_path / "out")  # fmt: skip
        assert proc.returncode == 2
        assert proc.stderr.strip() == f"{THREE}.py: error: {tmp_path / 'nowhere'}: no such folder"
        assert_only_the_failed_record(tmp_path / "out", THREE_REPORT)


def assert_only_the_failed_record(out: Path, name: str) -> None:
    """No report, no Markdown: only the record of the run that refused its input."""
    assert records_and(out) == [f"{name}.json.manifest.json"]
    block = load_sidecar(out / f"{name}.json.manifest.json")["run_provenance"]
    assert block["outcome"]["exit_code"] == 2
    assert block["outputs"]["report"]["exists"] is False
    assert block["outputs"]["report_md"]["exists"] is False
