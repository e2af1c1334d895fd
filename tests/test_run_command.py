"""``provenance run``: real commands, started as a user starts them, recorded with no decorator."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from provenance.commands.run import python_command
from tests.conftest import ROOT, default_signals, fake_path, load_sidecar, run_python, sidecar_of

PY = sys.executable


def env(**more: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "PROVENANCE_RANK_WAIT_S": "60", **more}


def provenance_run(*argv: object, cwd: Path, **more: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PY, "-m", "provenance", "run", *map(str, argv)],
        cwd=cwd,
        env=env(**more),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def start(*argv: object, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "provenance", "run", *map(str, argv)],
        cwd=cwd,
        env=env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,
    )


def wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)


def block(artifact: Path) -> dict[str, Any]:
    record: dict[str, Any] = load_sidecar(sidecar_of(artifact))["run_provenance"]
    return record


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    (tmp_path / "data.txt").write_text("rows\n")
    shutil.copy(fake_path("plain_train"), tmp_path / "train.py")
    return tmp_path


def train(project: Path, *more: object, out: str = "model.txt") -> subprocess.CompletedProcess[str]:
    return provenance_run(
        "--input=data=data.txt",
        f"--output=model={out}",
        "--",
        PY,
        "train.py",
        "--data",
        "data.txt",
        "--out",
        out,
        *more,
        cwd=project,
    )


def waiting_training(project: Path) -> subprocess.Popen[str]:
    """``provenance run`` of the training script, under way and waiting for a signal."""
    proc = start(
        "--output=model=model.txt",
        "--",
        PY,
        "train.py",
        "--data=data.txt",
        "--out=model.txt",
        "--end=wait",
        cwd=project,
    )
    wait_for(project / "model.txt.ready", proc)
    return proc


class TestPythonScript:
    def test_records_what_the_decorated_script_records(self, project: Path, tmp_path: Path):
        proc = train(project, "--epochs", "7")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout == "trained 7 epochs\n"
        twin = tmp_path / "decorated"
        twin.mkdir()
        for name in ("pyproject.toml", "data.txt"):
            shutil.copy(project / name, twin / name)
        source = (project / "train.py").read_text()
        decorated = source.replace(
            "def main(",
            "from provenance import recorded_run\n\n\n"
            "@recorded_run(inputs={'data': 'data'}, outputs={'model': 'out'})\ndef main(",
        )
        assert decorated != source
        (twin / "train.py").write_text(decorated)
        direct = subprocess.run(
            [PY, "train.py", "--data", "data.txt", "--out", "model.txt", "--epochs", "7"],
            cwd=twin,
            env=env(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert direct.returncode == 0, direct.stderr
        ran, wanted = block(project / "model.txt"), block(twin / "model.txt")
        # What must differ: the two files are not the same code.
        for record, path in ((ran, project), (wanted, twin)):
            digest = hashlib.sha256((path / "train.py").read_bytes()).hexdigest()
            assert record["entrypoint"]["sha256"] == digest
            assert record["code"] == {"train.py": digest}
            del record["entrypoint"], record["code"]
        # And what says who recorded it: the command under provenance run, not its decorator.
        assert (ran.pop("recorded_by"), "recorded_by" in wanted) == ("provenance run", False)
        assert ran == wanted
        assert ran["args"] == {"data": "data.txt", "end": None, "epochs": 7, "out": "model.txt"}

    def test_same_command_twice_gives_the_same_bytes(self, project: Path):
        assert train(project).returncode == 0
        first = sidecar_of(project / "model.txt").read_bytes()
        assert train(project).returncode == 0
        assert sidecar_of(project / "model.txt").read_bytes() == first

    def test_exit_code_passes_through_and_is_recorded(self, project: Path):
        proc = train(project, "--end", "exit")
        assert proc.returncode == 3
        assert block(project / "model.txt")["outcome"]["exit_code"] == 3
        assert block(project / "model.txt")["outcome"]["status"] == "failed"

    def test_failure_prints_the_scripts_traceback_and_is_recorded(self, project: Path):
        proc = train(project, "--end", "raise")
        assert proc.returncode == 1
        assert proc.stderr.startswith("Traceback (most recent call last):\n")
        assert proc.stderr.endswith("RuntimeError: diverged at epoch 5\n")
        assert 'train.py", line' in proc.stderr
        assert "provenance" not in proc.stderr  # no frame of the launcher's own
        outcome = block(project / "model.txt")["outcome"]
        assert outcome["status"] == "failed"
        assert outcome["error"] == {"type": "RuntimeError", "message": "diverged at epoch 5"}

    def test_gates_reach_the_record(self, project: Path):
        assert train(project, "--end", "gate").returncode == 0
        gates = block(project / "model.txt")["outcome"]["gates"]
        assert gates == {"rmse": {"passed": False, "value": 0.9, "threshold": 0.5}}

    def test_sigint_to_provenance_run_interrupts_the_script(self, project: Path):
        proc = waiting_training(project)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGINT, stderr
        assert "KeyboardInterrupt" in stderr
        outcome = block(project / "model.txt")["outcome"]
        assert (outcome["status"], outcome["exit_code"]) == ("interrupted", 130)

    def test_sigterm_to_provenance_run_ends_both_by_it(self, project: Path):
        proc = waiting_training(project)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGTERM
        outcome = block(project / "model.txt")["outcome"]
        assert (outcome["status"], outcome["exit_code"]) == ("interrupted", 143)

    def test_a_py_argument_argparse_parsed_is_no_config_file(self, project: Path):
        (project / "rows.py").write_text("rows = 3\n")
        proc = provenance_run(
            "--output=model=m.txt", "--", PY, "train.py", "--data", "rows.py", "--out", "m.txt",
            cwd=project,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        record = block(project / "m.txt")
        assert "config" not in record
        assert record["args"]["data"] == "rows.py"

    def test_config_option_records_the_file(self, project: Path):
        (project / "train.yaml").write_text("epochs: 5\n")
        proc = train(project, "--epochs", "5")
        assert proc.returncode == 0
        proc = provenance_run(
            "--config=train.yaml", "--output=model=model.txt", "--",
            PY, "train.py", "--data=data.txt", "--out=model.txt",
            cwd=project,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        files = block(project / "model.txt")["config"]["files"]
        assert [f["path"] for f in files] == ["train.yaml"]
        digest = hashlib.sha256(b"epochs: 5\n").hexdigest()
        assert files[0]["sha256"] == digest

    def test_a_script_with_no_output_says_why_it_has_no_record(self, project: Path):
        proc = provenance_run("--", PY, "train.py", "--data=data.txt", "--out=m.txt", cwd=project)
        assert proc.returncode == 1
        assert "nowhere to put its evidence" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert not sidecar_of(project / "m.txt").exists()


class TestPythonModule:
    def test_python_m_runs_the_module_as_main(self, project: Path):
        package = project / "pkg"
        package.mkdir()
        (package / "__init__.py").write_text("")
        shutil.copy(fake_path("plain_train"), package / "train.py")
        proc = provenance_run(
            "--output=model=m.txt", "--", PY, "-m", "pkg.train", "--data=data.txt", "--out=m.txt",
            cwd=project,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        record = block(project / "m.txt")
        assert record["entrypoint"]["path"] == "pkg/train.py"
        assert set(record["code"]) == {"pkg/__init__.py", "pkg/train.py"}
        assert record["argv"] == ["--data=data.txt", "--out=m.txt"]
        assert record["args"]["out"] == "m.txt"

    def test_a_missing_module_fails_as_python_says(self, project: Path):
        proc = provenance_run("--output=m=m.txt", "--", PY, "-m", "no_such_mod", cwd=project)
        assert proc.returncode == 1
        assert "No module named no_such_mod" in proc.stderr
        assert "Traceback" not in proc.stderr

    def test_console_script_with_a_python_shebang(self, project: Path):
        tool = project / "bin" / "train-tool"
        tool.parent.mkdir()
        tool.write_text(f"#!{PY}\n" + fake_path("plain_train").read_text())
        tool.chmod(0o755)
        proc = provenance_run(
            "--output=model=m.txt", "--", "train-tool", "--data=data.txt", "--out=m.txt",
            cwd=project, PATH=f"{tool.parent}{os.pathsep}{os.environ['PATH']}",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        record = block(project / "m.txt")
        assert record["entrypoint"]["path"] == "bin/train-tool"
        assert record["args"]["data"] == "data.txt"


class TestClick:
    def test_click_options_are_captured(self, project: Path):
        shutil.copy(fake_path("plain_click"), project / "cli.py")
        proc = provenance_run(
            "--input=features=data.txt", "--output=model=m.txt", "--",
            PY, "cli.py", "--features", "data.txt", "--out", "m.txt",
            cwd=project, TRAIN_EPOCHS="9",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        record = block(project / "m.txt")
        assert record["args"] == {"features": "data.txt", "out": "m.txt", "epochs": 9}
        assert record["outcome"]["status"] == "succeeded"


class TestExecConfigurator:
    def test_config_files_it_read_and_overrides(self, project: Path):
        for name in ("nano_train", "nano_configurator"):
            shutil.copy(fake_path(name), project / f"{name}.py")
        (project / "config").mkdir()
        config = "batch_size = 4\nout = 'small.txt'\n"
        (project / "config" / "small.py").write_text(config)
        (project / "unread.py").write_text("")
        argv = ["nano_train.py", "config/small.py", "--learning_rate=0.01"]
        proc = provenance_run("--output=model=small.txt", "--", PY, *argv, cwd=project)
        assert proc.returncode == 0, proc.stderr
        assert (project / "small.txt").read_text() == "batch_size=4 learning_rate=0.01\n"
        record = block(project / "small.txt")
        assert record["argv"] == argv[1:]
        assert record["args"] == {"learning_rate": "0.01"}
        files = record["config"]["files"]
        assert [f["path"] for f in files] == ["config/small.py"]
        assert files[0]["sha256"] == hashlib.sha256(config.encode()).hexdigest()
        assert files[0]["changed_during_run"] is False
        assert record["config"]["resolved"] == {"learning_rate": "0.01"}


class TestOtherCommands:
    def test_shell_command_with_files_and_exit_code(self, project: Path):
        script = 'cat "$1" > "$2"; exit 3'
        proc = provenance_run(
            "--input", "data=data.txt", "--output", "copy=copy.txt", "--",
            "bash", "-c", script, "sh", "data.txt", "copy.txt",
            cwd=project,
        )  # fmt: skip
        assert proc.returncode == 3, proc.stderr
        record = block(project / "copy.txt")
        bash = shutil.which("bash")
        assert bash is not None
        bash_digest = hashlib.sha256(Path(bash).read_bytes()).hexdigest()
        assert record["entrypoint"]["sha256"] == bash_digest
        assert record["entrypoint"]["kind"] == "program"
        assert record["argv"] == ["-c", script, "sh", "data.txt", "copy.txt"]
        assert record["code"] == {}
        rows = hashlib.sha256(b"rows\n").hexdigest()
        assert record["inputs"]["data"]["sha256"] == rows
        assert record["outputs"]["copy"]["sha256"] == rows
        assert record["outputs"]["copy"]["written_by_run"] is True
        assert record["outcome"] == {
            "status": "failed",
            "exit_code": 3,
            "error": None,
            "gates": {},
        }

    def test_show_and_replay_give_the_program_without_an_interpreter(self, project: Path):
        local = project / "copy.sh"
        local.write_text('#!/bin/sh\ncp "$1" "$2"\n')
        local.chmod(0o755)
        command = ["--output=copy=copy.txt", "--", "./copy.sh", "data.txt", "copy.txt"]
        assert provenance_run(*command, cwd=project).returncode == 0
        shown = run_python("-m", "provenance", "show", "copy.txt", cwd=project)
        assert " && provenance run --output=copy=copy.txt -- copy.sh data.txt copy.txt" in (
            shown.stdout
        )
        assert "python copy.sh" not in shown.stdout
        replayed = run_python("-m", "provenance", "replay", "--run", "copy.txt", cwd=project)
        assert replayed.returncode == 0, replayed.stderr  # under provenance run again
        assert "reproduced: no differences" in replayed.stdout
        outside = ["--output=copy=copy.txt", "--", "sh", "-c", "cp data.txt copy.txt"]
        assert provenance_run(*outside, cwd=project).returncode == 0
        printed = run_python("-m", "provenance", "replay", "copy.txt", cwd=project).stdout
        assert "--output=copy=copy.txt -- " in printed
        assert printed.rstrip().endswith(" -c 'cp data.txt copy.txt'")
        assert "python" not in printed
        refused = run_python("-m", "provenance", "replay", "--run", "copy.txt", cwd=project)
        assert refused.returncode == 2  # a program outside the project is never run by replay
        assert "not run" in refused.stderr

    def test_a_python_script_it_recorded_is_replayed_under_it(self, project: Path):
        shutil.copy(fake_path("plain_train"), project / "plain_train.py")
        command = ["--input", "data=data.txt", "--output", "model=model.txt", "--"]
        command += [sys.executable, "plain_train.py", "--data", "data.txt", "--out", "model.txt"]
        first = provenance_run(*command, cwd=project)
        assert first.returncode == 0, first.stderr
        record = block(project / "model.txt")
        assert record["recorded_by"] == "provenance run"
        printed = run_python("-m", "provenance", "replay", "model.txt", cwd=project).stdout
        words = "provenance run --input=data=data.txt --output=model=model.txt -- python"
        assert f"{words} plain_train.py --data data.txt --out model.txt" in printed
        replayed = run_python("-m", "provenance", "replay", "--run", "model.txt", cwd=project)
        assert replayed.returncode == 0, replayed.stderr
        assert "reproduced: no differences" in replayed.stdout

    def test_same_shell_command_twice_gives_the_same_bytes(self, project: Path):
        command = ["--output=copy=copy.txt", "--", "sh", "-c", "cp data.txt copy.txt"]
        assert provenance_run(*command, cwd=project).returncode == 0
        first = sidecar_of(project / "copy.txt").read_bytes()
        assert provenance_run(*command, cwd=project).returncode == 0
        assert sidecar_of(project / "copy.txt").read_bytes() == first

    def test_code_is_not_this_processs_imports(self, project: Path):
        # Under a root that holds provenance itself, the recording process's own modules are
        # under the root too: they are still not the command's code.
        command = ["--root", ROOT, "--output=copy=copy.txt", "--", "cp", "data.txt", "copy.txt"]
        proc = provenance_run(*command, cwd=project)
        assert proc.returncode == 0, proc.stderr
        assert block(project / "copy.txt")["code"] == {}

    def test_output_not_written_is_recorded_as_not_there(self, project: Path):
        proc = provenance_run("--output=model=never.txt", "--", "true", cwd=project)
        assert proc.returncode == 0, proc.stderr
        record = block(project / "never.txt")
        assert record["outputs"]["model"] == {"path": "never.txt", "exists": False}
        assert record["outcome"]["status"] == "succeeded"

    def test_sigterm_is_passed_on_and_recorded(self, project: Path):
        proc = start(
            "--output=out=out.txt", "--", "sh", "-c", 'touch "$1"; exec sleep 60', "sh", "ready",
            cwd=project,
        )  # fmt: skip
        wait_for(project / "ready", proc)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGTERM
        outcome = block(project / "out.txt")["outcome"]
        assert (outcome["status"], outcome["exit_code"]) == ("interrupted", 143)

    def test_missing_program_exits_127_in_one_line(self, project: Path):
        proc = provenance_run("--output=o=o.txt", "--", "no-such-program-here", "x", cwd=project)
        assert proc.returncode == 127
        assert proc.stderr == "provenance: no-such-program-here: command not found\n"

    def test_a_file_that_cannot_run_exits_126(self, project: Path):
        (project / "notes").write_text("not a program\n")
        proc = provenance_run("--output=o=o.txt", "--", "./notes", cwd=project)
        assert proc.returncode == 126
        assert proc.stderr.count("\n") == 1
        assert "Traceback" not in proc.stderr

    @pytest.mark.parametrize(
        ("argv", "says"),
        [
            ([], "no command to run"),
            (["--output=o", "--", "true"], "--output takes NAME=PATH"),
            (["--input=a=x", "--input=a=y", "--", "true"], "--input a is given twice"),
            (["--", "true"], "give one with --output NAME=PATH"),
        ],
    )
    def test_bad_usage_is_one_line_and_exit_2(self, project: Path, argv: list[str], says: str):
        proc = provenance_run(*argv, cwd=project)
        assert proc.returncode == 2
        assert says in proc.stderr
        assert proc.stderr.count("\n") == 1


class TestLaunchers:
    @pytest.fixture
    def bin_dir(self, project: Path) -> Path:
        folder = project / "bin"
        folder.mkdir()
        source = f"#!{PY}\n" + fake_path("fake_launch").read_text()
        for name in ("torchrun", "mpirun", "accelerate", "deepspeed"):
            (folder / name).write_text(source)
            (folder / name).chmod(0o755)
        return folder

    def launched(self, project: Path, bin_dir: Path, *command: object, **more: str) -> Any:
        proc = provenance_run(
            "--input=data=data.txt", "--output=model=m.txt", "--", *command,
            cwd=project, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **more,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert (project / "m.txt").read_text() == "model of rows after 5 epochs\n"
        record = block(project / "m.txt")
        assert record["launch"]["world_size"] == 2
        assert [r["status"] for r in record["launch"]["ranks"]] == ["succeeded"] * 2, proc.stderr
        assert record["outcome"]["status"] == "succeeded"
        assert record["inputs"]["data"]["path"] == "data.txt"
        return proc, record

    @pytest.mark.parametrize(
        ("launcher", "launcher_name"),
        [
            (["torchrun", "--nproc-per-node=2"], "torchrun"),
            (["mpirun", "-n", "2", PY], "openmpi"),
            (["accelerate", "launch", "-q", "--multi_gpu", "--num-processes=2", "--mixed-precision",
              "no"], "torchrun"),
            (["deepspeed", "-i=localhost:0,1", "--num_gpus=2", "--no_local"], "torch.distributed"),
        ],
    )  # fmt: skip
    def test_every_rank_runs_recorded_into_one_record(
        self, project: Path, bin_dir: Path, launcher: list[str], launcher_name: str
    ):
        proc, record = self.launched(
            project, bin_dir, *launcher, "train.py", "--data=data.txt", "--out", "m.txt"
        )
        assert "-m', 'provenance.launch', 'train.py', '--data=data.txt', '--out', 'm.txt']" in (
            proc.stderr
        )
        assert record["launch"]["launcher"] == launcher_name
        assert record["entrypoint"]["path"] == "train.py"
        assert record["argv"] == ["--data=data.txt", "--out", "m.txt"]
        assert record["args"]["out"] == "m.txt"

    @pytest.mark.parametrize(
        "launcher",
        [
            ["torchrun", "--module", "--nproc_per_node", "2"],
            ["accelerate", "launch", "-qm", "--num_processes", "2"],
            ["deepspeed", "--module", "--num_gpus=2", "--no_local_rank"],
        ],
    )
    def test_a_module_behind_a_launcher(self, project: Path, bin_dir: Path, launcher: list[str]):
        package = project / "pkg"
        package.mkdir()
        (package / "__init__.py").write_text("")
        shutil.copy(fake_path("plain_train"), package / "train.py")
        proc, record = self.launched(
            project, bin_dir, *launcher, "pkg.train", "--data", "data.txt", "--out=m.txt"
        )
        assert "'provenance.launch', '-m', 'pkg.train', '--data'" in proc.stderr
        assert record["entrypoint"]["path"] == "pkg/train.py"
        assert set(record["code"]) == {"pkg/__init__.py", "pkg/train.py"}
        assert record["args"]["data"] == "data.txt"

    def test_python_m_torch_distributed_run(self, project: Path, bin_dir: Path):
        # A stand-in torch whose torch.distributed.run is the stand-in torchrun, parser and all.
        run_module = project / "site" / "torch" / "distributed" / "run.py"
        run_module.parent.mkdir(parents=True)
        for folder in (run_module.parent, run_module.parent.parent):
            (folder / "__init__.py").write_text("")
        run_module.write_text(
            "import sys\n"
            "from tests.fakes.fake_launch import start, torchrun, torchrun_parser\n"
            "get_args_parser = torchrun_parser\n"
            "if __name__ == '__main__':\n"
            "    sys.exit(start(torchrun(sys.argv[1:])))\n"
        )
        site = f"{ROOT}{os.pathsep}{project / 'site'}"
        proc, record = self.launched(
            project, bin_dir, PY, "-u", "-m", "torch.distributed.run", "--nproc_per_node", "2",
            "train.py", "--data=data.txt", "--out", "m.txt",
            PYTHONPATH=site,
        )  # fmt: skip
        assert "'-m', 'provenance.launch', 'train.py', '--data=data.txt'" in proc.stderr
        assert record["launch"]["launcher"] == "torchrun"
        assert record["entrypoint"]["path"] == "train.py"

    def test_deepspeed_local_rank_reaches_the_script_first(self, project: Path, bin_dir: Path):
        script = project / "ds_train.py"
        source = fake_path("plain_train").read_text()
        end = '    parser.add_argument("--end"'
        script.write_text(
            source.replace(end, f'    parser.add_argument("--local_rank", type=int)\n{end}')
        )
        proc, record = self.launched(
            project, bin_dir, "deepspeed", "--num_gpus", "2", "ds_train.py", "--data=data.txt",
            "--out=m.txt",
        )  # fmt: skip
        # deepspeed puts it after what it runs, which is provenance.launch, not the script.
        assert "'provenance.launch', '--local_rank=0', 'ds_train.py', '--data" in proc.stderr
        # The job's record holds the lowest rank's arguments, whichever rank wrote it.
        assert record["argv"] == ["--local_rank=0", "--data=data.txt", "--out=m.txt"]
        assert record["args"]["local_rank"] == 0

    def test_torchrun_no_python_with_a_console_script(self, project: Path, bin_dir: Path):
        tool = bin_dir / "train-tool"
        tool.write_text(f"#!{PY}\n" + fake_path("plain_train").read_text())
        tool.chmod(0o755)
        proc, record = self.launched(
            project, bin_dir, "torchrun", "--no_python", "--nproc-per-node=2", "train-tool",
            "--data=data.txt", "--out=m.txt",
        )  # fmt: skip
        assert f"'provenance.launch', '{tool}', '--data=data.txt'" in proc.stderr
        assert record["entrypoint"]["path"] == "bin/train-tool"
        assert record["args"]["data"] == "data.txt"

    def test_no_python_with_a_program_that_is_not_python(self, project: Path, bin_dir: Path):
        proc = provenance_run(
            "--output=copy=copy.txt", "--", "torchrun", "--no-python", "--nproc-per-node=2",
            "sh", "-c", "cat data.txt > copy.txt",
            cwd=project, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "fake launcher runs: ['sh', '-c', 'cat data.txt > copy.txt']" in proc.stderr
        record = block(project / "copy.txt")
        assert record["entrypoint"]["kind"] == "program"
        assert record["entrypoint"]["path"] == "bin/torchrun"
        assert "launch" not in record


class TestRewrite:
    """Which part of a command is Python, and how it is put under the launcher module."""

    L = "provenance.launch"

    @pytest.mark.parametrize(
        ("command", "rewritten"),
        [
            (["python", "x.py", "a"], ["python", "-m", L, "x.py", "a"]),
            (["python3.11", "-u", "x.py"], ["python3.11", "-u", "-m", L, "x.py"]),
            (["python", "-W", "ignore", "x.py"], ["python", "-W", "ignore", "-m", L, "x.py"]),
            (["python", "-Xdev", "x.py", "-m"], ["python", "-Xdev", "-m", L, "x.py", "-m"]),
            (["python", "-m", "pkg.mod", "-v"], ["python", "-m", L, "-m", "pkg.mod", "-v"]),
            (["python", "-um", "pkg", "x.py"], ["python", "-u", "-m", L, "-m", "pkg", "x.py"]),
            (["python", "-c", "print(1)"], None),
            (["python"], None),
            (["python", "-"], None),
            (["python", "--version"], None),
            (["torchrun", "--nnodes=1", "x.py"], ["torchrun", "--nnodes=1", "-m", L, "x.py"]),
            (["mpirun", "-n2", "python3", "x.py"], ["mpirun", "-n2", "python3", "-m", L, "x.py"]),
            (["srun", "-N2", "python", "-m", "p"], ["srun", "-N2", "python", "-m", L, "-m", "p"]),
            (["mpirun", "-n", "2", "./a.out"], None),
        ],
    )  # fmt: skip
    def test_rewrite(self, command: list[str], rewritten: list[str] | None):
        assert python_command(command, f"/usr/bin/{command[0]}") == rewritten

    def test_a_shell_script_is_not_python(self, tmp_path: Path):
        script = tmp_path / "job.sh"
        script.write_text("#!/bin/sh\necho hi\n")
        assert python_command([str(script)], str(script)) is None

    def test_an_env_shebang_names_the_interpreter(self, tmp_path: Path):
        script = tmp_path / "tool"
        script.write_text("#!/usr/bin/env python3\nprint(1)\n")
        rewritten = python_command([str(script), "a"], str(script))
        assert rewritten == ["/usr/bin/env", "python3", "-m", self.L, str(script), "a"]


def test_a_system_without_sigtimedwait_is_told_in_one_line(monkeypatch, capsys):
    from provenance.cli import main as cli_main

    monkeypatch.delattr("signal.sigtimedwait")
    assert cli_main(["run", "--output=o=o.txt", "--", "true"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "sigtimedwait" in err


T = "provenance.launch"
RUN = ["python", "-m", "torch.distributed.run"]


class TestLauncherRewrite:
    """Each launcher's options kept as given, word for word; only the script part changes."""

    @pytest.mark.parametrize(
        ("command", "rewritten"),
        [
            # torchrun: --opt=value, --opt value, both spellings, abbreviations, short options.
            (["torchrun", "--nnodes=1", "x.py"], ["torchrun", "--nnodes=1", "-m", T, "x.py"]),
            (["torchrun", "--nnodes", "2", "--nproc_per_node", "4", "x.py", "--nnodes", "3"],
             ["torchrun", "--nnodes", "2", "--nproc_per_node", "4", "-m", T, "x.py", "--nnodes",
              "3"]),
            (["torchrun", "--standalone", "--rdzv-conf", "a=b.py", "train", "-m", "x"],
             ["torchrun", "--standalone", "--rdzv-conf", "a=b.py", "-m", T, "train", "-m", "x"]),
            (["torchrun", "--nproc-per", "2", "x.py"], ["torchrun", "--nproc-per", "2", "-m", T,
                                                        "x.py"]),
            (["torchrun", "-r", "3", "-t3", "x.py"], ["torchrun", "-r", "3", "-t3", "-m", T,
                                                      "x.py"]),
            (["torchrun", "--", "x.py", "-a"], ["torchrun", "--", "-m", T, "x.py", "-a"]),
            (["torchrun", "--master-port", "29501", "x"], ["torchrun", "--master-port", "29501",
                                                           "-m", T, "x"]),
            # torchrun -m / --module: the module follows provenance.launch's own -m.
            (["torchrun", "-m", "pkg", "-v"], ["torchrun", "-m", T, "-m", "pkg", "-v"]),
            (["torchrun", "--module", "--nnodes=1", "pkg.mod", "--module"],
             ["torchrun", "--module", "--nnodes=1", T, "-m", "pkg.mod", "--module"]),
            (["torchrun", "--nnodes", "1", "-m", "pkg"], ["torchrun", "--nnodes", "1", "-m", T,
                                                          "-m", "pkg"]),
            # What cannot be read, or puts no command of ours in a rank: left alone.
            (["torchrun", "--nproc", "2", "x.py"], None),  # ambiguous, as argparse says
            (["torchrun", "--unknown-opt", "x.py"], None),
            (["torchrun", "--standalone=1", "x.py"], None),
            (["torchrun", "--run-path", "/abs/x.py"], None),
            (["torchrun", "-m", "--no-python", "pkg"], None),
            (["torchrun", "--nnodes=1"], None),
            (["torchrun", "--nnodes"], None),
            # python -m torch.distributed.run: torchrun's options, the interpreter's kept.
            ([*RUN, "--nnodes=1", "x.py", "a"], [*RUN, "--nnodes=1", "-m", T, "x.py", "a"]),
            ([*RUN, "-m", "pkg"], [*RUN, "-m", T, "-m", "pkg"]),
            (["python3", "-u", "-m", "torch.distributed.run", "--nproc_per_node", "2", "x.py"],
             ["python3", "-u", "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", T,
              "x.py"]),
            (["python", "-um", "torch.distributed.run", "x.py"],
             ["python", "-um", "torch.distributed.run", "-m", T, "x.py"]),
            ([*RUN, "--run_path", "/x.py"], None),
            (["mpirun", "-n", "2", *RUN, "x.py"], ["mpirun", "-n", "2", *RUN, "-m", T, "x.py"]),
            # accelerate launch: _ or -, no abbreviation, -m/--module, flags clustered.
            (["accelerate", "launch", "--num_processes", "2", "x.py", "--num_processes", "3"],
             ["accelerate", "launch", "--num_processes", "2", "-m", T, "x.py", "--num_processes",
              "3"]),
            (["accelerate", "launch", "--num-processes=2", "--multi-gpu", "x.py"],
             ["accelerate", "launch", "--num-processes=2", "--multi-gpu", "-m", T, "x.py"]),
            (["accelerate", "launch", "--config_file", "c.yaml", "--mixed_precision", "bf16",
              "--gpu_ids", "0,1", "-q", "train.py", "-q"],
             ["accelerate", "launch", "--config_file", "c.yaml", "--mixed_precision", "bf16",
              "--gpu_ids", "0,1", "-q", "-m", T, "train.py", "-q"]),
            (["accelerate", "launch", "-m", "pkg.train", "--lr", "1"],
             ["accelerate", "launch", "-m", T, "-m", "pkg.train", "--lr", "1"]),
            (["accelerate", "launch", "--module", "--use_fsdp", "--fsdp_version", "2", "pkg"],
             ["accelerate", "launch", "--module", "--use_fsdp", "--fsdp_version", "2", T, "-m",
              "pkg"]),
            (["accelerate", "launch", "-qm", "pkg"], ["accelerate", "launch", "-qm", T, "-m",
                                                      "pkg"]),
            (["accelerate", "launch", "-t", "3", "x.py"], ["accelerate", "launch", "-t", "3",
                                                           "-m", T, "x.py"]),
            (["accelerate", "launch", "--num_proc", "2", "x.py"], None),  # no abbreviation
            (["accelerate", "config"], None),
            (["accelerate", "env"], None),
            (["accelerate"], None),
            # deepspeed: --module only (no -m), its options' own spelling, abbreviations.
            (["deepspeed", "--num_gpus", "2", "x.py", "--deepspeed", "ds.json"],
             ["deepspeed", "--num_gpus", "2", "--module", T, "x.py", "--deepspeed", "ds.json"]),
            (["deepspeed", "-H", "hosts", "-i", "w0:0,1", "--master_port=29501", "x.py"],
             ["deepspeed", "-H", "hosts", "-i", "w0:0,1", "--master_port=29501", "--module", T,
              "x.py"]),
            (["deepspeed", "--launcher", "openmpi", "--launcher_args", "-x FOO", "--no_ssh_check",
              "x.py"],
             ["deepspeed", "--launcher", "openmpi", "--launcher_args", "-x FOO", "--no_ssh_check",
              "--module", T, "x.py"]),
            (["deepspeed", "--module", "--num_nodes", "1", "pkg.train", "--module"],
             ["deepspeed", "--module", "--num_nodes", "1", T, "-m", "pkg.train", "--module"]),
            (["deepspeed", "--num_g", "2", "x.py"], ["deepspeed", "--num_g", "2", "--module", T,
                                                     "x.py"]),
            (["deepspeed", "-m", "pkg"], None),
            (["deepspeed", "--num-gpus", "2", "x.py"], None),  # not a spelling deepspeed takes
            (["deepspeed", "--module", "--no_python", "x"], None),
        ],
    )  # fmt: skip
    def test_rewrite(self, command: list[str], rewritten: list[str] | None):
        assert python_command(command, f"/usr/bin/{command[0]}") == rewritten

    @pytest.mark.parametrize(
        "head",
        [
            ["torchrun", "--no-python", "--nnodes", "1"],
            ["torchrun", "--nnodes=1", "--no_python"],
            ["accelerate", "launch", "--no-python", "--num_processes", "2"],
            ["deepspeed", "--no_python", "--num_gpus", "2"],
        ],
    )
    def test_no_python_runs_a_python_console_script_under_the_module(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, head: list[str]
    ):
        tool = tmp_path / "train-tool"
        tool.write_text("#!/usr/bin/env python3\nprint(1)\n")
        tool.chmod(0o755)
        shell = tmp_path / "job"
        shell.write_text("#!/bin/sh\necho 1\n")
        shell.chmod(0o755)
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
        rewritten = python_command([*head, "train-tool", "--lr", "1"], f"/usr/bin/{head[0]}")
        python = ["/usr/bin/env", "python3", "-m", T]
        assert rewritten == [*head, *python, str(tool), "--lr", "1"]
        assert python_command([*head, "job", "a"], f"/usr/bin/{head[0]}") is None
        assert python_command([*head, "no-such-tool"], f"/usr/bin/{head[0]}") is None

    def test_options_are_read_from_the_launchers_own_parser(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ):
        # An accelerate whose parser has an option the written table does not know.
        commands = tmp_path / "accelerate" / "commands"
        commands.mkdir(parents=True)
        for folder in (commands, commands.parent):
            (folder / "__init__.py").write_text("")
        (commands / "launch.py").write_text(
            "import argparse\n"
            "def launch_command_parser():\n"
            "    p = argparse.ArgumentParser(allow_abbrev=False)\n"
            "    p.add_argument('--new_option')\n"
            "    p.add_argument('--new_flag', action='store_true')\n"
            "    p.add_argument('-m', '--module', action='store_true')\n"
            "    p.add_argument('training_script')\n"
            "    p.add_argument('args', nargs=argparse.REMAINDER)\n"
            "    return p\n"
        )
        command = ["accelerate", "launch", "--new_option", "v", "--new_flag", "x.py"]
        assert python_command(command, "/usr/bin/accelerate") is None  # unknown: not guessed
        monkeypatch.syspath_prepend(str(tmp_path))
        for name in [m for m in sys.modules if m.split(".")[0] == "accelerate"]:
            monkeypatch.delitem(sys.modules, name)
        assert python_command(command, "/usr/bin/accelerate") == [*command[:-1], "-m", T, "x.py"]


def test_a_module_of_the_interpreters_own_is_run_in_the_working_folders_project(tmp_path):
    """``python -m json.tool`` lives in the interpreter's tree (a git checkout, for pyenv): the
    project is the working folder, not the module's, so its stdlib is no project code and the
    record verifies where it was made."""
    (tmp_path / "a.json").write_text('{"b": 1, "a": [1, 2]}\n')
    command = ["--input", "in=a.json", "--output", "out=b.json", "--"]
    command += [PY, "-m", "json.tool", "--sort-keys", "a.json", "b.json"]
    done = provenance_run(*command, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    record = block(tmp_path / "b.json")
    assert record["outputs"]["out"]["path"] == "b.json"
    assert record["inputs"]["in"]["path"] == "a.json"
    assert os.path.isabs(record["entrypoint"]["path"])  # outside the project: absolute
    assert record["code"] == {}
    verified = run_python("-m", "provenance", "verify", "b.json", cwd=tmp_path)
    assert "2 unchanged, 0 changed, 0 missing, 0 appeared, 1 skipped" in verified.stdout
    outside = run_python("-m", "provenance", "verify", "--outside-root", "b.json", cwd=tmp_path)
    assert outside.returncode == 0, outside.stdout + outside.stderr
