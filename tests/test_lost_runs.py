"""A lost run's record (kill -9 left it) stays until a record that accounts for it is written.

Each run here is a real process (the faulty trainer, the ranked fake, or a small script),
killed with real signals. After a lost
run, whatever a later run does, ``verify`` and ``show`` go on naming the lost run until a later
run rewrote every output the lost run declared and took the sidecar's place; no run removes
evidence it did not supersede.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import blake3
import pytest

from provenance.ranks import WAIT_ENVIRONMENT
from provenance.record.sidecar import is_live, running_records, side_record_path
from tests.conftest import FAKES, ROOT, default_signals, fake_path, load_sidecar, sidecar_of
from tests.handmade import run_cli

SIZE = 4096


def start(*argv: object, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(FAKES / "faulty.py"), *map(str, argv)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT), **(env or {})),
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,
    )


def finish(proc: subprocess.Popen[str]) -> int:
    proc.communicate(timeout=120)
    return proc.returncode


def base_env_for_ranks() -> dict[str, str]:
    # Ranks that settle end the wait at once; the bound only keeps a broken test short.
    return dict(os.environ, PYTHONPATH=str(ROOT), **{WAIT_ENVIRONMENT: "20"})


def wait_until(done: Any, proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 60
    while not done():
        if proc.poll() is not None:
            raise AssertionError(f"the fake ended before {what}: {proc.stderr.read()}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.01)


def bytes_of(tag: str) -> bytes:
    unit = (tag * 64).encode()
    return (unit * (SIZE // len(unit) + 1))[:SIZE]


def holds(out: Path, tag: str) -> bool:
    try:
        return out.read_bytes() == bytes_of(tag)
    except OSError:
        return False


def ran(out: Path, tag: str, *argv: object) -> int:
    return finish(start("--out", out, "--tag", tag, "--size", SIZE, *argv))


def lost_run(out: Path, tag: str, *, write: bool = True) -> Path:
    """A run killed with SIGKILL while it holds (after rewriting ``out``, if ``write``); the
    running record it left."""
    ready = out.with_name(f"ready.{tag}")
    before = set(running_records(sidecar_of(out)))
    argv = ["--out", out, "--tag", tag, "--size", SIZE, "--ready", ready, "--hold", 600]
    proc = start(*argv, *([] if write else ["--no-write"]))
    wait_until(ready.exists, proc, "it was under way")
    if write:
        wait_until(lambda: holds(out, tag), proc, f"it wrote {out.name}")
    proc.send_signal(signal.SIGKILL)
    assert finish(proc) == -signal.SIGKILL
    (left,) = set(running_records(sidecar_of(out))) - before
    assert not is_live(left)
    return left


def interrupted_before_writing(out: Path, tag: str, signum: int) -> int:
    ready = out.with_name(f"ready.{tag}")
    argv = ["--out", out, "--tag", tag, "--no-write", "--ready", ready, "--hold", 600]
    proc = start(*argv)
    wait_until(ready.exists, proc, "it was under way")
    proc.send_signal(signum)
    return finish(proc)


def verified(out: Path) -> tuple[int, dict[str, str]]:
    """verify's exit code and each check's status, by its path (a record's by its name)."""
    result = run_cli("verify", "--json", "--outside-root", "--no-code", out)
    assert result.code in (0, 1), result.err
    (report,) = json.loads(result.out)
    return result.code, {c["path"]: c["status"] for c in report["checks"]}


def shown_running(out: Path) -> dict[str, str]:
    result = run_cli("show", "--json", out)
    assert result.code == 0, result.err
    return {Path(r["record"]).name: r["state"] for r in json.loads(result.out)["running"]}


def described(out: Path) -> str:
    return load_sidecar(sidecar_of(out))["run_provenance"]["outputs"]["model"]["blake3"]


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """A model with a successful record of its ``good`` bytes."""
    model = tmp_path / "model.bin"
    assert ran(model, "good") == 0
    assert described(model) == blake3.blake3(bytes_of("good")).hexdigest()
    return model


class TestALaterRunThatDidNotWriteIt:
    @pytest.mark.parametrize(("end", "code"), [("fail", 1), ("raise", 1), ("ok", 0)])
    def test_leaves_the_lost_runs_record_and_verify_names_it(self, out, end, code):
        good = sidecar_of(out).read_bytes()
        lost = lost_run(out, "lost")
        assert ran(out, "later", "--no-write", "--end", end) == code
        status = {"fail": "failed", "raise": "failed", "ok": "succeeded"}[end]
        assert side_record_path(sidecar_of(out), status).exists()
        assert sidecar_of(out).read_bytes() == good  # the record of the bytes before
        assert running_records(sidecar_of(out)) == [lost]
        verdict, checks = verified(out)
        assert verdict == 1
        assert checks[lost.name] == "lost"
        assert checks[str(out)] == "changed"  # the lost run's bytes, named by its record
        assert shown_running(out) == {lost.name: "lost"}
        # the later run's own record, beside, names the lost run too
        _, beside = verified(side_record_path(sidecar_of(out), status))
        assert beside[lost.name] == "lost"

    @pytest.mark.parametrize(
        ("signum", "code"), [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, -signal.SIGINT)]
    )
    def test_interrupted_leaves_it_too(self, out, signum, code):
        lost = lost_run(out, "lost")
        assert interrupted_before_writing(out, "later", signum) == code
        assert side_record_path(sidecar_of(out), "interrupted").exists()
        assert running_records(sidecar_of(out)) == [lost]
        assert verified(out)[1][lost.name] == "lost"
        assert shown_running(out) == {lost.name: "lost"}

    def test_two_lost_runs_in_a_row_both_stay(self, out):
        first = lost_run(out, "one")
        second = lost_run(out, "two")
        assert ran(out, "later", "--no-write", "--end", "fail") == 1
        assert running_records(sidecar_of(out)) == sorted([first, second])
        checks = verified(out)[1]
        assert (checks[first.name], checks[second.name]) == ("lost", "lost")
        assert shown_running(out) == {first.name: "lost", second.name: "lost"}

    def test_a_lost_run_killed_before_it_wrote_stays_as_well(self, out):
        # Its record cannot say whether it wrote: it says a run was cut off, and verify finds
        # the bytes as the sidecar describes them.
        lost = lost_run(out, "never", write=False)
        assert ran(out, "later", "--no-write", "--end", "fail") == 1
        assert running_records(sidecar_of(out)) == [lost]
        verdict, checks = verified(out)
        assert (verdict, checks[lost.name], checks[str(out)]) == (1, "lost", "unchanged")

    def test_the_first_run_lost_then_a_failed_run_takes_the_empty_place_and_keeps_it(
        self, tmp_path
    ):
        # No sidecar yet: the failed run's record takes its place without rewriting the model,
        # which is still the lost run's.
        model = tmp_path / "model.bin"
        lost = lost_run(model, "lost")
        assert ran(model, "later", "--no-write", "--end", "fail") == 1
        assert load_sidecar(sidecar_of(model))["run_provenance"]["outcome"]["status"] == "failed"
        assert running_records(sidecar_of(model)) == [lost]
        assert verified(model)[1][lost.name] == "lost"


class TestALaterRunThatRewroteIt:
    @pytest.mark.parametrize(("end", "code"), [("ok", 0), ("fail", 1)])
    def test_supersedes_every_lost_run_before_it(self, out, end, code):
        lost_run(out, "one")
        lost_run(out, "two", write=False)
        assert ran(out, "new", "--end", end) == code
        # Every output the lost runs declared is rewritten, and the record of these bytes is
        # the sidecar: nothing on disk is left of them.
        assert running_records(sidecar_of(out)) == []
        assert described(out) == blake3.blake3(bytes_of("new")).hexdigest()
        verdict, checks = verified(out)
        assert checks[str(out)] == "unchanged"
        assert verdict == 0
        assert shown_running(out) == {}

    def test_a_run_lost_while_it_ran_is_a_concurrent_writer_and_stays(self, out):
        ready = out.with_name("ready.long")
        argv = ["--out", out, "--tag", "long", "--size", SIZE, "--ready", ready, "--hold", 600]
        long = start(*argv)
        wait_until(lambda: holds(out, "long"), long, "it wrote the model")
        lost = lost_run(out, "meanwhile")  # rewrote the model while the long run held
        long.send_signal(signal.SIGTERM)
        assert finish(long) == -signal.SIGTERM
        entry = load_sidecar(sidecar_of(out))["run_provenance"]["outputs"]["model"]
        # The bytes are the lost run's: the record says it cannot vouch for them.
        assert entry["written_by_run"] is True
        assert entry["concurrent_writers"] is True
        assert running_records(sidecar_of(out)) == [lost]
        assert verified(out)[1][lost.name] == "lost"


GLOB_ONLY = """
import argparse, sys, time
from pathlib import Path
from provenance import Glob, recorded_run

@recorded_run(outputs={"model": Glob("{out}")})
def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out")
    parser.add_argument("--ready")
    args = parser.parse_args(argv)
    Path(args.out).write_bytes(b"glob" * 1024)
    Path(args.ready).write_text("ready")
    time.sleep(600)
    return 0

if __name__ == "__main__":
    sys.exit(main())
"""


class TestASidecarFirstKnownAtExit:
    def test_a_run_lost_meanwhile_is_a_concurrent_writer_and_stays(self, out, tmp_path):
        # A run whose only output is a Glob learns where its record goes when it ends: which
        # runs were already lost when it began is not known then, so it supersedes none, and
        # one whose record was written since it began wrote alongside it.
        script = tmp_path / "glob_only.py"
        script.write_text(GLOB_ONLY)
        ready = tmp_path / "ready.glob"
        glob = subprocess.Popen(
            [sys.executable, str(script), "--out", str(out), "--ready", str(ready)],
            cwd=tmp_path,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=default_signals,
        )
        wait_until(ready.exists, glob, "it wrote the model")
        lost = lost_run(out, "meanwhile")
        glob.send_signal(signal.SIGTERM)
        assert finish(glob) == -signal.SIGTERM
        (entry,) = load_sidecar(sidecar_of(out))["run_provenance"]["outputs"]["model"]
        assert entry["written_by_run"] is True
        assert entry["concurrent_writers"] is True
        assert running_records(sidecar_of(out)) == [lost]
        assert verified(out)[1][lost.name] == "lost"


LITERAL = """
import argparse, sys, time
from pathlib import Path
from provenance import recorded_run

MODEL = Path(__file__).with_name("model.bin")

@recorded_run(outputs={"model": MODEL})
def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--ready")
    args = parser.parse_args(argv)
    MODEL.write_bytes(b"lost" * 1024)
    Path(args.ready).write_text("ready")
    time.sleep(600)
    return 0

if __name__ == "__main__":
    sys.exit(main())
"""


def test_a_run_that_ends_in_argparse_leaves_a_lost_runs_record(tmp_path):
    # A literal output path gives the run its running record before the arguments are
    # parsed; --help then ends it with nothing run, and nothing of another run's removed.
    script = tmp_path / "literal.py"
    script.write_text(LITERAL)
    model, ready = tmp_path / "model.bin", tmp_path / "ready"

    def started(*argv: object) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(script), *map(str, argv)],
            cwd=tmp_path,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=default_signals,
        )

    lost = started("--ready", ready)
    wait_until(ready.exists, lost, "it wrote the model")
    lost.send_signal(signal.SIGKILL)
    assert finish(lost) == -signal.SIGKILL
    (left,) = running_records(sidecar_of(model))
    assert finish(started("--help")) == 0
    assert running_records(sidecar_of(model)) == [left]
    assert not sidecar_of(model).exists()
    assert shown_running(model) == {}  # the lost run's own record is the one shown
    result = run_cli("show", "--json", model)
    assert json.loads(result.out)["state"] == "lost"


class TestRanks:
    def launch(self, out: Path, *argv: object) -> list[int]:
        def env(rank: int) -> dict[str, str]:
            ranks = {"OMPI_COMM_WORLD_RANK": str(rank), "OMPI_COMM_WORLD_SIZE": "2"}
            return dict(base_env_for_ranks(), **ranks)

        command = [sys.executable, str(fake_path("ranked")), "--out", str(out), *map(str, argv)]
        procs = [
            subprocess.Popen(command, env=env(r), cwd=ROOT, stderr=subprocess.PIPE, text=True)
            for r in range(2)
        ]
        return [finish(p) for p in procs]

    def lone(self, out: Path, *argv: object) -> int:
        command = [sys.executable, str(fake_path("ranked")), "--out", str(out), *map(str, argv)]
        proc = subprocess.Popen(
            command,
            env=base_env_for_ranks(),
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=default_signals,
        )
        return finish(proc)

    def test_a_job_that_wrote_nothing_leaves_an_earlier_lost_run(self, tmp_path):
        out = tmp_path / "model.json"
        assert self.lone(out) == 0
        assert self.lone(out, "--kill-rank", "0") == -signal.SIGKILL  # after saving the model
        (lost,) = running_records(sidecar_of(out))
        assert self.launch(out, "--save-rank", "5") == [0, 0]
        assert side_record_path(sidecar_of(out), "succeeded").exists()
        assert running_records(sidecar_of(out)) == [lost]
        assert verified(out)[1][lost.name] == "lost"

    def test_a_job_that_wrote_nothing_leaves_its_own_lost_ranks_record(self, tmp_path):
        # The job's record goes beside the sidecar: the killed rank may have written the
        # model, and the sidecar does not describe that.
        out = tmp_path / "model.json"
        assert self.lone(out) == 0
        assert self.launch(out, "--save-rank", "5", "--kill-rank", "1") == [0, -signal.SIGKILL]
        failed = side_record_path(sidecar_of(out), "failed")
        ranks = load_sidecar(failed)["run_provenance"]["launch"]["ranks"]
        assert [r["status"] for r in ranks] == ["succeeded", "lost"]
        (lost,) = running_records(sidecar_of(out))
        assert not is_live(lost)
        assert verified(out)[1][lost.name] == "lost"

    def test_a_job_that_rewrote_it_supersedes_an_earlier_lost_run(self, tmp_path):
        out = tmp_path / "model.json"
        assert self.lone(out, "--kill-rank", "0") == -signal.SIGKILL
        assert len(running_records(sidecar_of(out))) == 1
        assert self.launch(out) == [0, 0]
        assert running_records(sidecar_of(out)) == []
        assert verified(out)[0] == 0


def test_a_lost_runs_own_record_reads_as_lost_not_as_under_way(tmp_path):
    """With no final record, show and verify describe the lost run itself: no outcome
    "running", no output "pending" as if it could still be measured."""
    model = tmp_path / "model.bin"
    left = lost_run(model, "lost", write=False)
    shown = run_cli("show", left)
    assert shown.code == 0, shown.err
    assert "outcome         lost (the run never ended: no outcome, no exit code)" in shown.out
    assert "never measured: the run was lost before it ended" in shown.out
    assert "pending" not in shown.out
    assert "running" not in shown.out.split("\n", 1)[1]
    result = run_cli("verify", "--json", "--outside-root", "--no-code", left)
    (report,) = json.loads(result.out)
    statuses = {c["group"]: c["status"] for c in report["checks"]}
    assert statuses == {"record": "lost", "output": "skipped"}
    assert result.code == 1
