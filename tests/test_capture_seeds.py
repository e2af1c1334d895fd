"""The seeds adapters: scripts that seed in each way, run as real subprocesses."""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import blake3
import numpy as np
import pytest

from provenance import capture, recorded_run
from provenance.capture import seeds
from tests.conftest import (
    load_sidecar,
    project_with,
    run_python,
    shown,
    sidecar_bytes,
    sidecar_of,
)


def seeded(folder: Path, how: str, out: str = "draws.txt") -> subprocess.CompletedProcess[str]:
    project_with(folder, "seeded")
    return run_python(folder / "seeded.py", "--how", how, "--out", out, cwd=folder)


def record(folder: Path, out: str = "draws.txt") -> dict:
    return load_sidecar(folder / f"{out}.manifest.json")["run_provenance"]


def still_wrapped(proc: subprocess.CompletedProcess[str]) -> list[str]:
    [line] = [line for line in proc.stdout.splitlines() if line.startswith("still wrapped: ")]
    return json.loads(line.removeprefix("still wrapped: "))


def digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def draws(folder: Path, out: str = "draws.txt") -> str:
    return (folder / out).read_text()


def expected_draws(seed: int) -> str:
    """What random and numpy draw first once both are seeded with ``seed``."""
    state, legacy = random.getstate(), np.random.get_state()
    try:
        random.seed(seed)
        np.random.seed(seed)
        return f"{random.random()!r} {np.random.random()!r}\n"
    finally:
        random.setstate(state)
        np.random.set_state(legacy)


@pytest.fixture(scope="module")
def done(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    runs = {}
    for how in ("random", "numpy", "transformers", "none"):
        folder = tmp_path_factory.mktemp(how)
        runs[how] = folder, seeded(folder, how)
    return runs


class TestRandom:
    def test_each_seed_in_the_order_set(self, done):
        folder, proc = done["random"]
        assert proc.returncode == 0, proc.stderr
        assert record(folder)["seeds"] == [
            {"source": "random.seed", "value": 0},
            {"source": "random.seed", "value": "text seed"},
            {
                "source": "random.seed",
                "type": "bytes",
                "bytes": 2,
                "blake3": digest(b"\x00\xff"),
            },
            {"source": "random.seed", "value": None, "from_os": True},
            {
                "source": "random.seed",
                "type": "int",
                "bits": 301,
                "blake3": digest(format(2**300 + 1, "x").encode()),
            },
            {"source": "random.seed", "value": 1.5},
            {"source": "random.seed", "value": 7},
        ]

    def test_the_seeding_still_takes_effect(self, done):
        folder, _ = done["random"]
        random.seed(7)
        first = random.random()
        assert draws(folder).split()[0] == repr(first)

    def test_seeds_before_and_after_the_run_are_not_recorded_and_nothing_stays_wrapped(self, done):
        for how in ("random", "none"):
            folder, proc = done[how]
            assert 1 not in [s.get("value") for s in record(folder).get("seeds", [])]
            assert 2 not in [s.get("value") for s in record(folder).get("seeds", [])]
            assert still_wrapped(proc) == []


class TestNumpy:
    def test_legacy_seed_and_default_rng(self, done):
        folder, proc = done["numpy"]
        assert proc.returncode == 0, proc.stderr
        assert record(folder)["seeds"] == [
            {"source": "numpy.random.seed", "value": 42},
            {"source": "numpy.random.seed", "value": [1, 2, 3]},
            {"source": "numpy.random.seed", "value": 7},
            {"source": "numpy.random.default_rng", "value": 5},
            {
                "source": "numpy.random.default_rng",
                "type": "numpy.random.SeedSequence",
                "value": 1234,
                "spawn_key": [2],
            },
            {"source": "numpy.random.default_rng", "value": None, "from_os": True},
            {"source": "numpy.random.seed", "value": 11},
        ]
        np.random.seed(11)
        assert draws(folder).split()[1] == repr(np.random.random())


class TestTransformers:
    def test_set_seed_is_one_seed_though_it_seeds_random_and_numpy(self, done):
        folder, proc = done["transformers"]
        assert proc.returncode == 0, proc.stderr
        assert record(folder)["seeds"] == [{"source": "transformers.set_seed", "value": 123}]
        assert draws(folder) == expected_draws(123)

    def test_the_lazy_package_does_not_keep_the_wrapper(self, done):
        # The script reached set_seed through the lazy transformers package during the run,
        # which cached it there: once the run is over it is the function again.
        _, proc = done["transformers"]
        assert still_wrapped(proc) == []

    def test_a_set_seed_bound_before_the_run_is_heard_through_what_it_seeds(self, tmp_path):
        project_with(tmp_path, "seeded_early")
        proc = run_python(tmp_path / "seeded_early.py", "--out", "out.txt", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        # transformers seeds torch too, where it is installed: each call is one of its own.
        torch = importlib.util.find_spec("torch") is not None
        sources = ["torch.manual_seed", "torch.cuda.manual_seed_all"] if torch else []
        assert record(tmp_path, "out.txt")["seeds"] == [
            {"source": source, "value": 9}
            for source in ("random.seed", "numpy.random.seed", *sources)
        ]


class TestRecord:
    def test_a_script_that_seeds_nothing_has_no_seeds(self, done):
        folder, proc = done["none"]
        assert proc.returncode == 0, proc.stderr
        block = record(folder)
        assert "seeds" not in block
        assert "seeds_left_out" not in block
        assert "seeds" not in shown(folder / "draws.txt").stdout

    @pytest.mark.parametrize("how", ["random", "numpy"])
    def test_two_runs_write_the_same_bytes(self, tmp_path, how):
        first, second = tmp_path / "a", tmp_path / "b"
        for folder in (first, second):
            assert seeded(folder, how).returncode == 0
        assert sidecar_bytes(first / "draws.txt.manifest.json") == sidecar_bytes(
            second / "draws.txt.manifest.json"
        )

    def test_a_script_seeding_in_a_loop_keeps_the_first_and_counts_the_rest(self, tmp_path):
        proc = seeded(tmp_path, "loop")
        assert proc.returncode == 0, proc.stderr
        block = record(tmp_path)
        assert block["seeds"] == [{"source": "random.seed", "value": i} for i in range(seeds.KEPT)]
        assert block["seeds_left_out"] == 250 - seeds.KEPT
        assert f"and {250 - seeds.KEPT} more, left out" in shown(tmp_path / "draws.txt").stdout

    def test_hostile_seeds_never_break_the_script(self, tmp_path):
        proc = seeded(tmp_path, "hostile")
        assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        huge = 10**5000
        assert record(tmp_path)["seeds"] == [
            {"source": "random.seed", "type": "__main__.Hostile"},
            {
                "source": "random.seed",
                "type": "int",
                "bits": huge.bit_length(),
                "blake3": digest(format(huge, "x").encode()),
            },
            {"source": "numpy.random.seed", "value": 2**31},
        ]
        assert still_wrapped(proc) == []

    def test_a_seeding_call_that_raises_reaches_the_script_and_is_not_recorded(self, tmp_path):
        proc = seeded(tmp_path, "raising")
        assert proc.returncode == 0, proc.stderr
        assert "the script saw: TypeError: The only supported seed types" in proc.stdout
        assert record(tmp_path)["seeds"] == [{"source": "random.seed", "value": 5}]


class TestCommands:
    def test_show_lists_the_seeds(self, done):
        folder, _ = done["numpy"]
        text = shown(folder / "draws.txt").stdout
        assert "  seeds           (in the order the script set them)" in text
        assert "    numpy.random.seed: 42\n" in text
        assert "numpy.random.default_rng: none given: drawn from the OS, not reproducible" in text
        assert "numpy.random.SeedSequence, entropy 1234, spawn key [2]" in text

    def test_show_json_holds_the_seeds(self, done):
        folder, _ = done["transformers"]
        proc = run_python("-m", "provenance", "show", "--json", folder / "draws.txt")
        summary = json.loads(proc.stdout)
        assert summary["seeds"] == [{"source": "transformers.set_seed", "value": 123}]
        assert summary["seeds_left_out"] == 0

    def test_diff_names_the_seeds_that_changed(self, done):
        a, _ = done["transformers"]
        b, _ = done["none"]
        proc = run_python("-m", "provenance", "diff", a / "draws.txt", b / "draws.txt")
        assert proc.returncode == 1, proc.stderr
        assert "  seeds    seeds[0]: transformers.set_seed: 123 -> (absent)" in proc.stdout

    def test_diff_of_two_runs_seeded_alike_says_nothing_of_seeds(self, tmp_path):
        for name in ("a", "b"):
            assert seeded(tmp_path / name, "transformers").returncode == 0
        proc = run_python(
            "-m", "provenance", "diff", tmp_path / "a" / "draws.txt", tmp_path / "b" / "draws.txt"
        )
        assert proc.returncode == 0, proc.stdout
        assert "  seeds " not in proc.stdout

    def test_show_reads_odd_seeds_as_text(self, tmp_path):
        assert seeded(tmp_path, "random").returncode == 0
        sidecar = tmp_path / "draws.txt.manifest.json"
        document = json.loads(sidecar.read_text())
        odd = document["run_provenance"]["seeds"]
        odd[0]["source"] = "\x1b[31mred"
        odd[1]["value"] = "bell\x07"
        odd[2]["type"] = "x" * 5000
        sidecar.write_text(json.dumps(document))
        proc = shown(tmp_path / "draws.txt")
        assert proc.returncode == 0, proc.stderr
        assert "\x1b" not in proc.stdout
        assert "\x07" not in proc.stdout
        assert "    \\x1b[31mred: 0\n" in proc.stdout
        [long] = [line for line in proc.stdout.splitlines() if "type xxx" in line]
        assert len(long) < 100


class TestInProcess:
    def test_wrapped_only_while_a_run_is_active(self, tmp_path):
        original, legacy = random.seed, np.random.seed
        out = tmp_path / "out.txt"
        with recorded_run(outputs={"out": out}):
            assert random.seed is not original
            assert np.random.seed is not legacy
            random.seed(3)
            out.write_text("x")
        assert (random.seed, np.random.seed) == (original, legacy)
        assert not capture.patched()
        random.seed(4)
        assert load_sidecar(sidecar_of(out))["run_provenance"]["seeds"] == [
            {"source": "random.seed", "value": 3}
        ]

    def test_a_seed_that_cannot_be_recorded_is_said_and_still_set(self, capsys):
        class Deaf:
            """A listener of parses only: it has no ear for seeds."""

            def on_parsed(self, parser, argv, namespace):
                pass

            def on_parse_exit(self, exc):
                pass

            def on_resolved(self, resolution):
                pass

        with capture.capturing(Deaf()):
            random.seed(5)
            drawn = random.random()
        random.seed(5)
        assert drawn == random.random()
        assert (
            "provenance: cannot record the seed set by random.seed (AttributeError); it is "
            "missing from the record"
        ) in capsys.readouterr().err

    def test_a_secret_given_as_a_seed_is_redacted(self, tmp_path):
        out = tmp_path / "out.txt"
        with recorded_run(outputs={"out": out}):
            parser = argparse.ArgumentParser()
            parser.add_argument("--api-token")
            args = parser.parse_args(["--api-token", "s3cr3t-vAlue-123"])
            random.seed(args.api_token)
            out.write_text("x")
        assert "s3cr3t-vAlue-123" not in sidecar_of(out).read_text()
        assert load_sidecar(sidecar_of(out))["run_provenance"]["seeds"] == [
            {"source": "random.seed", "value": "<redacted>"}
        ]

    def test_a_nested_run_seeds_into_the_record_in_order(self, tmp_path):
        out, inner = tmp_path / "out.txt", tmp_path / "inner.txt"
        with recorded_run(outputs={"out": out}):
            random.seed(1)
            with recorded_run(outputs={"inner": inner}):
                np.random.seed(2)
                inner.write_text("x")
            random.seed(3)
            out.write_text("x")
        assert load_sidecar(sidecar_of(out))["run_provenance"]["seeds"] == [
            {"source": "random.seed", "value": 1},
            {"source": "numpy.random.seed", "value": 2},
            {"source": "random.seed", "value": 3},
        ]


class Ear:
    """A listener that keeps the seeds it hears."""

    def __init__(self) -> None:
        self.seeds: list[tuple[str, dict]] = []

    def on_parsed(self, parser, argv, namespace):
        pass

    def on_parse_exit(self, exc):
        pass

    def on_resolved(self, resolution):
        pass

    def on_seed(self, source, seed):
        self.seeds.append((source, dict(seed)))


class TestReExports:
    """A library that re-exports its seeding function, as Lightning and torch do."""

    @pytest.fixture
    def library(self, tmp_path, monkeypatch):
        package = tmp_path / "seedlib"
        package.mkdir()
        (package / "__init__.py").write_text("")
        (package / "seeding.py").write_text(
            "def seed_everything(seed=None):\n    return 31 if seed is None else seed\n"
        )
        (package / "early.py").write_text("from seedlib.seeding import seed_everything\n")
        (package / "late.py").write_text("from seedlib.seeding import seed_everything\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        yield importlib.import_module("seedlib.seeding")
        for name in [m for m in sys.modules if m.split(".")[0] == "seedlib"]:
            del sys.modules[name]

    def test_every_alias_is_heard_and_none_keeps_the_wrapper(self, library):
        original = library.seed_everything
        early = importlib.import_module("seedlib.early")
        ear = Ear()
        with capture.capturing(ear):
            seeds.wrap(
                "seedlib.seeding",
                "seed_everything",
                "seedlib.seed_everything",
                seeds.returned("seed"),
                ("seedlib.early", "seedlib.late"),
            )
            late = importlib.import_module("seedlib.late")  # picks up the wrapper
            assert early.seed_everything() == 31
            assert late.seed_everything(5) == 5
            assert library.seed_everything(seed=6) == 6
        assert ear.seeds == [
            ("seedlib.seed_everything", {"value": 31, "picked": True}),
            ("seedlib.seed_everything", {"value": 5}),
            ("seedlib.seed_everything", {"value": 6}),
        ]
        assert library.seed_everything is original
        assert early.seed_everything is original
        assert late.seed_everything is original


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@pytest.mark.skipif(not _importable("torch"), reason="torch is not installed")
def test_torch_manual_seed_is_one_seed_and_cuda_is_its_own(tmp_path):
    proc = seeded(tmp_path, "torch")
    assert proc.returncode == 0, proc.stderr
    assert record(tmp_path)["seeds"] == [
        {"source": "torch.manual_seed", "value": 42},
        {"source": "torch.cuda.manual_seed_all", "value": 3},
    ]
    assert still_wrapped(proc) == []


@pytest.mark.skipif(not _importable("lightning"), reason="lightning is not installed")
def test_seed_everything_records_the_seed_it_used(tmp_path):
    proc = seeded(tmp_path, "lightning")
    assert proc.returncode == 0, proc.stderr
    used = int(re.search(r"lightning used (\d+)", proc.stdout).group(1))
    assert record(tmp_path)["seeds"] == [
        {"source": "lightning.seed_everything", "value": used, "picked": True},
        {"source": "lightning.seed_everything", "value": 17},
    ]
    assert still_wrapped(proc) == []
