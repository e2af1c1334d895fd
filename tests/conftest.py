from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from provenance import validate
from provenance.stores.digest_cache import ENVIRONMENT

ROOT = Path(__file__).resolve().parents[1]
FAKES = ROOT / "tests" / "fakes"

# Hypothesis checks what code does, not how fast: its per-example deadline is a timed assertion,
# which a shared, loaded machine fails at random (a first call that imports a library).
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")


@pytest.fixture(autouse=True, scope="session")
def _private_digest_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the suite's digest cache (for its subprocesses too) out of the user's cache folder."""
    location = tmp_path_factory.mktemp("digest-cache") / "digests.sqlite3"
    os.environ[ENVIRONMENT] = str(location)
    # A pipeline's opt-in to environment evidence in the shell would change every record.
    os.environ.pop("PROVENANCE_ENVIRONMENT", None)


# A suite run inside a SLURM or MPI job must not turn every test's subprocess into one rank of it.
LAUNCH_VARIABLES = (
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "TORCHELASTIC_RUN_ID",
    "SLURM_PROCID",
    "SLURM_NTASKS",
    "SLURM_JOB_ID",
    "SLURM_STEP_ID",
    "OMPI_COMM_WORLD_RANK",
    "OMPI_COMM_WORLD_SIZE",
    "PMIX_NAMESPACE",
    "PMI_RANK",
    "PMI_SIZE",
)


@pytest.fixture(autouse=True, scope="session")
def _no_launch() -> None:
    """Run the suite as a lone process whatever launched it; tests/test_ranks.py sets its own."""
    for name in LAUNCH_VARIABLES:
        os.environ.pop(name, None)


def default_signals() -> None:
    """For ``preexec_fn``: a child acts on the signals a test sends it by default, even when
    the suite itself runs with them ignored (under nohup, or as a shell's background job)."""
    import signal

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)


def fake_path(name: str) -> Path:
    return FAKES / f"{name}.py"


def run_python(
    *argv: object, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python ARGV...`` as a real subprocess, with this checkout importable."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, *map(str, argv)],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_fake(name: str, *argv: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a fake script as a real subprocess, the way a user runs it."""
    return run_python(fake_path(name), *argv, cwd=cwd)


def sidecar_of(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".manifest.json")


def load_sidecar(path: Path) -> dict[str, Any]:
    """Read a sidecar, checking it against the shipped schema first."""
    document = json.loads(path.read_text("utf-8"))
    validate(document)
    return document


def sidecar_bytes(path: Path) -> bytes:
    """A sidecar's exact bytes, for byte-for-byte comparison, once checked against the schema."""
    raw = path.read_bytes()
    validate(json.loads(raw))
    return raw


@pytest.fixture
def shards(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "shards"
    folder.mkdir()
    paths = []
    for i, rows in enumerate([["b,2", "a,1"], ["c,3"]]):
        path = folder / f"shard{i}.csv"
        path.write_text("name,value\n" + "\n".join(rows) + "\n")
        paths.append(path)
    return paths


@pytest.fixture
def features(tmp_path: Path) -> Path:
    path = tmp_path / "features.csv"
    path.write_text("adm2,motion2,mos\n0.9,3.1,4.2\n0.7,2.0,3.1\n")
    return path


# -- the ai/ pipeline --------------------------------------------------------------------------


def run_script(
    name: str, *argv: object, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m ai.scripts.NAME ARGV...`` as a user does."""
    return run_python("-m", f"ai.scripts.{name}", *argv, cwd=cwd)


def block_of(artifact: Path) -> dict[str, Any]:
    """The ``run_provenance`` block of an artifact's sidecar, checked against the schema."""
    return load_sidecar(sidecar_of(artifact))["run_provenance"]


# The demo runs about thirty processes; on a loaded two-core machine that has taken over four
# minutes. The limit is there to stop a hang, not to time the demo.
DEMO_TIMEOUT = 600


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole demo pipeline, run once into a session folder; tests only read it.

    Under pytest-xdist the workers share one run: the first to need it runs it under a lock
    the others wait on, instead of each spending a minute on the same files."""
    import fcntl

    if "PYTEST_XDIST_WORKER" not in os.environ:
        return _run_demo(tmp_path_factory.mktemp("demo") / "run")
    shared = tmp_path_factory.getbasetemp().parent / "demo"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "done").exists():
            shutil.rmtree(shared / "run", ignore_errors=True)  # a run that failed midway
            _run_demo(shared / "run")
            (shared / "done").write_text("")
    return shared / "run"


def _run_demo(out: Path) -> Path:
    proc = run_python("-m", "ai.demo", "--out", out, timeout=DEMO_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def sample(demo: Path) -> Path:
    return demo / "sample"


# -- the capture adapters ----------------------------------------------------------------------


def digests_of(path: Path) -> dict[str, Any]:
    """A file's size and digests by the test's own route, to check a record's entry against."""
    import hashlib

    import blake3

    data = path.read_bytes()
    return {
        "size_bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "blake3": blake3.blake3(data).hexdigest(),
    }


def shown(record: Path) -> subprocess.CompletedProcess[str]:
    """``provenance show RECORD`` as a user runs it."""
    return run_python("-m", "provenance", "show", record)


def run_with_env(
    script: Path, *argv: object, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run a script as a real subprocess with extra environment variables."""
    return subprocess.run(
        [sys.executable, str(script), *map(str, argv)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def project_with(folder: Path, *fakes: str) -> Path:
    """A project folder holding copies of fake scripts: paths in its records are relative to it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text('[project]\nname = "fake"\n')
    for name in fakes:
        shutil.copy(fake_path(name), folder / f"{name}.py")
    return folder


def records_and(folder: Path, *, deep: bool = False) -> list[str]:
    """The names in ``folder`` (``deep``: in its whole tree), without the folder listings a
    record keeps beside itself (``X.manifest.files.<digest>``): what a failed run may leave is
    its record, never an artifact."""
    found = folder.rglob("*") if deep else folder.iterdir()
    return sorted(p.name for p in found if ".manifest.files." not in p.name)
