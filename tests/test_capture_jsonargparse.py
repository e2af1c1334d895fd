"""The jsonargparse adapter: a real jsonargparse script with a YAML ``--config``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import digests_of, load_sidecar, project_with, run_with_env, shown

KEY = "wb-8c1d4e7f2a9b3065"
FIT = f"""data:
  train_path: train.csv
trainer:
  epochs: 50
  out: model.txt
wandb:
  api_key: {KEY}
"""


def project(folder: Path, epochs: int = 50) -> Path:
    project_with(folder, "jsonargparse_app")
    (folder / "train.csv").write_text("adm2,mos\n0.9,4.2\n")
    (folder / "fit.yaml").write_text(FIT.replace("epochs: 50", f"epochs: {epochs}"))
    return folder


def train(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return run_with_env(folder / "jsonargparse_app.py", *argv, cwd=folder, env={})


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = project(tmp_path_factory.mktemp("jsonargparse"))
    proc = train(folder, "--config", "fit.yaml", "--trainer.epochs", "6")
    assert proc.returncode == 0, proc.stderr
    assert KEY not in proc.stderr
    return folder


def block(folder: Path) -> dict:
    return load_sidecar(folder / "model.txt.manifest.json")["run_provenance"]


class TestConfigFile:
    def test_resolved_namespace_is_the_args(self, done):
        assert block(done)["args"] == {
            "data": {"train_path": "train.csv"},
            "end": "return",
            "trainer": {"epochs": 6, "out": "model.txt"},  # the command line beat the file
            "wandb": {"api_key": "<redacted>"},
        }

    def test_the_config_file_is_evidence(self, done):
        config = block(done)["config"]
        [entry] = config["files"]
        assert entry["path"] == "fit.yaml"
        assert {k: entry[k] for k in ("size_bytes", "sha256", "blake3")} == digests_of(
            done / "fit.yaml"
        )
        assert config["resolved"]["trainer"] == {"epochs": 6, "out": "model.txt"}

    def test_dotted_and_callable_declarations_resolve(self, done):
        b = block(done)
        assert b["inputs"]["train"]["sha256"] == digests_of(done / "train.csv")["sha256"]
        assert b["outputs"]["model"]["written_by_run"] is True

    def test_the_key_is_nowhere(self, done):
        record = done / "model.txt.manifest.json"
        show = shown(record)
        assert show.returncode == 0, show.stderr
        assert KEY not in record.read_text()
        assert KEY not in show.stdout

    def test_a_changed_file_is_a_changed_digest_and_a_changed_key(self, done, tmp_path):
        other = project(tmp_path, epochs=5)
        proc = train(other, "--config", "fit.yaml")
        assert proc.returncode == 0, proc.stderr
        mine, theirs = block(done)["config"], block(other)["config"]
        assert mine["files"][0]["sha256"] != theirs["files"][0]["sha256"]
        assert theirs["resolved"]["trainer"]["epochs"] == 5

    def test_rerun_is_byte_identical(self, done, tmp_path):
        again = project(tmp_path)
        proc = train(again, "--config", "fit.yaml", "--trainer.epochs", "6")
        assert proc.returncode == 0, proc.stderr
        first = (done / "model.txt.manifest.json").read_bytes()
        assert (again / "model.txt.manifest.json").read_bytes() == first

    @pytest.mark.parametrize(("end", "code"), [("raise", 1), ("return-4", 4)])
    def test_outcomes_as_with_argparse(self, tmp_path, end, code):
        folder = project(tmp_path)
        proc = train(folder, "--config", "fit.yaml", "--end", end)
        assert proc.returncode == code, proc.stderr
        outcome = block(folder)["outcome"]
        assert (outcome["status"], outcome["exit_code"]) == ("failed", code)

    def test_help_records_nothing(self, tmp_path):
        folder = project(tmp_path)
        proc = train(folder, "--help")
        assert proc.returncode == 0, proc.stderr
        assert list(folder.glob("*.json")) == []


class TestInProcess:
    def test_an_unresolved_key_names_the_framework_and_its_keys(self, tmp_path, capsys):
        from jsonargparse import ArgumentParser

        from provenance import recorded_run
        from provenance.errors import DeclarationError

        @recorded_run(outputs={"model": "trainer.output"}, root=tmp_path)
        def main(argv: list[str]) -> int:
            parser = ArgumentParser()
            parser.add_argument("--trainer.out", type=str)
            parser.parse_args(argv)
            return 0

        with pytest.raises(DeclarationError) as caught:
            main(["--trainer.out", str(tmp_path / "m.txt")])
        message = str(caught.value)
        assert "'trainer.output'" in message
        assert message.endswith("(jsonargparse had 2 keys; closest: trainer.out, trainer)")
        assert json.dumps(message)  # one line, printable

    def test_a_subcommand_is_the_command(self, tmp_path):
        from jsonargparse import ArgumentParser

        from provenance import recorded_run

        @recorded_run(outputs={"model": "fit.out"}, root=tmp_path)
        def main(argv: list[str]) -> int:
            parser = ArgumentParser(prog="vmaf-train")
            fit = ArgumentParser()
            fit.add_argument("--out", type=str)
            parser.add_subcommands().add_subcommand("fit", fit)
            cfg = parser.parse_args(argv)
            Path(cfg.fit.out).write_text("m\n")
            return 0

        out = tmp_path / "m.txt"
        assert main(["fit", "--out", str(out)]) == 0
        block = json.loads((tmp_path / "m.txt.manifest.json").read_text())["run_provenance"]
        assert block["command"] == "vmaf-train fit"
        assert block["args"] == {"subcommand": "fit", "fit": {"out": str(out)}}


def test_the_default_config_files_it_read_are_evidence(tmp_path):
    from jsonargparse import ArgumentParser

    from provenance import recorded_run

    (tmp_path / "defaults").mkdir()
    (tmp_path / "defaults" / "b.yaml").write_text("epochs: 7\n")
    out = tmp_path / "m.txt"
    (tmp_path / "defaults" / "a.yaml").write_text(f"epochs: 3\nout: {out}\n")

    @recorded_run(outputs={"model": "out"}, root=tmp_path)
    def main(argv: list[str]) -> int:
        parser = ArgumentParser(
            prog="train", default_config_files=[str(tmp_path / "defaults" / "*.yaml")]
        )
        parser.add_argument("--epochs", type=int, default=1)
        parser.add_argument("--out", type=str, default="")
        cfg = parser.parse_args(argv)
        Path(cfg.out).write_text(f"{cfg.epochs}\n")
        return 0

    assert main([]) == 0
    block = json.loads((tmp_path / "m.txt.manifest.json").read_text())["run_provenance"]
    assert (tmp_path / "m.txt").read_text() == "7\n"  # b.yaml, read after a.yaml, won
    files = [entry["path"] for entry in block["config"]["files"]]
    assert files == ["defaults/a.yaml", "defaults/b.yaml"]
    assert block["config"]["files"][1]["size_bytes"] == len("epochs: 7\n")
    assert block["config"]["resolved"] == {"epochs": 7, "out": str(out)}


def test_a_class_typed_arguments_init_args_stay_nested_after_a_dump(tmp_path):
    """jsonargparse parses a class's ``init_args`` with a parser of its own when it checks a
    config again (``dump``, as LightningCLI's config callback does): that is not the CLI."""
    from jsonargparse import ArgumentParser

    from provenance import recorded_run
    from tests.fakes.lightning_like import CSVLogger

    out = tmp_path / "m.txt"

    @recorded_run(outputs={"model": lambda cfg: cfg.out}, root=tmp_path)
    def main(argv: list[str]) -> int:
        parser = ArgumentParser(prog="train")
        parser.add_argument("--out", type=str)
        parser.add_argument("--name", type=str, default="real")
        parser.add_argument("--logger", type=CSVLogger | None, default=None)
        cfg = parser.parse_args(argv)
        Path(cfg.out).write_text(parser.dump(cfg))
        return 0

    argv = ["--out", str(out), "--logger=CSVLogger", "--logger.name=exp", "--logger.version=3"]
    assert main(argv) == 0
    args = json.loads((tmp_path / "m.txt.manifest.json").read_text())["run_provenance"]["args"]
    assert args == {
        "out": str(out),
        "name": "real",
        "logger": {
            "class_path": "tests.fakes.lightning_like.CSVLogger",
            "init_args": {"save_dir": ".", "name": "exp", "version": 3},
        },
    }
