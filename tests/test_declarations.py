"""Declarations: dotted keys of every framework's namespace, and mistakes that never cost a run
(checked when the decorator is applied or when parsing ends; recorded when found at exit)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
from pathlib import Path

import pytest

from provenance import Glob, recorded_run
from provenance.errors import DeclarationError
from tests.conftest import load_sidecar, project_with, run_with_env, shown


def lightning(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    project_with(folder, "lightning_like")
    return run_with_env(folder / "lightning_like.py", *argv, cwd=folder, env={})


LOGGER = (
    "--trainer.logger=CSVLogger",
    "--trainer.logger.save_dir=logs",
    "--trainer.logger.name=exp",
    "--trainer.logger.version=3",
)


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lightning")
    argv = ("fit", "--trainer.default_root_dir=runs", "--trainer.max_epochs=2", *LOGGER)
    proc = lightning(folder, *argv)
    assert proc.returncode == 0, proc.stderr
    return folder


class TestLightningShape:
    """jsonargparse with a subcommand and a class-typed argument, as LightningCLI builds it."""

    def block(self, folder: Path) -> dict:
        return load_sidecar(folder / "runs/checkpoints/epoch=0.ckpt.manifest.json")[
            "run_provenance"
        ]

    def test_a_glob_fills_dotted_keys_of_a_subcommand(self, done):
        outputs = self.block(done)["outputs"]
        paths = [entry["path"] for entry in outputs["checkpoints"]]
        assert paths == ["runs/checkpoints/epoch=0.ckpt", "runs/checkpoints/epoch=1.ckpt"]
        assert all(entry["written_by_run"] for entry in outputs["checkpoints"])

    def test_init_args_stay_under_their_own_key(self, done):
        args = self.block(done)["args"]
        assert set(args) == {"fit", "subcommand"}  # no name, save_dir, version up here
        assert args["fit"]["name"] == "baseline"  # not shadowed by the logger's name
        assert args["fit"]["trainer"]["logger"] == {
            "class_path": "__main__.CSVLogger",
            "init_args": {"name": "exp", "save_dir": "logs", "version": 3},
        }

    def test_a_glob_reaches_into_init_args(self, done):
        [log] = self.block(done)["outputs"]["logs"]
        assert log["path"] == "logs/baseline-3.log"

    def test_no_declaration_error_and_a_clean_exit(self, done):
        block = self.block(done)
        assert "declaration_errors" not in block
        assert block["outcome"]["status"] == "succeeded"


@dataclasses.dataclass
class TrainingArguments:  # HfArgumentParser's shape: the fields of a dataclass
    output_dir: str = "out"


def namespaces() -> list[tuple[str, object]]:
    from jsonargparse import Namespace as JNamespace
    from omegaconf import OmegaConf

    return [
        ("argparse", argparse.Namespace(fit=argparse.Namespace(root="r"))),
        ("argparse dotted dest", argparse.Namespace(**{"fit.root": "r"})),
        ("jsonargparse", JNamespace(fit=JNamespace(root="r"))),
        ("hydra", OmegaConf.create({"fit": {"root": "r"}})),
        ("click params", {"fit": {"root": "r"}}),
        ("dataclass", argparse.Namespace(fit=TrainingArguments(output_dir="r"))),
    ]


@pytest.mark.parametrize(("framework", "namespace"), namespaces(), ids=lambda v: str(v)[:20])
def test_a_glob_reads_dotted_keys_of_every_framework(tmp_path, framework, namespace):
    from provenance.measure.paths import lookup

    key = "fit.output_dir" if framework == "dataclass" else "fit.root"
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "a.ckpt").write_text("x")
    assert lookup(namespace, key) == (True, "r")
    declared = Glob(f"{tmp_path}/{{{key}}}/*.ckpt").expand(namespace)
    assert declared is not None
    assert declared.paths == (str(tmp_path / "r" / "a.ckpt"),)


def test_lookup_does_not_read_attributes_of_plain_values():
    from provenance.measure.paths import lookup

    assert lookup(argparse.Namespace(out="m.txt"), "out.upper") == (False, None)
    assert lookup(argparse.Namespace(out="m.txt"), "nope") == (False, None)


class TestAtDecoration:
    @pytest.mark.parametrize(
        ("kwargs", "said"),
        [
            ({"outputs": {"model": 3}}, "not int"),
            ({"outputs": ["model"]}, "must map names"),
            ({"inputs": {"table": ["a.csv", 4]}}, "got 4"),
            ({"inputs": {"table": ""}}, "empty dest"),
            ({"outputs": {"model": Glob("{out")}}, "is not a pattern"),
            ({"outputs": {"model": Glob("{}.data")}}, "without a name"),
            ({"config": 1.5}, "not float"),
            ({"manifest": 7}, "not int"),
        ],
    )
    def test_a_wrong_declaration_is_one_line_before_anything_runs(self, kwargs, said):
        with pytest.raises(DeclarationError, match=said) as caught:
            recorded_run(**kwargs)
        assert "\n" not in str(caught.value)

    def test_a_literal_list_of_paths_is_recorded(self, tmp_path):
        shards = [tmp_path / "a.csv", tmp_path / "b.csv"]
        for shard in shards:
            shard.write_text(shard.name)
        out = tmp_path / "m.txt"

        @recorded_run(inputs={"shards": shards, "named": [str(shards[0])]}, outputs={"m": out})
        def main() -> int:
            out.write_text("m")
            return 0

        assert main() == 0
        block = load_sidecar(tmp_path / "m.txt.manifest.json")["run_provenance"]
        assert [e["path"] for e in block["inputs"]["shards"]] == [str(s) for s in shards]
        assert [e["size_bytes"] for e in block["inputs"]["shards"]] == [5, 5]
        assert [e["path"] for e in block["inputs"]["named"]] == [str(shards[0])]


class TestWhenParsingEnds:
    def test_a_config_key_the_subcommand_holds_stops_the_script_in_one_line(self, tmp_path):
        from jsonargparse import ActionConfigFile, ArgumentParser

        worked = []

        @recorded_run(config="config", outputs={"m": "fit.out"}, root=tmp_path)
        def main(argv: list[str]) -> int:
            parser = ArgumentParser(prog="cli")
            fit = ArgumentParser()
            fit.add_argument("--config", action=ActionConfigFile)
            fit.add_argument("--out", type=str)
            for n in range(64):
                fit.add_argument(f"--trainer.opt_{n}", type=int, default=n)
            parser.add_subcommands().add_subcommand("fit", fit)
            parser.parse_args(argv)
            worked.append(True)
            return 0

        with pytest.raises(DeclarationError) as caught:
            main(["fit", "--out", str(tmp_path / "m.txt")])
        message = str(caught.value)
        assert worked == []
        assert "\n" not in message
        assert len(message) < 250
        assert "closest: fit.config" in message
        assert "trainer.opt_40" not in message

    def test_the_subcommands_config_key_resolves(self, tmp_path):
        from jsonargparse import ActionConfigFile, ArgumentParser

        (tmp_path / "fit.yaml").write_text("out: m.txt\n")
        out = tmp_path / "m.txt"

        @recorded_run(config="fit.config", outputs={"m": "fit.out"}, root=tmp_path)
        def main(argv: list[str]) -> int:
            parser = ArgumentParser(prog="cli")
            fit = ArgumentParser()
            fit.add_argument("--config", action=ActionConfigFile)
            fit.add_argument("--out", type=str)
            parser.add_subcommands().add_subcommand("fit", fit)
            parser.parse_args(argv)
            out.write_text("m")
            return 0

        assert main(["fit", "--config", str(tmp_path / "fit.yaml"), "--out", str(out)]) == 0
        block = load_sidecar(tmp_path / "m.txt.manifest.json")["run_provenance"]
        assert [f["path"] for f in block["config"]["files"]] == ["fit.yaml"]

    def test_a_glob_field_no_parse_has_stops_the_script(self, tmp_path):
        worked = []

        @recorded_run(outputs={"m": "out", "data": Glob("{ouut}.data")}, root=tmp_path)
        def main(argv: list[str]) -> int:
            parser = argparse.ArgumentParser()
            parser.add_argument("--out")
            parser.parse_args(argv)
            worked.append(True)
            return 0

        with pytest.raises(DeclarationError, match=r"'ouut'.*closest: out\)$"):
            main(["--out", str(tmp_path / "m.txt")])
        assert worked == []
        assert list(tmp_path.iterdir()) == []

    def test_a_key_naming_a_section_not_a_path_stops_the_script(self, tmp_path):
        from jsonargparse import ArgumentParser

        worked = []

        @recorded_run(outputs={"m": "trainer"}, root=tmp_path)
        def main(argv: list[str]) -> int:
            parser = ArgumentParser()
            parser.add_argument("--trainer.out", type=str)
            parser.parse_args(argv)
            worked.append(True)
            return 0

        with pytest.raises(DeclarationError, match=r"output 'm' must be a path.*got"):
            main(["--trainer.out", str(tmp_path / "m.txt")])
        assert worked == []

    def test_a_callable_that_raises_stops_the_script(self, tmp_path):
        worked = []

        @recorded_run(outputs={"m": lambda a: a.model_path}, root=tmp_path)
        def main(argv: list[str]) -> int:
            parser = argparse.ArgumentParser()
            parser.add_argument("--out")
            parser.parse_args(argv)
            worked.append(True)
            return 0

        with pytest.raises(DeclarationError, match=r"'m'.*AttributeError"):
            main(["--out", str(tmp_path / "m.txt")])
        assert worked == []


SCRIPT = """
import sys
from pathlib import Path
from provenance import Glob, recorded_run

@recorded_run(outputs={{"model": Path("m.txt"), "extra": {extra}}})
def main() -> int:
    Path("m.txt").write_text("m")
    return int(sys.argv[1])

if __name__ == "__main__":
    sys.exit(main())
"""


class TestAtExit:
    @pytest.mark.parametrize("code", [0, 3])
    @pytest.mark.parametrize(
        ("extra", "said"),
        [
            ('"out"', "no argument parser ran"),
            ('Glob("{epochs:d}")', "cannot fill {epochs}"),
        ],
    )
    def test_a_declaration_failing_at_exit_is_recorded_and_the_exit_code_stands(
        self, tmp_path, extra, said, code
    ):
        project_with(tmp_path)
        (tmp_path / "s.py").write_text(SCRIPT.format(extra=extra))
        if "epochs" in extra:  # a value only a parse gives: an argparse run with a string
            (tmp_path / "s.py").write_text(
                SCRIPT.format(extra=extra).replace(
                    "def main() -> int:\n",
                    "def main() -> int:\n    import argparse\n"
                    "    p = argparse.ArgumentParser(); p.add_argument('code')\n"
                    "    p.add_argument('--epochs', default='five'); p.parse_args()\n",
                )
            )
        proc = run_with_env(tmp_path / "s.py", code, cwd=tmp_path, env={})
        assert proc.returncode == code, proc.stderr
        assert said in proc.stderr
        block = load_sidecar(tmp_path / "m.txt.manifest.json")["run_provenance"]
        [error] = block["declaration_errors"]
        assert (error["kind"], error["name"]) == ("output", "extra")
        assert said in error["error"]
        assert block["outcome"]["exit_code"] == code
        assert block["outcome"]["status"] == ("succeeded" if code == 0 else "failed")
        assert block["outputs"]["model"]["written_by_run"] is True
        assert json.dumps(block["declaration_errors"])

    def test_a_record_with_declaration_errors_is_byte_identical_on_a_rerun(self, tmp_path):
        records = []
        for folder in (tmp_path / "a", tmp_path / "b"):
            project_with(folder)
            (folder / "s.py").write_text(SCRIPT.format(extra='"out"'))
            proc = run_with_env(folder / "s.py", 0, cwd=folder, env={})
            assert proc.returncode == 0, proc.stderr
            records.append((folder / "m.txt.manifest.json").read_bytes())
        assert records[0] == records[1]
        assert b"declaration_errors" in records[0]

    def test_show_names_the_declaration_that_failed(self, tmp_path):
        project_with(tmp_path)
        (tmp_path / "s.py").write_text(SCRIPT.format(extra='"out"'))
        proc = run_with_env(tmp_path / "s.py", 0, cwd=tmp_path, env={})
        assert proc.returncode == 0, proc.stderr
        show = shown(tmp_path / "m.txt.manifest.json")
        assert show.returncode == 0, show.stderr
        assert "declaration errors" in show.stdout
        assert "output extra: output 'extra' names the argparse dest 'out'" in show.stdout
