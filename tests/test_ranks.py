"""Distributed launches: N real processes with each launcher's variables leave one record."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from provenance.ranks import (
    HANDOFF_SCHEMA,
    MAX_WORLD_SIZE,
    WAIT_ENVIRONMENT,
    Handoff,
    Launch,
    assemble,
    detect,
    parts_of,
    ranks_folder,
)
from provenance.record.sidecar import atomic_write, is_live
from tests.conftest import (
    ROOT,
    fake_path,
    load_sidecar,
    run_python,
    sidecar_bytes,
    sidecar_of,
)
from tests.handmade import hang_guard

# Ranks that settle end the wait at once; only a rank that never shows waits it out. Long, so
# that a rank a loaded machine starts late is still waited for.
WAIT_S = "120"


def torchrun_env(rank: int, size: int) -> dict[str, str]:
    return {
        "RANK": str(rank),
        "WORLD_SIZE": str(size),
        "LOCAL_RANK": str(rank),
        "TORCHELASTIC_RUN_ID": "job-7",
    }


def slurm_env(rank: int, size: int) -> dict[str, str]:
    return {"SLURM_PROCID": str(rank), "SLURM_NTASKS": str(size), "SLURM_JOB_ID": "4242"}


def ompi_env(rank: int, size: int) -> dict[str, str]:
    return {"OMPI_COMM_WORLD_RANK": str(rank), "OMPI_COMM_WORLD_SIZE": str(size)}


def pmi_env(rank: int, size: int) -> dict[str, str]:
    return {"PMI_RANK": str(rank), "PMI_SIZE": str(size)}


def base_env(wait: str = WAIT_S) -> dict[str, str]:
    """The suite's environment (no launch variables: conftest drops them), the bound lowered."""
    return dict(os.environ, PYTHONPATH=str(ROOT), **{WAIT_ENVIRONMENT: wait})


@dataclass
class Job:
    out: Path
    codes: list[int]
    stderr: list[str]

    @property
    def record(self) -> dict[str, Any]:
        return load_sidecar(sidecar_of(self.out))["run_provenance"]

    def left_beside(self) -> list[str]:
        """Every name in the folder that is neither an artifact nor the one record."""
        keep = {self.out.name, sidecar_of(self.out).name, "ready"}
        return sorted(
            n
            for n in os.listdir(self.out.parent)
            if n not in keep and not (n.startswith("log.rank") and n.endswith(".txt"))
        )


def launch(
    out: Path,
    size: int,
    env_of: Callable[[int, int], dict[str, str]],
    *argv: object,
    ranks: range | None = None,
    wait: str = WAIT_S,
    launcher: Callable[[list[subprocess.Popen[str]]], None] | None = None,
    extra: dict[str, str] | None = None,
) -> Job:
    """Start ``size`` ranks of the fake as real processes, as a launcher does; wait for all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(fake_path("ranked")), "--out", str(out), *map(str, argv)]
    procs = [
        subprocess.Popen(
            command,
            env=dict(base_env(wait), **env_of(rank, size), **(extra or {})),
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (ranks if ranks is not None else range(size))
    ]
    if launcher is not None:
        launcher(procs)
    stderr = [p.communicate(timeout=120)[1] for p in procs]
    return Job(out, [p.returncode for p in procs], stderr)


def entries(slot: Any) -> list[dict[str, Any]]:
    return slot if isinstance(slot, list) else [slot]


def statuses(record: dict[str, Any]) -> list[str]:
    return [r["status"] for r in record["launch"]["ranks"]]


class TestDetect:
    @pytest.mark.parametrize(
        ("env_of", "launcher"),
        [
            (torchrun_env, "torchrun"),
            (slurm_env, "slurm"),
            (ompi_env, "openmpi"),
            (pmi_env, "pmi"),
        ],
    )
    def test_each_launcher(self, env_of: Callable[[int, int], dict[str, str]], launcher: str):
        found, problem = detect(env_of(3, 8))
        assert problem is None
        assert found is not None
        assert (found.launcher, found.rank, found.world_size) == (launcher, 3, 8)

    def test_rank_variables_without_torchelastic_are_torch_distributed(self):
        found, _ = detect({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
        assert found is not None
        assert found.launcher == "torch.distributed"

    def test_the_largest_world_taken_for_a_job(self):
        found, problem = detect({"RANK": "3", "WORLD_SIZE": str(MAX_WORLD_SIZE)})
        assert problem is None
        assert found is not None
        assert found.world_size == MAX_WORLD_SIZE

    def test_torchrun_inside_slurm_takes_the_global_rank(self):
        env = {**slurm_env(1, 2), **torchrun_env(5, 8)}
        found, _ = detect(env)
        assert found is not None
        assert (found.launcher, found.rank) == ("torchrun", 5)

    @pytest.mark.parametrize("env", [{}, {"RANK": "0", "WORLD_SIZE": "1"}, slurm_env(0, 1)])
    def test_a_world_of_one_is_an_ordinary_run(self, env: dict[str, str]):
        assert detect(env) == (None, None)

    @pytest.mark.parametrize(
        "env",
        [
            {"RANK": "x", "WORLD_SIZE": "4"},
            {"PMI_RANK": "4", "PMI_SIZE": "4"},
            # A lie about the size: no job waits on a million presences or writes their record.
            {"RANK": "0", "WORLD_SIZE": "1000000"},
            {"RANK": "0", "WORLD_SIZE": "-5"},
            {"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "0"},
        ],
    )
    def test_nonsense_is_warned_about_and_recorded_alone(self, env: dict[str, str]):
        found, problem = detect(env)
        assert found is None
        assert problem is not None


@pytest.fixture(scope="module")
def alone_records(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    out = tmp_path_factory.mktemp("alone") / "model.json"
    found = []
    for extra in ({}, {"RANK": "0", "WORLD_SIZE": "1"}, slurm_env(0, 1)):
        proc = subprocess.run(
            [sys.executable, str(fake_path("ranked")), "--out", str(out), "--logs"],
            env=dict(base_env(), **extra),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stderr == ""
        found.append(sidecar_bytes(sidecar_of(out)))
        assert sorted(os.listdir(out.parent)) == [
            "log.rank0.txt",
            "model.json",
            "model.json.manifest.json",
        ]
    return found


class TestNoLaunch:
    """Without rank variables, or in a world of one, a run is recorded as it always was."""

    def test_world_of_one_is_byte_identical_to_no_launch(self, alone_records: list[bytes]):
        assert alone_records[1] == alone_records[0]
        assert alone_records[2] == alone_records[0]

    def test_no_launch_block_and_no_rank_fields(self, alone_records: list[bytes]):
        text = alone_records[0].decode()
        assert '"launch"' not in text
        assert "written_by_ranks" not in text
        assert '"rank"' not in text


@pytest.fixture(scope="module")
def all_succeed(tmp_path_factory: pytest.TempPathFactory) -> Job:
    """Four torchrun ranks, rank 0 saves the model, each rank writes its own log."""
    return launch(tmp_path_factory.mktemp("ok") / "model.json", 4, torchrun_env, "--logs")


class TestEveryRankSucceeds:
    def test_exit_codes_are_the_ranks_own(self, all_succeed: Job):
        assert all_succeed.codes == [0, 0, 0, 0], all_succeed.stderr

    def test_one_record_and_nothing_left_beside_it(self, all_succeed: Job):
        assert all_succeed.left_beside() == []
        assert not ranks_folder(sidecar_of(all_succeed.out)).exists()

    def test_launcher_world_size_and_every_rank_outcome(self, all_succeed: Job):
        record = all_succeed.record
        assert record["launch"]["launcher"] == "torchrun"
        assert record["launch"]["world_size"] == 4
        assert statuses(record) == ["succeeded"] * 4
        assert record["outcome"]["status"] == "succeeded"
        assert record["outcome"]["exit_code"] == 0

    def test_the_model_is_credited_to_rank_0_alone(self, all_succeed: Job):
        model = all_succeed.record["outputs"]["model"]
        assert model["written_by_run"] is True
        assert model["written_by_ranks"] == [0]
        assert "concurrent_writers" not in model

    def test_each_log_is_credited_to_the_rank_that_wrote_it(self, all_succeed: Job):
        logs = entries(all_succeed.record["outputs"]["log"])
        assert [(Path(e["path"]).name, e["written_by_ranks"]) for e in logs] == [
            (f"log.rank{r}.txt", [r]) for r in range(4)
        ]

    def test_no_run_id_host_or_pid_in_the_record(self, all_succeed: Job):
        text = sidecar_of(all_succeed.out).read_text()
        assert "job-7" not in text
        assert os.uname().nodename not in text
        assert "ended_ns" not in text
        assert "started_ns" not in text


class TestShow:
    def test_show_names_the_launch_and_the_ranks_that_did_not_succeed(self, rank3_fails: Job):
        proc = run_python("-m", "provenance", "show", rank3_fails.out)
        assert proc.returncode == 0, proc.stderr
        assert "  launch          slurm, 4 ranks: rank 3 failed first\n" in proc.stdout

    def test_show_json_carries_the_launch(self, all_succeed: Job):
        proc = run_python("-m", "provenance", "show", "--json", all_succeed.out)
        assert json.loads(proc.stdout)["launch"]["world_size"] == 4

    def test_show_of_a_lone_run_has_no_launch(self, alone_records: list[bytes], tmp_path: Path):
        out = tmp_path / "model.json"
        sidecar_of(out).write_bytes(alone_records[0])
        proc = run_python("-m", "provenance", "show", "--json", out)
        assert "launch" not in json.loads(proc.stdout)


class TestRankZeroFirstOrLast:
    def test_same_record_whether_rank_0_ends_first_or_last(self, tmp_path: Path):
        out = tmp_path / "model.json"
        records = []
        for late in ("0:1.5", "1:1.5"):  # rank 0 ends last, then first
            job = launch(out, 3, slurm_env, extra={"RANKED_LATE": late})
            assert job.codes == [0, 0, 0], job.stderr
            assert job.left_beside() == []
            records.append(sidecar_bytes(sidecar_of(out)))
            assert statuses(job.record) == ["succeeded"] * 3
            assert job.record["outputs"]["model"]["written_by_ranks"] == [0]
        assert records[0] == records[1]

    def test_every_rank_saving_the_model_says_whose_bytes_are_unknown(self, tmp_path: Path):
        job = launch(tmp_path / "model.json", 3, pmi_env, "--save-rank", "-1")
        model = job.record["outputs"]["model"]
        assert model["written_by_ranks"] == [0, 1, 2]
        assert model["concurrent_writers"] is True

    def test_a_model_written_from_c_is_of_an_unknown_rank_not_concurrent_writers(
        self, tmp_path: Path
    ):
        # As torch.save does: the bytes change, and no rank's Python heard them written.
        job = launch(
            tmp_path / "model.json", 3, torchrun_env, "--save-rank", "-2", "--c-write-rank", "0"
        )
        assert job.codes == [0, 0, 0], job.stderr
        model = job.record["outputs"]["model"]
        assert model["written_by_run"] is True
        assert model["written_by_ranks"] is None
        assert 0 in model["candidate_ranks"]
        assert set(model["candidate_ranks"]) <= {0, 1, 2}
        assert "concurrent_writers" not in model


@pytest.fixture(scope="module")
def rank3_fails(tmp_path_factory: pytest.TempPathFactory) -> Job:
    return launch(tmp_path_factory.mktemp("fail") / "model.json", 4, slurm_env, "--fail-rank", "3")


class TestOneRankFails:
    def test_exit_codes_are_the_ranks_own(self, rank3_fails: Job):
        assert rank3_fails.codes == [0, 0, 0, 1]
        assert "rank 3 ran out of memory" in rank3_fails.stderr[3]

    def test_the_job_failed_with_rank_3s_error(self, rank3_fails: Job):
        outcome = rank3_fails.record["outcome"]
        assert outcome["status"] == "failed"
        assert outcome["exit_code"] == 1
        assert outcome["rank"] == 3
        assert outcome["error"] == {
            "type": "RuntimeError",
            "message": "rank 3 ran out of memory",
        }

    def test_rank_0_returned_0_and_says_so(self, rank3_fails: Job):
        assert statuses(rank3_fails.record) == ["succeeded"] * 3 + ["failed"]
        assert rank3_fails.left_beside() == []


def _broken_after(rank: int, go: Path) -> Callable[[list[subprocess.Popen[str]]], None]:
    """What a collective does: once rank ``rank``'s process is gone, its peers' calls fail."""

    def launcher(procs: list[subprocess.Popen[str]]) -> None:
        procs[rank].wait(timeout=60)
        go.touch()

    return launcher


class TestFirstToFail:
    """The job's error is the rank that failed first in time; the others are its consequence."""

    def test_a_higher_rank_failing_first_is_the_jobs_error(self, tmp_path: Path):
        go = tmp_path / "go"
        args = ("--fail-rank", "1", "--broken-rank", "0", "--broken-when", go)
        job = launch(tmp_path / "model.json", 3, torchrun_env, *args, launcher=_broken_after(1, go))
        assert job.codes == [1, 1, 0], job.stderr
        record = job.record
        outcome = record["outcome"]
        assert outcome["rank"] == 1
        assert outcome["status"] == "failed"
        assert outcome["error"] == {"type": "RuntimeError", "message": "rank 1 ran out of memory"}
        ranks = record["launch"]["ranks"]
        assert ranks[1]["failed_first"] is True
        assert ranks[0]["status"] == "failed"
        assert ranks[0]["consequence_of"] == 1
        assert ranks[0]["error"]["message"] == "Connection closed by peer"
        assert "consequence_of" not in ranks[2]
        assert "failed_first" not in ranks[2]
        assert "ended_ns" not in sidecar_of(job.out).read_text()
        shown = run_python("-m", "provenance", "show", job.out).stdout
        assert "outcome         failed (exit 1) on rank 1: RuntimeError: rank 1 ran out" in shown
        assert "ranks: rank 0 failed after rank 1, rank 1 failed first\n" in shown

    def test_a_rank_lost_before_another_failed_is_the_jobs_error(self, tmp_path: Path):
        # Rank 1 is killed (the OOM killer); rank 0's collective then fails. The rank lost
        # first is the cause, not a rank the launcher killed after rank 0 failed.
        go = tmp_path / "go"
        args = ("--kill-rank", "1", "--broken-rank", "0", "--broken-when", go)
        job = launch(tmp_path / "model.json", 2, torchrun_env, *args, launcher=_broken_after(1, go))
        assert job.codes == [1, -signal.SIGKILL], job.stderr
        record = job.record
        assert record["outcome"]["rank"] == 1
        assert record["outcome"]["status"] == "failed"
        assert record["outcome"]["error"]["type"] == "provenance.RankLost"
        ranks = record["launch"]["ranks"]
        assert (ranks[1]["status"], ranks[1].get("failed_first")) == ("lost", True)
        assert (ranks[0]["status"], ranks[0]["consequence_of"]) == ("failed", 1)


class TestTheJobsRecordWrittenAgain:
    """A job that writes its record more than once, none of its outputs written: the most
    complete record of the job ends at the sidecar's name, never one it wrote earlier; the
    record of an earlier job there is still kept."""

    def test_a_rank_failing_after_the_first_replaces_the_record_at_the_sidecar(
        self, tmp_path: Path
    ):
        # Rank 1 fails and writes the record with rank 0 still running; rank 0's collective
        # then fails, and its complete record takes the sidecar's place.
        go = tmp_path / "go"
        args = ("--save-rank", "-2", "--fail-rank", "1", "--broken-rank", "0", "--broken-when", go)
        job = launch(tmp_path / "model.json", 2, torchrun_env, *args, launcher=_broken_after(1, go))
        assert job.codes == [1, 1], job.stderr
        record = job.record
        assert statuses(record) == ["failed", "failed"]
        assert record["outcome"]["rank"] == 1
        assert record["launch"]["ranks"][0]["consequence_of"] == 1
        assert job.left_beside() == ["go"]  # no .failed.json beside, no hand-off folder
        shown = run_python("-m", "provenance", "show", job.out).stdout
        assert "ranks: rank 0 failed after rank 1, rank 1 failed first\n" in shown
        assert "attempts" not in shown

    def test_several_ranks_failing_one_after_another(self, tmp_path: Path):
        go = tmp_path / "go"
        args = ("--save-rank", "-2", "--fail-rank", "2", "--broken-rank", "0", "--broken-when", go)
        # Rank 2 fails, then rank 0's collective, each writing the record as far as it is
        # known; the launcher then stops rank 1, whose record is the complete one.
        job = launch(
            tmp_path / "model.json",
            3,
            torchrun_env,
            *args,
            "--hang-rank",
            "1",
            launcher=_broken_then_stop(2, go, 1),
        )
        assert job.codes == [1, -signal.SIGTERM, 1], job.stderr
        record = job.record
        assert statuses(record) == ["failed", "interrupted", "failed"]
        assert record["outcome"]["rank"] == 2
        assert job.left_beside() == ["go"]

    def test_a_rank_reporting_after_the_bound_completes_the_record_at_the_sidecar(
        self, tmp_path: Path
    ):
        # Ranks 0 and 1 wait 1 s for rank 2, then write the record with rank 2 missing. Rank 2
        # starts later, reports, and the record it writes is the job's complete one.
        out = tmp_path / "model.json"
        first = launch(out, 3, torchrun_env, "--save-rank", "-2", ranks=range(2), wait="1")
        assert first.codes == [0, 0], first.stderr
        assert statuses(first.record) == ["succeeded", "succeeded", "missing"]
        late = launch(out, 3, torchrun_env, "--save-rank", "-2", ranks=range(2, 3), wait="60")
        assert late.codes == [0], late.stderr
        record = late.record
        assert statuses(record) == ["succeeded"] * 3
        assert record["outcome"]["status"] == "succeeded"
        assert late.left_beside() == []

    def test_an_earlier_jobs_record_is_kept_and_the_jobs_goes_beside_complete(self, tmp_path: Path):
        out = tmp_path / "model.json"
        earlier = launch(out, 2, torchrun_env)  # rank 0 saves the model: the sidecar
        assert earlier.codes == [0, 0], earlier.stderr
        kept = sidecar_bytes(sidecar_of(out))
        go = tmp_path / "go"
        args = ("--save-rank", "-2", "--fail-rank", "1", "--broken-rank", "0", "--broken-when", go)
        job = launch(out, 2, torchrun_env, *args, launcher=_broken_after(1, go))
        assert job.codes == [1, 1], job.stderr
        assert sidecar_bytes(sidecar_of(out)) == kept
        beside = load_sidecar(out.with_name("model.json.manifest.failed.json"))["run_provenance"]
        assert statuses(beside) == ["failed", "failed"]
        assert job.left_beside() == ["go", "model.json.manifest.failed.json"]

    def test_beside_an_earlier_record_the_late_ranks_record_replaces_the_jobs_first(
        self, tmp_path: Path
    ):
        # Beside an earlier job's sidecar, the record with rank 2 missing goes as failed; once
        # rank 2 reports, the job succeeded: its record replaces that one, under its own name.
        out = tmp_path / "model.json"
        assert launch(out, 2, torchrun_env).codes == [0, 0]
        kept = sidecar_bytes(sidecar_of(out))
        first = launch(out, 3, torchrun_env, "--save-rank", "-2", ranks=range(2), wait="1")
        assert first.codes == [0, 0], first.stderr
        failed = load_sidecar(out.with_name("model.json.manifest.failed.json"))
        assert statuses(failed["run_provenance"]) == ["succeeded", "succeeded", "missing"]
        late = launch(out, 3, torchrun_env, "--save-rank", "-2", ranks=range(2, 3), wait="60")
        assert late.codes == [0], late.stderr
        assert sidecar_bytes(sidecar_of(out)) == kept
        beside = load_sidecar(out.with_name("model.json.manifest.succeeded.json"))
        assert statuses(beside["run_provenance"]) == ["succeeded"] * 3
        assert late.left_beside() == ["model.json.manifest.succeeded.json"]

    def test_an_earlier_jobs_unfinished_record_is_not_taken_for_this_jobs(self, tmp_path: Path):
        # The same launch run again: the earlier one ended with a rank missing, its hand-off
        # left behind; the next one, that writes nothing, must not replace its record.
        out = tmp_path / "model.json"
        earlier = launch(out, 3, torchrun_env, "--save-rank", "-2", ranks=range(2), wait="1")
        assert earlier.codes == [0, 0], earlier.stderr
        kept = sidecar_bytes(sidecar_of(out))
        time.sleep(1.5)  # past the freshness bound: its parts are an earlier job's
        job = launch(out, 3, torchrun_env, "--save-rank", "-2", wait="1")
        assert job.codes == [0, 0, 0], job.stderr
        assert sidecar_bytes(sidecar_of(out)) == kept
        beside = load_sidecar(out.with_name("model.json.manifest.succeeded.json"))
        assert statuses(beside["run_provenance"]) == ["succeeded"] * 3


def _broken_then_stop(
    rank: int, go: Path, hung: int
) -> Callable[[list[subprocess.Popen[str]]], None]:
    """Rank ``rank`` fails; its peers' collectives fail, and the launcher stops ``hung``."""

    def launcher(procs: list[subprocess.Popen[str]]) -> None:
        procs[rank].wait(timeout=60)
        go.touch()
        procs[0].wait(timeout=60)
        procs[hung].send_signal(signal.SIGTERM)

    return launcher


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _tear_down_after_failure(
    ready: Path, signum: int
) -> Callable[[list[subprocess.Popen[str]]], None]:
    """What torchrun and mpirun do: when a rank fails, stop the ranks still running."""

    def launcher(procs: list[subprocess.Popen[str]]) -> None:
        _wait_for(ready / "rank2")  # rank 2 is under way, its presence said
        procs[1].wait(timeout=60)
        procs[2].send_signal(signum)

    return launcher


def _kill_after_the_others_reported(
    folder: Path, ready: Path
) -> Callable[[list[subprocess.Popen[str]]], None]:
    def launcher(procs: list[subprocess.Popen[str]]) -> None:
        _wait_for(ready / f"rank{len(procs) - 1}")  # under way, its presence said
        for rank in range(len(procs) - 1):
            _wait_for_any(folder, f"rank{rank}.*.json")
        procs[-1].send_signal(signal.SIGKILL)

    return launcher


def _wait_for_any(folder: Path, pattern: str) -> None:
    deadline = time.monotonic() + 60
    while not any(folder.glob(pattern)):
        assert time.monotonic() < deadline, f"nothing like {pattern} in {folder}"
        time.sleep(0.02)


class TestKilledRanks:
    def test_a_rank_killed_after_the_others_reported_is_lost_and_nothing_is_left(
        self, tmp_path: Path
    ):
        ready = tmp_path / "ready"
        ready.mkdir()
        job = launch(
            tmp_path / "model.json",
            3,
            ompi_env,
            "--hang-rank",
            "2",
            "--ready",
            ready,
            launcher=_kill_after_the_others_reported(tmp_path / "model.json.manifest.ranks", ready),
        )
        assert job.codes == [0, 0, -signal.SIGKILL]
        record = job.record
        assert statuses(record) == ["succeeded", "succeeded", "lost"]
        assert record["outcome"]["status"] == "failed"
        assert record["outcome"]["rank"] == 2
        # its running record too: the job's record, written after it died, says what it became
        assert job.left_beside() == []

    def test_a_rank_killed_by_sigkill_alone_is_lost(self, tmp_path: Path):
        job = launch(tmp_path / "model.json", 3, ompi_env, "--kill-rank", "2")
        assert job.codes == [0, 0, -signal.SIGKILL]
        record = job.record
        assert record["launch"]["launcher"] == "openmpi"
        assert statuses(record) == ["succeeded", "succeeded", "lost"]
        assert record["outcome"]["status"] == "failed"
        assert record["outcome"]["rank"] == 2
        assert record["outcome"]["error"]["type"] == "provenance.RankLost"
        assert job.left_beside() == []

    def test_a_rank_the_launcher_terminates_after_another_failed_is_interrupted(
        self, tmp_path: Path
    ):
        ready = tmp_path / "ready"
        ready.mkdir()
        args = ("--fail-rank", "1", "--hang-rank", "2", "--ready", ready)
        job = launch(
            tmp_path / "model.json",
            3,
            pmi_env,
            *args,
            launcher=_tear_down_after_failure(ready, signal.SIGTERM),
        )
        assert job.codes == [0, 1, -signal.SIGTERM]
        record = job.record
        assert statuses(record) == ["succeeded", "failed", "interrupted"]
        assert record["launch"]["ranks"][2]["exit_code"] == 143
        assert record["outcome"]["status"] == "failed"
        assert record["outcome"]["rank"] == 1
        assert job.left_beside() == []

    def test_a_rank_the_launcher_kills_after_another_failed_is_interrupted(self, tmp_path: Path):
        ready = tmp_path / "ready"
        ready.mkdir()
        args = ("--fail-rank", "1", "--hang-rank", "2", "--ready", ready)
        job = launch(
            tmp_path / "model.json",
            3,
            torchrun_env,
            *args,
            launcher=_tear_down_after_failure(ready, signal.SIGKILL),
        )
        assert job.codes == [0, 1, -signal.SIGKILL]
        record = job.record
        rank2 = record["launch"]["ranks"][2]
        assert rank2["status"] == "interrupted"
        assert "after rank 1 ended" in rank2["unreported"]
        assert record["outcome"]["status"] == "failed"
        assert record["outcome"]["error"]["message"] == "rank 1 ran out of memory"

    def test_a_failed_rank_does_not_wait_for_the_teardown_its_exit_starts(self, tmp_path: Path):
        # Rank 1 fails first, before rank 0 ends: it once took the wait, and the launcher, that
        # stops the job when a rank's process exits, waited the whole bound on it.
        ready = tmp_path / "ready"
        ready.mkdir()
        seen: list[int | None] = []

        def launcher(procs: list[subprocess.Popen[str]]) -> None:
            _wait_for(ready / "rank2")
            procs[1].wait(timeout=60)  # far below the bound of 600 s
            seen.append(procs[2].poll())
            procs[2].send_signal(signal.SIGKILL)

        job = launch(
            tmp_path / "model.json",
            3,
            torchrun_env,
            *("--fail-rank", "1", "--hang-rank", "2", "--ready", ready),
            wait="600",
            launcher=launcher,
            extra={"RANKED_LATE": "0:1"},
        )
        assert seen == [None]  # rank 2 still ran when rank 1 had ended
        assert job.codes == [0, 1, -signal.SIGKILL]
        assert statuses(job.record) == ["succeeded", "failed", "interrupted"]
        assert job.left_beside() == []

    def test_a_rank_that_never_shows_is_missing_after_the_bound(self, tmp_path: Path):
        job = launch(tmp_path / "model.json", 3, torchrun_env, ranks=range(2), wait="1")
        assert job.codes == [0, 0]
        record = job.record
        assert statuses(record) == ["succeeded", "succeeded", "missing"]
        assert record["outcome"]["status"] == "failed"
        assert record["outcome"]["error"]["type"] == "provenance.RankMissing"
        # Rank 2 may still come: the parts stay for it, and the note of the record written,
        # which its record is to replace; nothing else.
        left = [p.name for p in parts_of(ranks_folder(sidecar_of(job.out)))]
        assert [n.split(".")[0] for n in left] == ["rank0", "rank1", "record", "waiter"]


class TestHostileParts:
    def test_a_malformed_part_warns_and_fails_no_rank(self, tmp_path: Path):
        out = tmp_path / "model.json"
        folder = ranks_folder(sidecar_of(out))
        folder.mkdir(parents=True)
        key = Handoff(Launch("pmi", 0, 2, ()), sidecar_of(out), started_ns=0, wait_s=1).key
        document = {"run_provenance": {"outcome": {"gates": "not a table"}}}
        part = {
            "handoff": HANDOFF_SCHEMA,
            "rank": 1,
            "world_size": 2,
            "ended_ns": 2**62,
            "wrote": False,
            "document": document,
        }
        (folder / f"rank1.{key}.json").write_text(json.dumps(part))
        job = launch(out, 2, pmi_env, ranks=range(1))
        assert job.codes == [0]
        assert "a part is malformed" in job.stderr[0]

    def test_rank_zero_takes_no_file_at_the_jobs_path_but_the_jobs_record(self, tmp_path: Path):
        # Rank 0 reported; another rank consumed its part. What then lands at the job's path
        # is taken only if it is this launch's record: a garbled file would leave no end event.
        sidecar = sidecar_of(tmp_path / "model.json")
        launch = Launch("pmi", 0, 2, ())
        handoff = Handoff(launch, sidecar, started_ns=0, wait_s=1)
        handoff.present()
        handoff.report(
            {"run_provenance": {"outcome": {"status": "succeeded"}}}, wrote=True, opened=[]
        )
        for part in parts_of(ranks_folder(sidecar)):
            part.unlink()
        for planted in (b'{"run_provenance": ', b"[]", b'{"run_provenance": {"launch": 2}}'):
            atomic_write(sidecar, planted)
            assert handoff.assembled(sidecar) is None, planted
        sidecar.unlink()
        os.mkfifo(sidecar)  # no writer will ever come: opening it must not wait for one
        with hang_guard(20):
            assert handoff.assembled(sidecar) is None
        sidecar.unlink()
        other = {"launcher": "pmi", "world_size": 3, "ranks": []}  # another launch's record
        atomic_write(sidecar, json.dumps({"run_provenance": {"launch": other}}).encode())
        assert handoff.assembled(sidecar) is None
        ranks = [{"rank": 0, "status": "succeeded"}, {"rank": 1, "status": "failed"}]
        job = {"run_provenance": {"launch": {"launcher": "pmi", "world_size": 2, "ranks": ranks}}}
        atomic_write(sidecar, json.dumps(job).encode())
        assert handoff.assembled(sidecar) == (sidecar, json.dumps(job).encode())

    def test_a_rank_says_it_runs_while_another_rank_looks_at_its_presence(self, tmp_path: Path):
        """Another rank looking at a presence holds a shared lock on it for an instant; a rank
        that locked its own presence at that instant lost it, and the job recorded it missing."""
        import fcntl

        sidecar = sidecar_of(tmp_path / "model.json")
        rank0 = Handoff(Launch("pmi", 0, 2, ()), sidecar, started_ns=0, wait_s=1)
        presence = rank0._presence(0)
        presence.parent.mkdir(parents=True)
        presence.write_text("")  # an earlier job's, as another rank finds it and looks
        looking = os.open(presence, os.O_RDONLY)
        try:
            fcntl.flock(looking, fcntl.LOCK_SH | fcntl.LOCK_NB)  # is_live's look, held
            rank0.present()
        finally:
            os.close(looking)
        assert is_live(presence)
        assert [p.name for p in parts_of(presence.parent)] == [presence.name]  # no leftover

    def test_a_rank_that_runs_twice_is_refused(self, tmp_path: Path):
        sidecar = sidecar_of(tmp_path / "model.json")
        launch = Launch("pmi", 0, 2, ())
        Handoff(launch, sidecar, started_ns=0, wait_s=1).present()
        with pytest.raises(OSError, match="runs twice"):
            Handoff(launch, sidecar, started_ns=0, wait_s=1).present()

    def test_a_rank_that_reports_while_its_job_is_looked_at_is_not_lost(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ):
        from provenance import ranks

        sidecar = sidecar_of(tmp_path / "model.json")
        first = Handoff(Launch("pmi", 0, 2, ()), sidecar, started_ns=0, wait_s=1)
        second = Handoff(Launch("pmi", 1, 2, ()), sidecar, started_ns=0, wait_s=1)
        first.present()
        second.present()
        document = {"run_provenance": {"outcome": {"status": "succeeded"}}}
        first.report(document, wrote=True, opened=[])
        real = ranks._read_part
        reporting: list[int] = []

        def racing(path: Path, rank: int, launch: Launch) -> dict[str, Any] | None:
            found = real(path, rank, launch)
            if rank == 1 and found is None and not reporting:
                reporting.append(1)  # its report looks at the job too: once
                second.report(
                    document, wrote=False, opened=[]
                )  # just after its part was looked for
            return found

        monkeypatch.setattr(ranks, "_read_part", racing)
        view = first._view()
        assert sorted(view.parts) == [0, 1]  # reported, not lost or missing
        assert view.unreported == {}

    @pytest.mark.parametrize("planted", ["replaced", "rewritten in place", "note"])
    def test_only_the_record_this_job_wrote_is_replaced_at_the_sidecar(
        self, tmp_path: Path, planted: str
    ):
        # Rank 1 fails and writes the job's record as far as it is known at the sidecar's
        # name; rank 0 then reports. What stands there then is replaced only if it is still
        # that record: anything else put there since is left as it is.
        sidecar = sidecar_of(tmp_path / "model.json")
        ranks = [Handoff(Launch("pmi", r, 2, ()), sidecar, started_ns=0, wait_s=1) for r in (0, 1)]
        for handoff in ranks:
            handoff.present()

        def report(handoff: Handoff, status: str) -> Path | None:
            outcome = {"status": status, "exit_code": 1, "error": None, "gates": {}}
            block = {"inputs": {}, "outputs": {}, "outcome": outcome}
            handoff.report({"run_provenance": block}, wrote=False, opened=[])
            return handoff.settle(sidecar, give_up=lambda: False, warn=lambda _: None)

        assert report(ranks[1], "failed") == sidecar
        assert statuses(json.loads(sidecar.read_bytes())["run_provenance"]) == [
            "running",
            "failed",
        ]
        note = ranks_folder(sidecar) / f"record.{ranks[0].key}.json"
        if planted == "replaced":
            atomic_write(sidecar, b'{"run_provenance": ')
        elif planted == "rewritten in place":
            with open(sidecar, "r+b") as file:
                file.write(b'{"run_provenance": ')
                file.truncate()
        else:  # a note of another job's record: its parts are not this job's
            found = json.loads(note.read_bytes())
            atomic_write(note, json.dumps({**found, "parts": {"1": 1}}).encode())
        left = sidecar.read_bytes()
        assert report(ranks[0], "failed") == sidecar.with_name("model.json.manifest.failed.json")
        assert sidecar.read_bytes() == left
        assert not ranks_folder(sidecar).exists()

    def test_the_jobs_record_is_taken_in_the_inode_an_earlier_record_freed(self, tmp_path: Path):
        sidecar = sidecar_of(tmp_path / "model.json")
        ranks = [{"rank": 0, "status": "succeeded"}, {"rank": 1, "status": "succeeded"}]
        launched = {"launcher": "pmi", "world_size": 2, "ranks": ranks}
        earlier = json.dumps({"run_provenance": {"launch": launched, "argv": ["old"]}}).encode()
        atomic_write(sidecar, earlier)
        handoff = Handoff(Launch("pmi", 0, 2, ()), sidecar, started_ns=0, wait_s=1)
        handoff.present()
        handoff.report(
            {"run_provenance": {"outcome": {"status": "succeeded"}}}, wrote=True, opened=[]
        )
        for part in parts_of(ranks_folder(sidecar)):
            part.unlink()
        os.utime(sidecar)  # the earlier record touched: still not this job's
        assert handoff.assembled(sidecar) is None
        # The job's record, in the inode the earlier one had (a file system reuses a freed
        # inode for the next file it makes: written here in place to stand for that).
        job = json.dumps({"run_provenance": {"launch": launched, "argv": ["new"]}}).encode()
        with open(sidecar, "r+b") as file:
            file.write(job)
            file.truncate()
        assert handoff.assembled(sidecar) == (sidecar, job)


class TestAssemble:
    def _part(self, rank: int, status: str, code: int, path: str) -> dict[str, Any]:
        entry = {"path": path, "exists": True, "kind": "file", "written_by_run": True}
        outcome = {"status": status, "exit_code": code, "error": None, "gates": {}}
        block = {"outputs": {"model": entry}, "inputs": {}, "outcome": outcome}
        return {"wrote": True, "opened": [], "document": {"run_provenance": block}}

    def test_the_same_parts_give_the_same_record_in_any_order(self):
        launch_ = Launch("slurm", 0, 3, ())
        parts = {r: self._part(r, "succeeded", 0, "m") for r in range(3)}
        forward = assemble(launch_, parts, {})
        backward = assemble(launch_, dict(reversed(parts.items())), {})
        assert json.dumps(forward, sort_keys=True) == json.dumps(backward, sort_keys=True)
        # No rank opened it (a writer in C): unknown among the ranks that saw it change.
        model = forward["run_provenance"]["outputs"]["model"]
        assert model["written_by_ranks"] is None
        assert model["candidate_ranks"] == [0, 1, 2]
        assert "concurrent_writers" not in model

    def _job(self, opened: dict[int, list[str]], changed: dict[int, bool]) -> dict[str, Any]:
        parts = {}
        for rank, saw in changed.items():
            part = self._part(rank, "succeeded", 0, "m")
            part["opened"] = opened.get(rank, [])
            part["document"]["run_provenance"]["outputs"]["model"]["written_by_run"] = saw
            parts[rank] = part
        model = assemble(Launch("pmi", 0, len(parts), ()), parts, {})
        return model["run_provenance"]["outputs"]["model"]

    def test_a_rank_heard_writing_is_credited_alone(self):
        model = self._job({1: ["m"]}, {0: True, 1: True, 2: True})
        assert model["written_by_ranks"] == [1]
        assert "candidate_ranks" not in model
        assert "concurrent_writers" not in model

    def test_two_ranks_heard_writing_are_concurrent_writers(self):
        model = self._job({0: ["m"], 2: ["m"]}, {0: True, 1: True, 2: True})
        assert model["written_by_ranks"] == [0, 2]
        assert model["concurrent_writers"] is True

    def test_the_candidates_are_the_ranks_that_saw_the_change(self):
        # Rank 2 had ended before the bytes changed: it cannot have written them.
        model = self._job({}, {0: True, 1: True, 2: False})
        assert model["written_by_ranks"] is None
        assert model["candidate_ranks"] == [0, 1]
        assert model["written_by_run"] is True

    def test_an_output_no_rank_changed_is_written_by_none(self):
        model = self._job({}, {0: False, 1: False})
        assert model["written_by_ranks"] == []
        assert model["written_by_run"] is False
        assert "candidate_ranks" not in model


def mpirun(ranks: int) -> list[str]:
    """``mpirun -n RANKS --oversubscribe python``: more ranks than cores, as on a laptop."""
    root = ["--allow-run-as-root"] if os.geteuid() == 0 else []
    return ["mpirun", *root, "-n", str(ranks), "--oversubscribe", sys.executable]


@pytest.fixture(scope="module")
def mpirun_job(tmp_path_factory: pytest.TempPathFactory) -> Job:
    out = tmp_path_factory.mktemp("mpi") / "model.json"
    command = [
        *mpirun(4),
        str(fake_path("ranked")),
        "--out",
        str(out),
        "--logs",
    ]
    proc = subprocess.run(
        command,
        env=base_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return Job(out, [proc.returncode], [proc.stderr])


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="Open MPI's mpirun is not installed")
class TestMpirun:
    def test_mpirun_leaves_one_record_of_four_ranks(self, mpirun_job: Job):
        job = mpirun_job
        assert job.codes == [0], job.stderr
        record = job.record
        assert record["launch"]["launcher"] == "openmpi"
        assert statuses(record) == ["succeeded"] * 4
        assert record["outputs"]["model"]["written_by_ranks"] == [0]
        logs = entries(record["outputs"]["log"])
        assert [e["written_by_ranks"] for e in logs] == [[0], [1], [2], [3]]
        assert job.left_beside() == []

    def test_mpirun_tearing_the_job_down_after_a_failure(self, tmp_path: Path):
        ready = tmp_path / "ready"
        ready.mkdir()
        out = tmp_path / "model.json"
        args = ("--fail-rank", "1", "--hang-rank", "2", "--ready", ready, "--ranks", "3")
        proc = subprocess.run(
            [*mpirun(3), str(fake_path("ranked")), "--out", str(out), *map(str, args)],
            env=base_env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert proc.returncode != 0
        record = load_sidecar(sidecar_of(out))["run_provenance"]
        assert statuses(record)[1:] == ["failed", "interrupted"]
        assert record["outcome"]["status"] == "failed"
        assert record["outcome"]["rank"] == 1
        assert record["outcome"]["error"]["message"] == "rank 1 ran out of memory"


@dataclass
class Stranded:
    """A job whose record says rank 2 runs: looked at while it runs, then after every rank of it
    was killed at once (what mpirun does within a second of a failure, on a busy machine)."""

    show_live: str
    verify_live: list[dict[str, Any]]
    record: dict[str, Any]
    show_dead: str
    show_dead_json: dict[str, Any]
    verify_dead: subprocess.CompletedProcess[str]


def _rank_checks(reports: list[dict[str, Any]]) -> dict[str, str]:
    checks = reports[0]["checks"]
    return {c["name"]: c["status"] for c in checks if c["name"].startswith("rank ")}


@pytest.fixture(scope="module")
def stranded(tmp_path_factory: pytest.TempPathFactory) -> Stranded:
    out = tmp_path_factory.mktemp("stranded") / "model.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(fake_path("ranked")), "--out", str(out)]
    procs = [
        subprocess.Popen(
            [*command, "--fail-rank", "1", "--hang-rank", "2"],
            env=dict(base_env(), **torchrun_env(rank, 3)),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for rank in range(3)
    ]
    try:
        sidecar = sidecar_of(out)
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "the job never wrote its record"
            with contextlib.suppress(OSError, ValueError, KeyError):
                if statuses(load_sidecar(sidecar)["run_provenance"]) == [
                    "succeeded",
                    "failed",
                    "running",
                ]:
                    break
            time.sleep(0.05)
        verify = ("-m", "provenance", "verify", "--json", "--no-code", "--outside-root", out)
        show_live = run_python("-m", "provenance", "show", out).stdout
        verify_live = json.loads(run_python(*verify).stdout)
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
    return Stranded(
        show_live,
        verify_live,
        load_sidecar(sidecar)["run_provenance"],
        run_python("-m", "provenance", "show", out).stdout,
        json.loads(run_python("-m", "provenance", "show", "--json", out).stdout),
        run_python(*verify),
    )


class TestStrandedRecord:
    def test_the_record_is_left_saying_rank_2_runs(self, stranded: Stranded):
        assert statuses(stranded.record) == ["succeeded", "failed", "running"]

    def test_show_and_verify_say_a_live_rank_runs(self, stranded: Stranded):
        assert "rank 2 running: its process still holds its presence" in stranded.show_live
        assert _rank_checks(stranded.verify_live) == {"rank 2": "running"}

    def test_show_says_a_killed_rank_is_lost_not_running(self, stranded: Stranded):
        assert "rank 2 lost: no process holds its presence" in stranded.show_dead
        assert stranded.show_dead_json["rank_states"] == [{"rank": 2, "state": "lost"}]

    def test_verify_finds_a_killed_rank_lost(self, stranded: Stranded):
        assert stranded.verify_dead.returncode == 1, stranded.verify_dead.stderr
        assert _rank_checks(json.loads(stranded.verify_dead.stdout)) == {"rank 2": "lost"}


class TestSecretsInTheHandoff:
    def test_a_secret_in_an_output_path_stays_out_of_the_parts_left_behind(self, tmp_path: Path):
        # Rank 1 never shows, so rank 0's part stays beside the record for it.
        out = tmp_path / "run_token=abcdef123456" / "model.json"
        job = launch(out, 2, torchrun_env, ranks=range(1), wait="1")
        assert job.codes == [0]
        left = list(parts_of(ranks_folder(sidecar_of(out))))
        assert any(p.suffix == ".json" for p in left)
        for path in [*left, sidecar_of(out)]:
            assert "abcdef123456" not in path.read_text(errors="replace"), path.name
        assert "abcdef123456" not in job.stderr[0]


@dataclass
class Bin:
    """A folder with an interpreter and a torchrun beside it, as a virtual environment has."""

    python: Path
    torchrun: Path


@pytest.fixture(scope="module")
def fake_bin(tmp_path_factory: pytest.TempPathFactory) -> Bin:
    folder = tmp_path_factory.mktemp("bin")
    python = folder / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    torchrun = folder / "torchrun"
    torchrun.write_text(f"#!{sys.executable}\n" + fake_path("torchrun").read_text())
    for program in (python, torchrun):
        program.chmod(0o755)
    return Bin(python, torchrun)


def _torchrun_job(torchrun: Path, out: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [
            str(torchrun),
            *("--nproc-per-node", "2", "-m", "tests.fakes.ranked", "--out", str(out), *argv),
        ],
        env=base_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


class TestLaunchAgain:
    """show and replay start a job as its launcher started it, from the record's numbers."""

    def test_the_record_keeps_what_rebuilds_a_torchrun_command(self, fake_bin: Bin, tmp_path):
        out = tmp_path / "model.json"
        proc = _torchrun_job(fake_bin.torchrun, out)
        assert proc.returncode == 0, proc.stderr
        launch_ = load_sidecar(sidecar_of(out))["run_provenance"]["launch"]
        assert (launch_["launcher"], launch_["world_size"]) == ("torchrun", 2)
        assert (launch_["nproc_per_node"], launch_["nnodes"]) == (2, 1)
        shown = run_python("-m", "provenance", "show", out).stdout
        command = f"torchrun --standalone --nproc-per-node 2 -m tests.fakes.ranked --out {out}"
        assert f"  command         cd {ROOT} && {command}\n" in shown
        printed = run_python("-m", "provenance", "replay", out)
        assert printed.stdout == f"cd {ROOT} && {command}\n"

    def test_replay_runs_a_torchrun_job_under_torchrun_and_judges_the_jobs_record(
        self, fake_bin: Bin, tmp_path: Path
    ):
        out = tmp_path / "model.json"
        assert _torchrun_job(fake_bin.torchrun, out).returncode == 0
        proc = run_python(
            "-m",
            "provenance",
            "replay",
            "--run",
            "--json",
            "--python",
            fake_bin.python,
            out,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        report = json.loads(proc.stdout)
        assert report["argv"][:4] == [
            str(fake_bin.torchrun),
            "--standalone",
            "--nproc-per-node",
            "2",
        ]
        assert "fake torchrun: 2 ranks of tests.fakes.ranked" in proc.stderr
        assert report["reproduced"] is True
        new = load_sidecar(Path(report["record"]))["run_provenance"]
        assert statuses(new) == ["succeeded", "succeeded"]

    def test_without_torchrun_beside_it_torchs_module_runs_the_job(self, fake_bin: Bin, tmp_path):
        out = tmp_path / "model.json"
        assert _torchrun_job(fake_bin.torchrun, out).returncode == 0
        lone = tmp_path / "lone"
        lone.mkdir()
        python = lone / "python"
        python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
        python.chmod(0o755)
        proc = run_python(
            "-m", "provenance", "replay", "--run", "--json", "--python", python, out, timeout=120
        )
        report = json.loads(proc.stdout)
        assert report["argv"][:5] == [
            str(python),
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
        ]

    @pytest.mark.parametrize(
        ("env_of", "printed"),
        [
            (ompi_env, "mpirun -n 3 python -m tests.fakes.ranked"),
            (pmi_env, "mpiexec -n 3 python -m tests.fakes.ranked"),
            (slurm_env, "srun -n 3 python -m tests.fakes.ranked"),
        ],
    )
    def test_other_launchers_are_printed_and_not_run(
        self, env_of: Callable[[int, int], dict[str, str]], printed: str, tmp_path: Path
    ):
        job = launch(tmp_path / "model.json", 3, env_of)
        assert job.codes == [0, 0, 0], job.stderr
        shown = run_python("-m", "provenance", "replay", job.out)
        assert shown.stdout == f"cd {ROOT} && {printed} --out {job.out}\n"
        refused = run_python("-m", "provenance", "replay", "--run", job.out)
        assert refused.returncode == 2
        assert "--run replays torchrun jobs only" in refused.stderr
        assert "Traceback" not in refused.stderr

    def test_a_job_whose_launcher_is_not_known_is_never_run_as_one_process(self, tmp_path):
        env = lambda rank, size: {"RANK": str(rank), "WORLD_SIZE": str(size)}  # noqa: E731
        job = launch(tmp_path / "model.json", 2, env)
        assert job.record["launch"]["launcher"] == "torch.distributed"
        shown = run_python("-m", "provenance", "replay", job.out)
        assert shown.stdout == f"cd {ROOT} && python -m tests.fakes.ranked --out {job.out}\n"
        assert "launcher is not known" in shown.stderr
        refused = run_python("-m", "provenance", "replay", "--run", job.out)
        assert refused.returncode == 2
        assert "RANK and WORLD_SIZE set without torchrun" in refused.stderr

    @pytest.mark.parametrize(
        ("numbers", "options"),
        [
            ({}, "--standalone --nproc-per-node 4"),  # a record from before they were kept
            ({"nproc_per_node": 2, "nnodes": 2}, "--nnodes 2 --nproc-per-node 2"),
            ({"nproc_per_node": 3, "nnodes": 2}, "--standalone --nproc-per-node 4"),
            ({"nproc_per_node": 2.0, "nnodes": 2}, "--standalone --nproc-per-node 4"),
        ],
    )
    def test_only_numbers_that_make_the_world_size_rebuild_the_command(
        self, fake_bin: Bin, tmp_path: Path, numbers: dict[str, Any], options: str
    ):
        out = tmp_path / "model.json"
        launch(out, 4, torchrun_env)
        document = load_sidecar(sidecar_of(out))
        launched = document["run_provenance"]["launch"]
        for key in ("nproc_per_node", "nnodes"):
            launched.pop(key, None)
        launched.update(numbers)
        sidecar_of(out).write_text(json.dumps(document))
        proc = run_python("-m", "provenance", "replay", "--root", ROOT, out)
        assert proc.stdout == f"cd {ROOT} && torchrun {options} -m tests.fakes.ranked --out {out}\n"

    def test_a_word_where_a_number_belongs_is_refused(self, tmp_path: Path):
        out = tmp_path / "model.json"
        launch(out, 2, torchrun_env)
        document = load_sidecar(sidecar_of(out))
        document["run_provenance"]["launch"]["nproc_per_node"] = "2; rm -rf ~"
        sidecar_of(out).write_text(json.dumps(document))
        for argv in (("replay",), ("replay", "--run"), ("show",)):
            proc = run_python("-m", "provenance", *argv, out)
            assert proc.returncode == 2, proc.stdout
            assert "rm -rf" not in proc.stdout
            assert "Traceback" not in proc.stderr
