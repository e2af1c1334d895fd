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
