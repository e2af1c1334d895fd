"""extract_k150k_features resumes from ``<out>.done`` after a real interruption (ADR-0668).

A run is stopped by a signal part-way through; the next run of the same command takes the clips
the first one finished from the resume file, reads only the rest, and writes the table an
uninterrupted run writes, byte for byte. A resume file that is not one, half of one, another
run's, or out of step with the cache is refused, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, load_sidecar, run_script, sidecar_of

CLIPS = 600  # the sample's K150K clips


def argv(sample: Path, out: Path, cache: Path | None = None, *extra: object) -> list[str]:
    return [
        "--cache-dir", str(cache or sample / "k150k/vmaf_cache"),
        "--scores", str(sample / "k150k/scores.csv"),
        "--out", str(out), *map(str, extra),
    ]  # fmt: skip


def interrupt(sample: Path, out: Path, how: signal.Signals, cache: Path | None = None) -> dict:
    """Start a slowed-down run, stop it with ``how`` once its resume file holds 14 clips."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), AI_EXTRACT_CLIP_DELAY="0.02")
    command = [sys.executable, "-m", "ai.scripts.extract_k150k_features",
               *argv(sample, out, cache, "--workers", "2", "--checkpoint-every", "7")]  # fmt: skip
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    done = out.with_name(out.name + ".done")
    deadline = time.monotonic() + 120  # a guard against a hang, not a timing
    try:
        while not (done.exists() and len(json.loads(done.read_text())["clips"]) >= 14):
            assert proc.poll() is None, f"the run ended before it was stopped: {proc.stderr}"
            assert time.monotonic() < deadline, "the resume file never held 14 clips"
            time.sleep(0.01)
        proc.send_signal(how)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -how
    assert not out.exists()
    return json.loads(done.read_text())  # whole: it is replaced atomically, never half-written


@pytest.fixture(scope="module")
def uninterrupted(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("full") / "k150k.parquet"
    proc = run_script("extract_k150k_features", *argv(sample, out))
    assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_an_interrupted_run_resumes_and_writes_the_same_table(sample, tmp_path, uninterrupted, how):
    out = tmp_path / "k150k.parquet"
    ledger = interrupt(sample, out, how)
    done = out.with_name("k150k.parquet.done")
    kept = len(ledger["clips"])
    assert kept % 7 == 0  # written every seventh clip, each time whole
    assert 14 <= kept < CLIPS
    assert ledger["run"]["features"][0] == "adm2"
    digest = hashlib.sha256(done.read_bytes()).hexdigest()
    proc = run_script("extract_k150k_features", *argv(sample, out))
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == uninterrupted
    assert not done.exists()  # the table holds what it held
    manifest = load_sidecar(sidecar_of(out))
    assert manifest["resumed"] == {"from": str(done), "clips": kept, "sha256": digest}
    backend = manifest["backends"]["libvmaf-cache"]
    assert backend["clips_read"] == CLIPS - kept  # read by this run: only what was left
    assert manifest["row_count"] == CLIPS
    keys = manifest["extractor_split"]["adm2"]["metric_keys"]
    assert keys == {"integer_adm2": CLIPS}  # the table's clips, those resumed included


@pytest.fixture(scope="module")
def ledger_text(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("cut") / "k150k.parquet"
    interrupt(sample, out, signal.SIGKILL)
    return out.with_name("k150k.parquet.done").read_text()


def spoil_half(text: str, cache: Path) -> str:
    return text[: len(text) // 2]


def spoil_other_run(text: str, cache: Path) -> str:
    document = json.loads(text)
    document["run"]["features"] = ["adm2"]
    return json.dumps(document)


def spoil_a_value(text: str, cache: Path) -> str:
    document = json.loads(text)
    first = next(iter(document["clips"].values()))
    first["stats"]["adm2_mean"] = "0.9"
    return json.dumps(document)


def spoil_an_unknown_clip(text: str, cache: Path) -> str:
    document = json.loads(text)
    document["clips"]["not_a_clip.mp4"] = next(iter(document["clips"].values()))
    return json.dumps(document)


def spoil_the_cache(text: str, cache: Path) -> str:
    clip = sorted(json.loads(text)["clips"])[3]
    path = cache / f"{clip}.json"
    path.write_text(path.read_text().replace("}", " }", 1))  # same JSON, other bytes
    return text


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (spoil_half, "not a readable resume file"),
        (spoil_other_run, "made by a run with other inputs or options"),
        (spoil_a_value, "holds a value that is not a finite number"),
        (spoil_an_unknown_clip, "clip 'not_a_clip.mp4' is not one this run extracts"),
        (spoil_the_cache, "changed since it was read"),
    ],
)
def test_a_resume_file_that_cannot_be_trusted_is_refused(
    sample, tmp_path, ledger_text, spoil, message
):
    cache = tmp_path / "cache"
    shutil.copytree(sample / "k150k/vmaf_cache", cache)
    out = tmp_path / "k150k.parquet"
    done = out.with_name("k150k.parquet.done")
    # The same run but for the cache's folder: the copy this test may change.
    text = ledger_text.replace(str(sample / "k150k/vmaf_cache"), str(cache))
    done.write_text(spoil(text, cache))
    before = done.read_bytes()
    proc = run_script("extract_k150k_features", *argv(sample, out, cache))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"extract_k150k_features.py: error: {done}: ")
    assert message in lines[0]
    assert lines[0].endswith("it was not used: remove it to start over")
    assert not out.exists()
    assert done.read_bytes() == before  # the evidence stays as it was
    manifest = load_sidecar(sidecar_of(out))
    assert manifest["run_provenance"]["outcome"]["exit_code"] == 2
