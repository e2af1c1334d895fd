"""A real ``torchrun --nproc-per-node 2`` DDP job on the CPU with gloo (PyTorch's
multigpu_torchrun.py in small): rank 0 saves with torch.save, which writes from C++."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, load_sidecar, run_python, sidecar_of

torch = pytest.importorskip("torch", reason="torch is not installed")

TORCHRUN = Path(sys.executable).parent / "torchrun"


def torchrun(out: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    program = (
        [str(TORCHRUN)] if TORCHRUN.is_file() else [sys.executable, "-m", "torch.distributed.run"]
    )
    return subprocess.run(
        [
            *program,
            *("--standalone", "--nproc-per-node", "2", "tests/fakes/ddp_torchrun.py"),
            *("--snapshot", str(out), *argv),
        ],
        env=dict(os.environ, PYTHONPATH=str(ROOT), PROVENANCE_RANK_WAIT_S="120"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp") / "snapshot.pt"
    proc = torchrun(out)
    assert proc.returncode == 0, proc.stderr
    return out


def test_a_checkpoint_torch_save_wrote_is_of_an_unknown_rank(saved: Path):
    record = load_sidecar(sidecar_of(saved))["run_provenance"]
    checkpoint = record["outputs"]["checkpoint"]
    assert checkpoint["written_by_run"] is True
    assert checkpoint["written_by_ranks"] is None
    assert 0 in checkpoint["candidate_ranks"]
    assert "concurrent_writers" not in checkpoint
    assert [r["status"] for r in record["launch"]["ranks"]] == ["succeeded", "succeeded"]


def test_show_and_replay_start_it_with_torchrun(saved: Path):
    launch = load_sidecar(sidecar_of(saved))["run_provenance"]["launch"]
    assert (launch["launcher"], launch["nproc_per_node"], launch["nnodes"]) == ("torchrun", 2, 1)
    command = "torchrun --standalone --nproc-per-node 2 -m tests.fakes.ddp_torchrun"
    assert f"{command} --snapshot {saved}\n" in run_python("-m", "provenance", "show", saved).stdout
    replayed = run_python("-m", "provenance", "replay", "--run", "--json", saved, timeout=300)
    report = json.loads(replayed.stdout)
    assert report["argv"][1:4] == ["--standalone", "--nproc-per-node", "2"] or report["argv"][
        1:6
    ] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    assert report["exit_code"] == 0, replayed.stderr
    assert report["reproduced"] is True, report["problems"]


def test_the_rank_that_raised_is_the_jobs_error_not_its_peers_closed_connection(tmp_path: Path):
    out = tmp_path / "snapshot.pt"
    proc = torchrun(out, "--fail-rank", "1")
    assert proc.returncode != 0
    # Rank 1 wrote the job's record with rank 0 still running; rank 0's complete record took
    # its place at the sidecar's name, and no other record of the job is left beside it.
    beside = sorted(p.name for p in out.parent.glob(out.name + ".manifest*"))
    assert beside == [sidecar_of(out).name]
    record = load_sidecar(sidecar_of(out))["run_provenance"]
    outcome = record["outcome"]
    assert outcome["rank"] == 1
    assert outcome["error"] == {"type": "ValueError", "message": "rank 1 found a bad batch"}
    rank0, rank1 = record["launch"]["ranks"]
    assert rank1["failed_first"] is True
    assert rank0["status"] == "failed"
    assert rank0["consequence_of"] == 1
    assert "Connection closed by peer" in rank0["error"]["message"]
