"""The click adapter, and typer through it: real click and typer scripts as subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import (
    ROOT,
    default_signals,
    digests_of,
    load_sidecar,
    project_with,
    run_with_env,
    shown,
    sidecar_of,
)

TOKEN = "tok-3f9a2c71e5d84b06"  # an API token with no shape of its own: hidden by its name
WANDB = "wb-8c1d4e7f2a9b3065"


def click_run(
    folder: Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    project_with(folder, "click_app")
    features = folder / "features.csv"
    if not features.exists():
        features.write_text("adm2,motion2,mos\n0.9,3.1,4.2\n")
    return run_with_env(
        folder / "click_app.py",
        "--features",
        "features.csv",
        "--out",
        "model.txt",
        *extra,
        cwd=folder,
        env={"TRAIN_EPOCHS": "7", **(env or {})},
    )


@pytest.fixture(scope="module")
def click_done(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    folder = tmp_path_factory.mktemp("click")
    proc = click_run(folder, "--api-token", TOKEN, "-v")
    return folder, proc


class TestClick:
    def test_resolved_params_are_the_args(self, click_done):
        folder, proc = click_done
        assert proc.returncode == 0, proc.stderr
        block = load_sidecar(sidecar_of(folder / "model.txt"))["run_provenance"]
        assert block["args"] == {
            "features": "features.csv",
            "out": "model.txt",
            "epochs": 7,  # from TRAIN_EPOCHS: what click resolved, not what argv says
            "api_token": "<redacted>",
            "verbose": True,
            "end": "return",
        }
        assert block["command"] == "click_app.py"
        assert block["argv"] == [
            "--features", "features.csv", "--out", "model.txt",
            "--api-token", "<redacted>", "-v",
        ]  # fmt: skip

    def test_string_declarations_name_click_params(self, click_done):
        folder, _ = click_done
        block = load_sidecar(sidecar_of(folder / "model.txt"))["run_provenance"]
        features = block["inputs"]["features"]
        assert features["path"] == "features.csv"
        assert {k: features[k] for k in ("size_bytes", "sha256", "blake3")} == digests_of(
            folder / "features.csv"
        )
        assert block["outputs"]["model"]["written_by_run"] is True

    def test_the_token_is_nowhere(self, click_done):
        folder, proc = click_done
        record = sidecar_of(folder / "model.txt")
        show = shown(record)
        assert show.returncode == 0, show.stderr
        for text in (record.read_text(), proc.stderr, proc.stdout, show.stdout):
            assert TOKEN not in text

    def test_a_token_from_the_environment_is_hidden_too(self, tmp_path):
        proc = click_run(tmp_path, env={"API_TOKEN": TOKEN})
        assert proc.returncode == 0, proc.stderr
        text = sidecar_of(tmp_path / "model.txt").read_text()
        assert TOKEN not in text
        assert json.loads(text)["run_provenance"]["args"]["api_token"] == "<redacted>"

    def test_rerun_is_byte_identical(self, click_done, tmp_path):
        folder, _ = click_done
        first = sidecar_of(folder / "model.txt").read_bytes()
        again = tmp_path / "again"
        shutil.copytree(folder, again)
        (again / "model.txt").unlink()
        sidecar_of(again / "model.txt").unlink()
        proc = click_run(again, "--api-token", TOKEN, "-v")
        assert proc.returncode == 0, proc.stderr
        assert sidecar_of(again / "model.txt").read_bytes() == first

    @pytest.mark.parametrize(
        ("end", "code", "status", "error"),
        [
            ("raise", 1, "failed", "builtins"),
            ("exit", 3, "failed", None),
            ("click-exit", 4, "failed", None),
            ("gate", 5, "failed", None),
        ],
    )
    def test_outcomes_as_with_argparse(self, tmp_path, end, code, status, error):
        proc = click_run(tmp_path, "--end", end)
        assert proc.returncode == code, proc.stderr
        outcome = load_sidecar(sidecar_of(tmp_path / "model.txt"))["run_provenance"]["outcome"]
        assert (outcome["status"], outcome["exit_code"]) == (status, code)
        assert (outcome["error"] is not None) == (error is not None)
        if end == "raise":
            assert outcome["error"] == {"type": "RuntimeError", "message": "diverged at epoch 7"}
        if end == "gate":
            assert outcome["gates"]["rmse"]["passed"] is False

    def test_ctrl_c_is_recorded_with_the_exit_code_click_ends_the_process_with(self, tmp_path):
        project_with(tmp_path, "click_app")
        (tmp_path / "features.csv").write_text("adm2,mos\n0.9,4.2\n")
        ready = tmp_path / "model.txt.ready"
        proc = subprocess.Popen(
            [sys.executable, str(tmp_path / "click_app.py"), "--features", "features.csv",
             "--out", "model.txt", "--end", "wait"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=default_signals,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the command never got under way"
            time.sleep(0.01)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert "Aborted!" in err  # click turned the Ctrl-C into its own ending
        outcome = load_sidecar(sidecar_of(tmp_path / "model.txt"))["run_provenance"]["outcome"]
        assert outcome["exit_code"] == proc.returncode == 1
        assert outcome["status"] == "interrupted"

    def test_help_records_nothing(self, tmp_path):
        proc = click_run(tmp_path, "--help")
        assert proc.returncode == 0, proc.stderr
        assert list(tmp_path.glob("*.json")) == []


def typer_run(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    project_with(folder, "typer_app")
    return run_with_env(folder / "typer_app.py", *argv, cwd=folder, env={"WANDB_API_KEY": WANDB})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("typer")
    (folder / "features.csv").write_text("adm2,mos\n0.9,4.2\n")
    proc = typer_run(
        folder, "-v", "fit", "--features", "features.csv", "--out", "model.txt",
        "--epochs", "5", "--wandb-api-key", WANDB,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return folder


class TestTyperSubcommands:
    def test_command_path_and_params_of_every_level(self, fitted):
        block = load_sidecar(sidecar_of(fitted / "model.txt"))["run_provenance"]
        assert block["command"] == "typer_app.py fit"
        assert block["args"] == {
            "verbose": True,
            "features": "features.csv",
            "out": "model.txt",
            "epochs": 5,
            "wandb_api_key": "<redacted>",
        }
        assert "--wandb-api-key" in block["argv"]
        assert WANDB not in sidecar_of(fitted / "model.txt").read_text()
        entry = block["inputs"]["features"]
        assert entry["sha256"] == digests_of(fitted / "features.csv")["sha256"]

    def test_typer_exit_zero_is_success(self, fitted):
        proc = typer_run(fitted, "export", "--model", "model.txt", "--out", "model.onnx")
        assert proc.returncode == 0, proc.stderr
        block = load_sidecar(sidecar_of(fitted / "model.onnx"))["run_provenance"]
        assert block["command"] == "typer_app.py export"
        assert block["outcome"]["status"] == "succeeded"
        assert block["inputs"]["model"]["path"] == "model.txt"


class TestInProcess:
    def test_a_run_around_a_click_group_hears_each_level(self, tmp_path):
        import click

        from provenance import recorded_run

        @click.group()
        @click.option("--seed", type=int, default=1)
        def cli(seed: int) -> None:
            pass

        @cli.command()
        @click.option("--out", required=True)
        def fit(out: str) -> None:
            Path(out).write_text("m\n")

        out = tmp_path / "m.txt"
        with recorded_run(outputs={"model": "out"}, entrypoint=__file__, root=tmp_path) as run:
            cli.main(["--seed", "7", "fit", "--out", str(out)], "cli", standalone_mode=False)
        assert run.command == "cli fit"
        assert run.args == {"seed": 7, "out": str(out)}
        assert json.loads(sidecar_of(out).read_text())["run_provenance"]["command"] == "cli fit"

    def test_an_unresolved_name_says_what_click_had(self, tmp_path):
        import click

        from provenance import recorded_run
        from provenance.errors import DeclarationError

        @click.command()
        @click.option("--out", required=True)
        @recorded_run(outputs={"model": "output"}, entrypoint=__file__, root=tmp_path)
        def main(out: str) -> None:
            Path(out).write_text("m\n")

        with pytest.raises(
            DeclarationError,
            match=r"'output', which no framework resolved "
            r"\(click had 1 key; closest: out\)",
        ):
            main.main(["--out", str(tmp_path / "m.txt")], standalone_mode=False)
        assert not (tmp_path / "m.txt").exists(), "stopped before the command's work"

    def test_config_names_the_parameter_of_a_yaml_file_the_command_reads(self, tmp_path):
        import click
        import yaml

        from provenance import recorded_run

        @click.command()
        @click.option("--config", required=True)
        @click.option("--out", required=True)
        @recorded_run(outputs={"model": "out"}, config="config", entrypoint=__file__, root=tmp_path)
        def fit(config: str, out: str) -> None:
            settings = yaml.safe_load(Path(config).read_text())
            Path(out).write_text(f"{settings['trainer']['epochs']}\n")

        (tmp_path / "fit.yaml").write_text("trainer:\n  epochs: 5\n")
        out = tmp_path / "m.txt"
        fit.main(["--config", str(tmp_path / "fit.yaml"), "--out", str(out)], standalone_mode=False)
        config = json.loads(sidecar_of(out).read_text())["run_provenance"]["config"]
        assert config["files"][0]["path"] == "fit.yaml"
        assert config["files"][0]["sha256"] == digests_of(tmp_path / "fit.yaml")["sha256"]
        assert config["resolved"] == {"trainer": {"epochs": 5}}

    def test_a_token_in_the_error_is_hidden_in_the_record_and_the_error_passes(self, tmp_path):
        import click

        from provenance import recorded_run

        @click.command()
        @click.option("--api-token")
        @click.option("--out", required=True)
        @recorded_run(outputs={"model": "out"}, entrypoint=__file__, root=tmp_path)
        def main(api_token: str, out: str) -> None:
            Path(out).write_text("m\n")
            raise RuntimeError(f"upload refused for {api_token}")

        out = tmp_path / "m.txt"
        with pytest.raises(RuntimeError, match=TOKEN):  # the script's own error, unchanged
            main.main(["--api-token", TOKEN, "--out", str(out)], standalone_mode=False)
        text = sidecar_of(out).read_text()
        assert TOKEN not in text
        error = json.loads(text)["run_provenance"]["outcome"]["error"]
        assert error == {"type": "RuntimeError", "message": "upload refused for <redacted>"}
