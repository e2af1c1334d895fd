"""The Hydra adapter: real ``@hydra.main`` scripts with a config group and overrides."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FAKES, digests_of, load_sidecar, project_with, run_with_env, shown

KEY = "wb-8c1d4e7f2a9b3065"


def hydra_project(folder: Path) -> Path:
    project_with(folder, "hydra_app", "hydra_outside")
    if not (folder / "hydra_conf").exists():
        shutil.copytree(FAKES / "hydra_conf", folder / "hydra_conf")
    (folder / "train.csv").write_text("adm2,mos\n0.9,4.2\n")
    (folder / "features.csv").write_text("adm2\n")
    return folder


def hydra_run(folder: Path, script: str, *overrides: str) -> subprocess.CompletedProcess[str]:
    return run_with_env(folder / f"{script}.py", *overrides, cwd=folder, env={})


def block_in(folder: Path) -> dict:
    return load_sidecar(folder / "model.txt.manifest.json")["run_provenance"]


@pytest.fixture(scope="module")
def inside(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    folder = hydra_project(tmp_path_factory.mktemp("hydra"))
    proc = hydra_run(folder, "hydra_app", "model=lasso", "trainer.epochs=5", f"wandb.api_key={KEY}")
    return folder, proc


class TestDecoratorUnderHydraMain:
    def test_overrides_are_the_args_and_argv_is_redacted(self, inside):
        folder, proc = inside
        assert proc.returncode == 0, proc.stderr
        block = block_in(folder)
        assert block["args"] == {
            "model": "lasso",
            "trainer.epochs": "5",
            "wandb.api_key": "<redacted>",
        }
        assert block["argv"] == ["model=lasso", "trainer.epochs=5", "wandb.api_key=<redacted>"]

    def test_primary_and_group_files_are_hashed(self, inside):
        folder, _ = inside
        files = block_in(folder)["config"]["files"]
        assert [f["path"] for f in files] == [
            "hydra_conf/config.yaml",
            "hydra_conf/model/lasso.yaml",
        ]
        for entry in files:
            digests = {k: entry[k] for k in ("size_bytes", "sha256", "blake3")}
            assert digests == digests_of(folder / entry["path"])

    def test_the_composed_config_is_resolved(self, inside):
        folder, _ = inside
        resolved = block_in(folder)["config"]["resolved"]
        assert resolved["trainer"]["epochs"] == 5
        assert resolved["model"] == {"kind": "lasso", "alpha": 0.1}
        assert resolved["wandb"] == {"project": "vmaf", "api_key": "<redacted>"}
        assert "hydra" not in resolved

    def test_dotted_and_callable_declarations_resolve(self, inside):
        folder, _ = inside
        block = block_in(folder)
        assert block["inputs"]["train"]["sha256"] == digests_of(folder / "train.csv")["sha256"]
        assert block["inputs"]["features"]["path"] == "features.csv"
        assert block["outputs"]["model"]["written_by_run"] is True

    def test_the_key_is_nowhere(self, inside):
        folder, proc = inside
        record = folder / "model.txt.manifest.json"
        show = shown(record)
        assert show.returncode == 0, show.stderr
        assert "#2             hydra_conf/model/lasso.yaml  (23 B, blake3" in show.stdout
        for text in (record.read_text(), proc.stderr, show.stdout):
            assert KEY not in text

    def test_rerun_elsewhere_is_byte_identical(self, inside, tmp_path):
        folder, _ = inside
        again = hydra_project(tmp_path / "again")
        proc = hydra_run(
            again, "hydra_app", "model=lasso", "trainer.epochs=5", f"wandb.api_key={KEY}"
        )
        assert proc.returncode == 0, proc.stderr
        first = (folder / "model.txt.manifest.json").read_bytes()
        assert (again / "model.txt.manifest.json").read_bytes() == first

    @pytest.mark.parametrize(
        ("end", "code", "error"),
        [
            ("raise", 1, {"type": "RuntimeError", "message": "diverged"}),
            ("exit", 3, None),
            ("gate", 5, None),
        ],
    )
    def test_outcomes_as_with_argparse(self, tmp_path, end, code, error):
        folder = hydra_project(tmp_path)
        proc = hydra_run(folder, "hydra_app", f"trainer.end={end}")
        assert proc.returncode == code, proc.stderr
        outcome = block_in(folder)["outcome"]
        assert (outcome["status"], outcome["exit_code"], outcome["error"]) == (
            "failed",
            code,
            error,
        )
        assert ("rmse" in outcome["gates"]) == (end == "gate")

    def test_a_short_key_is_hidden_from_the_error_that_repeats_it(self, tmp_path):
        folder = hydra_project(tmp_path)
        proc = hydra_run(folder, "hydra_app", "trainer.end=login", "wandb.api_key=pw7")
        assert proc.returncode == 1, proc.stderr
        record = (folder / "model.txt.manifest.json").read_text()
        error = json.loads(record)["run_provenance"]["outcome"]["error"]
        assert error == {
            "type": "ConnectionError",
            "message": "the tracker refused the key <redacted>",
        }
        assert "pw7" not in record


class TestDecoratorAroundHydraMain:
    def test_hydra_s_own_parser_is_not_the_cli(self, tmp_path):
        folder = hydra_project(tmp_path)
        proc = hydra_run(folder, "hydra_outside", "trainer.epochs=4", f"wandb.api_key={KEY}")
        assert proc.returncode == 0, proc.stderr
        block = block_in(folder)
        assert block["args"] == {"trainer.epochs": "4", "wandb.api_key": "<redacted>"}
        assert block["inputs"]["train"]["path"] == "train.csv"
        assert [f["path"] for f in block["config"]["files"]] == [
            "hydra_conf/config.yaml",
            "hydra_conf/model/ridge.yaml",
        ]
        assert KEY not in json.dumps(block)

    @pytest.mark.parametrize("flag", [["--help"], ["--cfg", "job"]])
    def test_no_job_no_record(self, tmp_path, flag):
        folder = hydra_project(tmp_path)
        proc = hydra_run(folder, "hydra_outside", *flag)
        assert proc.returncode == 0, proc.stderr
        assert list(folder.glob("model.txt*")) == []
