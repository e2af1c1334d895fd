"""Signals at every stage of a run, sent to real processes: the record is still honest."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FAKES, ROOT, default_signals, load_sidecar, sidecar_of


def start(*argv: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(FAKES / "faulty.py"), *map(str, argv)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,
    )


def wait_for(path: Path, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(
                f"the fake ended early: {proc.stderr.read() if proc.stderr else ''}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} never appeared")
        time.sleep(0.01)


def good_run(out: Path) -> bytes:
    proc = start("--out", out, "--tag", "good")
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    return sidecar_of(out).read_bytes()


@pytest.fixture
def inputs(tmp_path: Path) -> list[Path]:
    paths = []
    for i in range(4):
        path = tmp_path / f"in{i}.bin"
        path.write_bytes(bytes([i]) * 1000)
        paths.append(path)
    return paths


class TestWhileRecording:
    @pytest.mark.parametrize(
        ("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)]
    )
    def test_a_signal_during_the_exit_hashing_still_leaves_an_interrupted_record(
        self, tmp_path, inputs, signum, exit_code
    ):
        out, hashing = tmp_path / "model.bin", tmp_path / "hashing"
        earlier = good_run(out)
        proc = start(
            "--out", out, "--tag", "new", "--inputs", *inputs,
            "--slow-hashing", 0.5, "--hashing", hashing,
        )  # fmt: skip
        wait_for(hashing, proc)
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == -signum  # it still ends by the signal it was sent
        block = load_sidecar(sidecar_of(out))["run_provenance"]
        assert (block["outcome"]["status"], block["outcome"]["exit_code"]) == (
            "interrupted",
            exit_code,
        )
        entries = [*block["inputs"]["inputs"], block["outputs"]["model"]]
        not_hashed = [e for e in entries if "not_hashed" in e]
        # The signal came while the first path was being hashed: once it has, nothing more is.
        assert len(entries) - len(not_hashed) <= 1
        assert all("blake3" not in e for e in not_hashed)
        # The model was rewritten, so the earlier good record is kept aside, byte for byte.
        assert (tmp_path / "model.bin.manifest.previous.json").read_bytes() == earlier
        stderr = proc.stderr.read() if proc.stderr else ""
        if signum != signal.SIGINT:  # Ctrl-C ends in KeyboardInterrupt's traceback, as always
            assert "Traceback" not in stderr

    def test_a_second_signal_while_recording_still_leaves_the_record(self, tmp_path, inputs):
        out, ready, hashing = tmp_path / "model.bin", tmp_path / "ready", tmp_path / "hashing"
        proc = start(
            "--out", out, "--inputs", *inputs, "--hold", 30, "--ready", ready,
            "--slow-hashing", 0.5, "--hashing", hashing,
        )  # fmt: skip
        wait_for(ready, proc)
        proc.send_signal(signal.SIGTERM)  # the first: unwinds the script
        wait_for(hashing, proc)
        proc.send_signal(signal.SIGTERM)  # the second: arrives while the run records itself
        assert proc.wait(timeout=60) == -signal.SIGTERM
        block = load_sidecar(sidecar_of(out))["run_provenance"]
        assert block["outcome"]["status"] == "interrupted"
        assert any("not_hashed" in e for e in block["inputs"]["inputs"])


class TestWhileTheScriptRuns:
    @pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
    def test_terminating_signals_unwind_record_and_kill(self, tmp_path, signum, exit_code):
        out, ready = tmp_path / "model.bin", tmp_path / "ready"
        proc = start("--out", out, "--hold", 30, "--ready", ready)
        wait_for(ready, proc)
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == -signum
        outcome = load_sidecar(sidecar_of(out))["run_provenance"]["outcome"]
        assert (outcome["status"], outcome["exit_code"]) == ("interrupted", exit_code)
        assert not list(tmp_path.glob("*.running.*"))

    def test_kill_9_leaves_a_running_record_and_the_earlier_evidence(self, tmp_path):
        out, ready = tmp_path / "model.bin", tmp_path / "ready"
        earlier = good_run(out)
        proc = start("--out", out, "--tag", "new", "--hold", 30, "--ready", ready)
        wait_for(ready, proc)
        proc.kill()
        proc.wait(timeout=60)
        assert sidecar_of(out).read_bytes() == earlier
        (running,) = tmp_path.glob("model.bin.manifest.running.*.json")
        block = load_sidecar(running)["run_provenance"]
        assert block["outcome"] == {
            "status": "running",
            "exit_code": None,
            "error": None,
            "gates": {},
        }
        assert block["outputs"]["model"] == {"path": out.as_posix(), "pending": True}
        assert "--hold" in block["argv"]

        from provenance.record.sidecar import is_live

        assert not is_live(running)


WORKERS = """
import multiprocessing as mp, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.fakes import faulty

def work(i):
    return faulty.main(["--out", str(Path({folder!r}) / f"w{{i}}.bin"), "--tag", str(i)])

def hang(i):
    import time
    time.sleep(60)

if __name__ == "__main__":
    ctx = mp.get_context("fork")
    with ctx.Pool(2) as pool:
        print(pool.map(work, range(4)))
        pool.map_async(hang, range(2))
        import time
        time.sleep(0.5)
        pool.terminate()
"""


def test_forked_workers_record_their_own_runs_and_terminate_quietly(tmp_path):
    from provenance import recorded_run

    script = tmp_path / "pool.py"
    script.write_text(WORKERS.format(root=str(ROOT), folder=str(tmp_path)))

    # The parent runs inside a recorded run, as a decorated main that starts a pool would.
    with recorded_run(outputs={"log": tmp_path / "parent.log"}, root=tmp_path):
        proc = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
        )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[0, 0, 0, 0]"
    for i in range(4):
        outcome = load_sidecar(sidecar_of(tmp_path / f"w{i}.bin"))["run_provenance"]["outcome"]
        assert outcome["status"] == "succeeded"
    assert "Terminated" not in proc.stderr
    assert "Traceback" not in proc.stderr
