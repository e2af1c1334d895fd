"""The HfArgumentParser adapter: a transformers-style script given a JSON file of arguments."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import digests_of, load_sidecar, project_with, run_with_env

TOKEN = "hf-token-8c1d4e7f2a9b3065"


def project(folder: Path, **given: object) -> Path:
    project_with(folder, "hf_app")
    (folder / "train.csv").write_text("sentence,label\nok,1\n")
    arguments = {"train_file": "train.csv", "num_train_epochs": 5, "output_dir": "run", **given}
    (folder / "args.json").write_text(json.dumps({**arguments, "hub_token": TOKEN}))
    return folder


def train(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return run_with_env(folder / "hf_app.py", *argv, cwd=folder, env={})


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    folder = project(tmp_path_factory.mktemp("hf"))
    return folder, train(folder, "args.json")


def block(folder: Path) -> dict:
    return load_sidecar(folder / "run" / "model.txt.manifest.json")["run_provenance"]


class TestParseJsonFile:
    def test_the_dataclass_fields_are_the_args(self, done):
        folder, proc = done
        assert proc.returncode == 0, proc.stderr
        assert block(folder)["args"] == {
            "train_file": "train.csv",
            "max_seq_length": 128,
            "output_dir": "run",
            "num_train_epochs": 5,
            "hub_token": "<redacted>",
            "end": "return",
            "report_to": "tensorboard",  # after __post_init__
            "save_strategy": "STEPS",
            "include_num_input_tokens_seen": "no",  # a setting, not a secret
        }

    def test_the_json_file_is_evidence_and_declarations_resolve(self, done):
        folder, _ = done
        b = block(folder)
        [entry] = b["config"]["files"]
        assert entry["path"] == "args.json"
        assert entry["sha256"] == digests_of(folder / "args.json")["sha256"]
        assert entry["blake3"] == digests_of(folder / "args.json")["blake3"]
        assert b["config"]["resolved"]["num_train_epochs"] == 5
        assert b["inputs"]["train"]["sha256"] == digests_of(folder / "train.csv")["sha256"]
        assert b["outputs"]["model"]["written_by_run"] is True

    def test_the_token_is_nowhere(self, done):
        folder, proc = done
        assert TOKEN not in (folder / "run" / "model.txt.manifest.json").read_text()
        assert TOKEN not in proc.stderr

    def test_a_failed_training_keeps_its_exit_code(self, tmp_path):
        folder = project(tmp_path, end="return-3")
        proc = train(folder, "args.json")
        assert proc.returncode == 3, proc.stderr
        outcome = block(folder)["outcome"]
        assert (outcome["status"], outcome["exit_code"]) == ("failed", 3)


class TestCommandLineAndJsonAlike:
    def test_the_same_values_record_the_same_args_either_way(self, tmp_path):
        values = {"train_file": "train.csv", "num_train_epochs": 5, "output_dir": "run/"}
        settings = {"save_strategy": "epoch", "include_num_input_tokens_seen": "yes"}
        by_file = project(tmp_path / "json", **values, **settings)
        assert train(by_file, "args.json").returncode == 0
        by_cli = project(tmp_path / "cli")
        argv = [f"--{k}={v}" for k, v in {**values, **settings}.items()]
        proc = train(by_cli, *argv, "--hub_token", TOKEN)
        assert proc.returncode == 0, proc.stderr
        from_file, from_cli = block(by_file)["args"], block(by_cli)["args"]
        assert from_cli == from_file
        assert from_cli["output_dir"] == "run"  # what __post_init__ made of "run/"
        assert from_cli["save_strategy"] == "EPOCH"
        assert from_cli["include_num_input_tokens_seen"] == "yes"
        assert from_cli["hub_token"] == "<redacted>"
        assert TOKEN not in (by_cli / "run" / "model.txt.manifest.json").read_text()

    def test_help_records_nothing(self, tmp_path):
        folder = project(tmp_path)
        proc = train(folder, "--help")
        assert proc.returncode == 0, proc.stderr
        assert not list(folder.rglob("*.manifest*.json"))
