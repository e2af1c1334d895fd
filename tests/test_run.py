"""The run lifecycle, end to end through the fake scripts."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import blake3
import pytest

from provenance import current_run
from provenance.errors import NoActiveRunError, ProvenanceError
from provenance.run import Run, RunSpec
from tests.conftest import (
    ROOT,
    load_sidecar,
    run_fake,
    run_python,
    sidecar_bytes,
    sidecar_of,
)
from tests.fakes import outcomes, trainer


def outcome_of(artifact: Path) -> dict:
    return load_sidecar(sidecar_of(artifact))["run_provenance"]["outcome"]


class TestOutcomeTable:
    @pytest.mark.parametrize(
        ("mode", "status", "exit_code", "returncode"),
        [
            ("return-none", "succeeded", 0, 0),
            ("return-int", "failed", 3, 3),
            ("exit-none", "succeeded", 0, 0),
            ("exit-int", "failed", 3, 3),
            ("exit-str", "failed", 1, 1),
            ("raise", "failed", 1, 1),
            # Python ends a run killed by an uncaught KeyboardInterrupt with SIGINT itself.
            ("interrupt", "interrupted", 130, -signal.SIGINT),
        ],
    )
    def test_subprocess_row(self, tmp_path, mode, status, exit_code, returncode):
        out = tmp_path / "result.txt"
        proc = run_fake("outcomes", "--mode", mode, "--code", 3, "--out", out, "--write")
        assert proc.returncode == returncode, proc.stderr
        got = outcome_of(out)
        assert (got["status"], got["exit_code"]) == (status, exit_code)
        if mode == "raise":
            assert got["error"] == {"type": "ValueError", "message": "features table has no rows"}
            assert "ValueError: features table has no rows" in proc.stderr
        elif mode == "exit-str":
            message = "gate failed: see the report"
            assert got["error"] == {"type": "SystemExit", "message": message}
        else:
            assert got["error"] is None

    @pytest.mark.parametrize("mode", ["return-value", "exit-value"])
    @pytest.mark.parametrize("value", sorted(outcomes.VALUES))
    def test_the_record_says_the_exit_code_the_process_ends_with(self, tmp_path, mode, value):
        """Whatever main returns to ``sys.exit(main())``, or hands to ``sys.exit`` itself."""
        out = tmp_path / "result.txt"
        proc = run_fake("outcomes", "--mode", mode, "--value", value, "--out", out, "--write")
        assert proc.returncode >= 0, proc.stderr
        got = outcome_of(out)
        assert got["exit_code"] == proc.returncode, proc.stderr
        assert got["status"] == ("succeeded" if proc.returncode == 0 else "failed")

    @pytest.mark.parametrize("value", sorted(outcomes.VALUES))
    def test_in_process_any_return_value_passes_through(self, tmp_path, value):
        out = tmp_path / "r.txt"
        got = outcomes.main(["--mode", "return-value", "--value", value, "--out", str(out)])
        assert got is outcomes.VALUES[value]

    @pytest.mark.parametrize("mode", ["wait", "wait-swallow"])
    def test_sigterm_is_recorded_then_kills_as_before(self, tmp_path, mode):
        out, ready = tmp_path / "result.txt", tmp_path / "ready"
        script = str(ROOT / "tests/fakes/outcomes.py")
        proc = subprocess.Popen(
            [sys.executable, script, "--mode", mode, "--out", out, "--write", "--ready", ready],
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while not ready.exists():
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the fake never got under way"
                time.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            # Even a script that swallows the exception ends killed by SIGTERM, as it would
            # have without the decorator.
            assert proc.wait(timeout=30) == -signal.SIGTERM
        finally:
            proc.kill()
        got = outcome_of(out)
        assert (got["status"], got["exit_code"], got["error"]) == ("interrupted", 143, None)

    @pytest.mark.parametrize(
        ("mode", "expected"),
        [("return-none", None), ("return-int", 3)],
    )
    def test_in_process_return_value_passes_through(self, tmp_path, mode, expected):
        out = tmp_path / "r.txt"
        assert outcomes.main(["--mode", mode, "--code", "3", "--out", str(out)]) == expected
        assert outcome_of(out)["exit_code"] == (expected or 0)

    @pytest.mark.parametrize(
        ("mode", "exc_type", "code"),
        [("exit-int", SystemExit, 3), ("exit-str", SystemExit, "gate failed: see the report")],
    )
    def test_in_process_system_exit_passes_through(self, tmp_path, mode, exc_type, code):
        out = tmp_path / "r.txt"
        with pytest.raises(exc_type) as caught:
            outcomes.main(["--mode", mode, "--code", "3", "--out", str(out)])
        assert caught.value.code == code

    def test_in_process_exception_is_the_same_object(self, tmp_path):
        out = tmp_path / "r.txt"
        with pytest.raises(ValueError, match="features table has no rows") as caught:
            outcomes.main(["--mode", "raise", "--out", str(out)])
        assert caught.value.__traceback__ is not None
        assert outcome_of(out)["error"]["type"] == "ValueError"

    def test_in_process_keyboard_interrupt_passes_through(self, tmp_path):
        out = tmp_path / "r.txt"
        with pytest.raises(KeyboardInterrupt):
            outcomes.main(["--mode", "interrupt", "--out", str(out)])
        assert outcome_of(out)["status"] == "interrupted"


class TestNothingParsed:
    @pytest.mark.parametrize("argv", [["--help"], ["--mode", "bogus", "--out", "x"], []])
    def test_help_and_usage_errors_write_no_sidecar(self, tmp_path, argv):
        proc = run_fake("outcomes", *argv, cwd=tmp_path)
        assert proc.returncode in (0, 2)
        assert list(tmp_path.iterdir()) == []


class TestDeterminism:
    def test_rerun_is_byte_identical(self, tmp_path, shards):
        out = tmp_path / "table.tsv"
        first = run_fake("table_builder", *shards, "--out", out)
        assert first.returncode == 0, first.stderr
        before = sidecar_bytes(sidecar_of(out))
        again = run_fake("table_builder", *shards, "--out", out)
        assert again.returncode == 0, again.stderr
        assert sidecar_bytes(sidecar_of(out)) == before

    def test_same_command_from_another_directory(self, tmp_path, shards):
        out = tmp_path / "table.tsv"
        run_fake("table_builder", *shards, "--out", out, cwd=ROOT)
        from_root = sidecar_bytes(sidecar_of(out))
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        run_fake("table_builder", *shards, "--out", out, cwd=elsewhere)
        assert sidecar_bytes(sidecar_of(out)) == from_root

    def test_nothing_volatile_and_canonical_bytes(self, tmp_path, shards):
        out = tmp_path / "table.tsv"
        run_fake("table_builder", *shards, "--out", out)
        raw = sidecar_bytes(sidecar_of(out))
        assert socket.gethostname().encode() not in raw
        document = json.loads(raw)
        canonical = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
        assert raw == canonical.encode("utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A throwaway project with a copy of the table builder, to see root-relative paths."""
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "demo"\n')
    shutil.copy(ROOT / "tests/fakes/table_builder.py", root / "scripts/table_builder.py")
    data = root / "data"
    data.mkdir()
    (data / "a.csv").write_text("k,v\nx,1\n")
    return root


def run_script(root: Path, *argv: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_python(root / "scripts/table_builder.py", *argv, cwd=cwd)


class TestPathsInTheSidecar:
    def test_paths_under_the_root_are_relative(self, project):
        proc = run_script(project, "data/a.csv", "--out", "out/t.tsv", cwd=project)
        assert proc.returncode == 0, proc.stderr
        block = load_sidecar(project / "out/t.tsv.manifest.json")["run_provenance"]
        assert block["entrypoint"]["path"] == "scripts/table_builder.py"
        assert block["inputs"]["shards"][0]["path"] == "data/a.csv"
        assert block["outputs"]["table"]["path"] == "out/t.tsv"
        assert block["args"]["shards"] == ["data/a.csv"]
        assert block["argv"] == ["data/a.csv", "--out", "out/t.tsv"]
        # The framework lives outside this project, so only the project's own code is listed.
        assert list(block["code"]) == ["scripts/table_builder.py"]

    def test_entrypoint_digests_match_the_file(self, project):
        run_script(project, "data/a.csv", "--out", "out/t.tsv", cwd=project)
        block = load_sidecar(project / "out/t.tsv.manifest.json")["run_provenance"]
        source = (project / "scripts/table_builder.py").read_bytes()
        assert block["entrypoint"]["blake3"] == blake3.blake3(source).hexdigest()
        assert block["code"]["scripts/table_builder.py"] == block["entrypoint"]["sha256"]

    def test_absolute_command_is_identical_from_any_directory(self, project):
        argv = [project / "data/a.csv", "--out", project / "out/t.tsv"]
        run_script(project, *argv, cwd=project)
        first = sidecar_bytes(project / "out/t.tsv.manifest.json")
        run_script(project, *argv, cwd=project / "data")
        assert sidecar_bytes(project / "out/t.tsv.manifest.json") == first

    def test_list_input_and_absent_optional_input(self, tmp_path, shards):
        out = tmp_path / "t.tsv"
        run_fake("table_builder", *shards, "--out", out)
        document = load_sidecar(sidecar_of(out))
        block = document["run_provenance"]
        assert [e["size_bytes"] for e in block["inputs"]["shards"]] == [
            p.stat().st_size for p in shards
        ]
        assert block["inputs"]["labels"] is None
        assert document["row_count"] == 3
        assert block["outputs"]["table"]["written_by_run"] is True

    def test_manifest_out_overrides_the_default(self, tmp_path, shards):
        out, manifest = tmp_path / "t.tsv", tmp_path / "bundle" / "deep" / "m.json"
        proc = run_fake("table_builder", *shards, "--out", out, "--manifest-out", manifest)
        assert proc.returncode == 0, proc.stderr
        assert not sidecar_of(out).exists()
        assert load_sidecar(manifest)["run_provenance"]["outputs"]["table"]["exists"]

    def test_a_missing_output_says_only_that(self, tmp_path):
        out = tmp_path / "never.txt"
        run_fake("outcomes", "--mode", "exit-int", "--out", out)
        entry = load_sidecar(sidecar_of(out))["run_provenance"]["outputs"]["result"]
        assert entry == {"path": out.as_posix(), "exists": False}


class TestEarlierEvidence:
    def succeed(self, out: Path) -> bytes:
        proc = run_fake("outcomes", "--mode", "return-none", "--out", out, "--write")
        assert proc.returncode == 0, proc.stderr
        return sidecar_bytes(sidecar_of(out))

    def test_failed_run_that_rewrote_nothing_keeps_the_earlier_sidecar(self, tmp_path):
        out = tmp_path / "result.txt"
        earlier = self.succeed(out)
        proc = run_fake("outcomes", "--mode", "exit-int", "--out", out)
        assert proc.returncode == 3
        assert sidecar_bytes(sidecar_of(out)) == earlier
        beside = tmp_path / "result.txt.manifest.failed.json"
        block = load_sidecar(beside)["run_provenance"]
        assert block["outputs"]["result"]["written_by_run"] is False
        assert block["outcome"]["status"] == "failed"
        assert "kept the earlier sidecar" in proc.stderr

    def test_failed_run_that_rewrote_outputs_moves_the_earlier_sidecar_aside(self, tmp_path):
        out = tmp_path / "result.txt"
        earlier = self.succeed(out)
        run_fake("outcomes", "--mode", "exit-int", "--out", out, "--write")
        assert sidecar_bytes(tmp_path / "result.txt.manifest.previous.json") == earlier
        block = load_sidecar(sidecar_of(out))["run_provenance"]
        assert block["outputs"]["result"]["written_by_run"] is True
        assert block["outcome"]["exit_code"] == 3

    def test_successful_rerun_replaces_the_sidecar(self, tmp_path):
        out = tmp_path / "result.txt"
        self.succeed(out)
        self.succeed(out)
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "result.txt",
            "result.txt.manifest.json",
        ]


class TestEvidenceFailures:
    def test_unwritable_sidecar_turns_success_into_failure(self, tmp_path, features):
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("")
        model = tmp_path / "model.json"
        proc = run_fake(
            "trainer",
            "--features",
            features,
            "--out-json",
            model,
            "--manifest-out",
            blocker / "m.json",
        )
        assert proc.returncode == 1
        assert "could not write the sidecar" in proc.stderr
        assert "run_provenance" not in json.loads(model.read_text()), "embed not taken back"

    def test_unwritable_sidecar_keeps_a_failed_exit_code(self, tmp_path):
        blocker = tmp_path / "file"
        blocker.write_text("")
        out = blocker / "sub" / "r.txt"
        proc = run_fake("outcomes", "--mode", "exit-int", "--code", 5, "--out", out)
        assert proc.returncode == 5
        assert "could not write the sidecar" in proc.stderr

    def test_no_output_and_no_manifest_out_fails_loudly(self, capsys):
        from provenance import recorded_run
        from provenance.errors import NoSidecarTargetError

        @recorded_run
        def main(argv=None):
            import argparse

            argparse.ArgumentParser().parse_args(argv)
            return 0

        with pytest.raises(NoSidecarTargetError, match="nowhere to put its evidence"):
            main([])
        assert "no sidecar was written" in capsys.readouterr().err

    def test_a_dest_the_full_parse_lacks_stops_the_script_before_its_work(self, tmp_path):
        import argparse

        from provenance import recorded_run
        from provenance.errors import DeclarationError

        calls = []

        @recorded_run(outputs={"model": "out_jsn"})
        def main(argv=None):
            parser = argparse.ArgumentParser()
            parser.add_argument("--out-json")
            parser.parse_args(argv)
            calls.append("worked")
            return 0

        with pytest.raises(DeclarationError, match=r"'out_jsn'.*closest: out_json\)$"):
            main(["--out-json", str(tmp_path / "m.json")])
        assert calls == []
        assert list(tmp_path.iterdir()) == []

    def test_two_stage_parsing_resolves_when_the_full_parse_supplies_the_dest(self, tmp_path):
        import argparse

        from provenance import recorded_run

        out = tmp_path / "m.json"

        @recorded_run(outputs={"model": "out_json"}, inputs={"config": "config"})
        def main(argv=None):
            # timm's train.py: a config pre-parse, then the full parser with parents=[pre].
            pre = argparse.ArgumentParser(add_help=False)
            pre.add_argument("--config")
            pre.parse_known_args(argv)
            parser = argparse.ArgumentParser(parents=[pre])
            parser.add_argument("--out-json")
            args = parser.parse_args(argv)
            Path(args.out_json).write_text("{}")
            return 0

        assert main(["--config", str(tmp_path / "c.yaml"), "--out-json", str(out)]) == 0
        block = load_sidecar(sidecar_of(out))["run_provenance"]
        assert block["outputs"]["model"]["written_by_run"] is True
        assert block["inputs"]["config"] == {"path": str(tmp_path / "c.yaml"), "exists": False}


class TestGatesAndFields:
    def test_failed_gate_still_writes_model_and_sidecar(self, tmp_path, features):
        model = tmp_path / "model.json"
        proc = run_fake("trainer", "--features", features, "--out-json", model, "--plcc", 0.5)
        assert proc.returncode == 1
        document = load_sidecar(sidecar_of(model))
        outcome = document["run_provenance"]["outcome"]
        assert outcome["status"] == "failed"
        assert outcome["gates"] == {"plcc": {"passed": False, "threshold": 0.75, "value": 0.5}}
        embedded = json.loads(model.read_text())["run_provenance"]
        assert embedded["outcome"] == outcome
        assert document["rows"] == 3
        assert document["feature_order"] == ["adm2", "motion2"]

    def test_embedded_block_and_sidecar_agree_on_the_final_bytes(self, tmp_path, features):
        model = tmp_path / "model.json"
        run_fake("trainer", "--features", features, "--out-json", model)
        sidecar_entry = load_sidecar(sidecar_of(model))["run_provenance"]["outputs"]["model"]
        assert sidecar_entry["blake3"] == blake3.blake3(model.read_bytes()).hexdigest()
        model_doc = json.loads(model.read_text())
        assert model_doc["weights"] == [0.5, 0.25], "the script's own fields survive"
        assert model_doc["run_provenance"]["outputs"]["model"] == {
            "path": model.as_posix(),
            "exists": True,
            "embedded_here": True,
            "written_by_run": True,
        }

    def test_reserved_fields_are_refused_and_gates_normalized(self, tmp_path):
        with Run(RunSpec(outputs={"x": tmp_path / "x"}), __file__, []) as run:
            with pytest.raises(ProvenanceError, match="reserved"):
                run.record(schema="mine")
            run.gate("g", 1, plcc=float("nan"))
        gates = load_sidecar(tmp_path / "x.manifest.json")["run_provenance"]["outcome"]["gates"]
        assert gates == {"g": {"passed": True, "plcc": "NaN"}}

    def test_passed_is_taken_by_keyword_and_by_position(self, tmp_path):
        with Run(RunSpec(outputs={"x": tmp_path / "x"}), __file__, []) as run:
            run.gate("by_keyword", passed=False, plcc=0.7)
            run.gate("by_position", True, plcc=0.9)
        gates = load_sidecar(tmp_path / "x.manifest.json")["run_provenance"]["outcome"]["gates"]
        assert gates == {
            "by_keyword": {"passed": False, "plcc": 0.7},
            "by_position": {"passed": True, "plcc": 0.9},
        }


class TestCurrentRun:
    def test_outside_a_run_raises_a_clear_error(self):
        with pytest.raises(NoActiveRunError, match="outside a recorded run"):
            current_run()

    def test_is_a_provenance_error_and_a_lookup_error(self):
        assert issubclass(NoActiveRunError, ProvenanceError)
        assert issubclass(NoActiveRunError, LookupError)

    def test_input_changed_during_the_run_says_so(self, tmp_path):
        import argparse

        from provenance import recorded_run

        source, out = tmp_path / "in.txt", tmp_path / "out.txt"
        source.write_text("v1\n")

        @recorded_run(inputs={"source": "source"}, outputs={"out": "out"})
        def main(argv=None):
            parser = argparse.ArgumentParser()
            parser.add_argument("source", type=Path)
            parser.add_argument("out", type=Path)
            args = parser.parse_args(argv)
            args.source.write_text("v2, longer\n")  # another job rewrote it under us
            args.out.write_text("done\n")
            return 0

        main([str(source), str(out)])
        entry = load_sidecar(sidecar_of(out))["run_provenance"]["inputs"]["source"]
        assert entry["changed_during_run"] is True
        assert entry["size_bytes"] == len("v2, longer\n")

    def test_untouched_preexisting_output_is_not_claimed(self, tmp_path):
        old, new = tmp_path / "old.txt", tmp_path / "new.txt"
        old.write_text("from an earlier run\n")
        with Run(RunSpec(outputs={"new": new, "old": old}), __file__, []):
            new.write_text("fresh\n")
        outputs = load_sidecar(sidecar_of(new))["run_provenance"]["outputs"]
        assert outputs["new"]["written_by_run"] is True
        assert outputs["old"]["written_by_run"] is False

    def test_directory_output(self, tmp_path):
        folder = tmp_path / "shards"
        with Run(RunSpec(outputs={"shards": folder}), __file__, []) as run:
            folder.mkdir()
            (folder / "a.bin").write_bytes(b"a" * 10)
            (folder / "b.bin").write_bytes(b"b" * 5)
            run.record(shards=2)
        entry = load_sidecar(tmp_path / "shards.manifest.json")["run_provenance"]["outputs"]
        assert entry["shards"]["kind"] == "directory"
        assert (entry["shards"]["file_count"], entry["shards"]["size_bytes"]) == (2, 15)
        assert entry["shards"]["written_by_run"] is True

    def test_add_input_and_add_output_from_the_body(self, tmp_path, features):
        out = tmp_path / "o.json"
        with Run(RunSpec(), __file__, []) as run:
            run.add_input("features", features)
            run.add_output("report", str(out))
            out.write_text("{}")
        block = load_sidecar(sidecar_of(out))["run_provenance"]
        assert block["inputs"]["features"]["exists"] is True
        assert block["outputs"]["report"]["written_by_run"] is True


def test_trainer_in_process_matches_its_subprocess(tmp_path, features):
    model = tmp_path / "model.json"
    trainer.main(["--features", str(features), "--out-json", str(model)])
    in_process = load_sidecar(sidecar_of(model))["run_provenance"]
    run_fake("trainer", "--features", features, "--out-json", model)
    subprocess_block = load_sidecar(sidecar_of(model))["run_provenance"]
    for key in ("entrypoint", "args", "inputs", "outcome", "hash_policy"):
        assert in_process[key] == subprocess_block[key], key
    # The model embeds the block, whose code map also lists what pytest imported in-process.
    assert "tests/test_run.py" in in_process["code"]
    assert "tests/test_run.py" not in subprocess_block["code"]
    for entry in (in_process["outputs"]["model"], subprocess_block["outputs"]["model"]):
        assert entry["written_by_run"] is True


def test_a_file_name_that_is_not_utf8_is_recorded(tmp_path):
    clip = tmp_path / os.fsdecode(b"clip_\xff.bin")
    clip.write_bytes(b"x")
    out = tmp_path / "out.txt"
    with Run(RunSpec(inputs={"clip": clip}, outputs={"out": out}), __file__, []):
        out.write_text("x")
    entry = load_sidecar(sidecar_of(out))["run_provenance"]["inputs"]["clip"]
    assert os.fsencode(entry["path"]) == os.fsencode(clip)
    assert entry["size_bytes"] == 1


def faulty(*argv: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return run_fake("faulty", *argv, cwd=cwd)


class TestNoRunErasesAnothersEvidence:
    def good(self, out: Path) -> bytes:
        proc = faulty("--out", out, "--tag", "good")
        assert proc.returncode == 0, proc.stderr
        return sidecar_bytes(sidecar_of(out))

    def test_any_number_of_failed_runs_keep_the_last_good_record(self, tmp_path):
        out = tmp_path / "model.bin"
        good = self.good(out)
        for tag in ("x", "y", "z"):
            assert faulty("--out", out, "--tag", tag, "--end", "fail").returncode == 1
        assert sidecar_bytes(tmp_path / "model.bin.manifest.previous.json") == good
        now = load_sidecar(sidecar_of(out))["run_provenance"]
        assert now["outcome"]["status"] == "failed"
        assert now["outputs"]["model"]["blake3"] == blake3.blake3(out.read_bytes()).hexdigest()

    def test_a_failed_run_that_cannot_write_its_record_moves_nothing(self, tmp_path, monkeypatch):
        from tests.fakes import faulty as script

        out = tmp_path / "model.bin"
        good = self.good(out)

        def disk_full(*args, **kwargs):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr("provenance.record.write.atomic_write", disk_full)
        assert script.main(["--out", str(out), "--tag", "new", "--end", "fail"]) == 1
        assert sidecar_bytes(sidecar_of(out)) == good
        kept = tmp_path / "model.bin.manifest.previous.json"
        assert not kept.exists() or sidecar_bytes(kept) == good

    def test_a_successful_run_that_wrote_nothing_leaves_the_record_alone(self, tmp_path):
        out = tmp_path / "model.bin"
        good = self.good(out)
        proc = faulty("--out", out, "--no-write")
        assert proc.returncode == 0, proc.stderr
        assert sidecar_bytes(sidecar_of(out)) == good
        beside = load_sidecar(tmp_path / "model.bin.manifest.succeeded.json")["run_provenance"]
        assert beside["outputs"]["model"]["written_by_run"] is False
        assert "kept the earlier sidecar" in proc.stderr

    def test_eight_concurrent_failing_runs_keep_the_last_good_record(self, tmp_path):
        out = tmp_path / "model.bin"
        good = self.good(out)
        script = str(ROOT / "tests/fakes/faulty.py")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        procs = [
            subprocess.Popen(
                [sys.executable, script, "--out", str(out), "--tag", str(i), "--end", "fail"],
                env=env,
                stderr=subprocess.DEVNULL,
            )
            for i in range(8)
        ]
        assert [p.wait(timeout=60) for p in procs] == [1] * 8
        assert sidecar_bytes(tmp_path / "model.bin.manifest.previous.json") == good

    def test_concurrent_writers_never_credit_one_command_with_anothers_bytes(self, tmp_path):
        out = tmp_path / "model.bin"
        script = str(ROOT / "tests/fakes/faulty.py")
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        for _ in range(3):
            procs = [
                subprocess.Popen(
                    [
                        sys.executable,
                        script,
                        "--out",
                        str(out),
                        "--tag",
                        f"w{i}",
                        "--size",
                        str(2**20),
                        "--hold",
                        "0.05",
                    ],
                    env=env,
                    stderr=subprocess.DEVNULL,
                )
                for i in range(8)
            ]
            assert [p.wait(timeout=60) for p in procs] == [0] * 8
            block = load_sidecar(sidecar_of(out))["run_provenance"]
            entry = block["outputs"]["model"]
            tag = block["argv"][block["argv"].index("--tag") + 1]
            unit = (tag * 64).encode()
            expected = (unit * (2**20 // len(unit) + 1))[: 2**20]
            on_disk = blake3.blake3(out.read_bytes()).hexdigest()
            # Either the record's command wrote exactly the bytes it sits beside, or the
            # record says it cannot tell.
            if not entry.get("concurrent_writers"):
                assert entry["blake3"] == on_disk == blake3.blake3(expected).hexdigest()

    def test_a_late_add_output_is_judged_from_the_start_of_the_run(self, tmp_path):
        from provenance import recorded_run

        out, report = tmp_path / "model.bin", tmp_path / "report.json"
        with recorded_run(outputs={"model": out}) as run:
            report.write_text("{}")
            run.add_output("report", report)
        entry = load_sidecar(sidecar_of(out))["run_provenance"]["outputs"]["report"]
        assert entry["written_by_run"] is True

    def test_a_late_add_output_of_an_old_file_is_not_claimed(self, tmp_path):
        from provenance import recorded_run

        out, old = tmp_path / "model.bin", tmp_path / "old.json"
        old.write_text("{}")
        time.sleep(0.02)
        with recorded_run(outputs={"model": out}) as run:
            run.add_output("old", old)
        entry = load_sidecar(sidecar_of(out))["run_provenance"]["outputs"]["old"]
        assert entry["written_by_run"] is False


class TestSideOutputs:
    def test_a_glob_declaration_records_the_side_file(self, tmp_path):
        out = tmp_path / "model.onnx"
        proc = faulty("--out", out, "--side-file")
        assert proc.returncode == 0, proc.stderr
        (data,) = load_sidecar(sidecar_of(out))["run_provenance"]["outputs"]["data"]
        assert data["path"] == f"{out.as_posix()}.data"
        assert data["written_by_run"] is True
        assert data["blake3"] == blake3.blake3(Path(f"{out}.data").read_bytes()).hexdigest()

    def test_glob_characters_in_the_dest_value_are_literal(self, tmp_path):
        folder = tmp_path / "run[1]"
        folder.mkdir()
        out = folder / "model.onnx"
        assert faulty("--out", out, "--side-file").returncode == 0
        (data,) = load_sidecar(sidecar_of(out))["run_provenance"]["outputs"]["data"]
        assert data["exists"] is True

    def test_the_warning_names_the_side_file(self, tmp_path):
        code = (
            "from pathlib import Path\n"
            "from provenance import recorded_run\n"
            f"out = Path({str(tmp_path / 'model.onnx')!r})\n"
            f"with recorded_run(outputs={{'model': out}}, entrypoint={__file__!r}):\n"
            "    out.write_bytes(b'graph')\n"
            "    Path(f'{out}.data').write_bytes(b'weights')\n"
        )
        proc = run_python("-c", code)
        assert proc.returncode == 0, proc.stderr
        assert "model.onnx.data appeared beside the output model.onnx" in proc.stderr


def manifest_script(own_manifest: str | None, *, out_text: str = "m", code: int = 0):
    """A script that writes its model (``out_text``), and its own data manifest to
    --manifest-out unless ``own_manifest`` is None, then returns ``code``."""
    from provenance import current_run, recorded_run

    @recorded_run(outputs={"model": "out"})
    def main(argv=None):
        parser = argparse.ArgumentParser()
        parser.add_argument("--out")
        parser.add_argument("--manifest-out")
        args = parser.parse_args(argv)
        Path(args.out).write_text(out_text)
        if own_manifest is not None:
            Path(args.manifest_out).write_text(own_manifest)
        current_run().record(row_count=10)
        return code

    return main


class TestScriptsOwnManifest:
    def test_the_block_is_merged_into_a_json_object_the_script_wrote(self, tmp_path):
        manifest = tmp_path / "data_manifest.json"
        main = manifest_script('{"shards": ["a", "b"], "rows": 10}')
        assert main(["--out", str(tmp_path / "m"), "--manifest-out", str(manifest)]) == 0
        document = json.loads(manifest.read_text())
        assert document["shards"] == ["a", "b"]
        assert document["rows"] == 10
        assert document["row_count"] == 10
        assert document["run_provenance"]["outputs"]["model"]["written_by_run"] is True

    def test_what_is_not_a_json_object_is_left_alone(self, tmp_path, capsys):
        manifest = tmp_path / "manifest.jsonl"
        main = manifest_script('{"a": 1}\n{"b": 2}\n')
        assert main(["--out", str(tmp_path / "m"), "--manifest-out", str(manifest)]) == 0
        assert manifest.read_text() == '{"a": 1}\n{"b": 2}\n'
        assert load_sidecar(tmp_path / "manifest.jsonl.manifest.json")
        assert "left as it is" in capsys.readouterr().err


class TestNamesAndLinks:
    def test_an_artifact_name_that_nearly_fills_the_limit(self, tmp_path):
        out = tmp_path / ("m" * 228)
        proc = faulty("--out", out)
        assert proc.returncode == 0, proc.stderr
        assert load_sidecar(sidecar_of(out))["run_provenance"]["outcome"]["status"] == "succeeded"

    def test_embedding_into_a_symlinked_output_keeps_the_link(self, tmp_path):
        from provenance import recorded_run

        real = tmp_path / "store" / "model.json"
        real.parent.mkdir()
        link = tmp_path / "model.json"
        link.symlink_to(real)
        with recorded_run(outputs={"model": link}, embed_into="model"):
            link.write_text('{"weights": [1, 2]}')
        assert link.is_symlink()
        assert json.loads(real.read_text())["run_provenance"]["schema"] == "provenance.run/v1"


@pytest.mark.parametrize(("code", "process_exit"), [(-1, 255), (2**70, 255), (256, 0), (3, 3)])
def test_the_recorded_exit_code_is_the_processs(tmp_path, code, process_exit):
    out = tmp_path / "o"
    script = tmp_path / "exits.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from provenance import recorded_run\n"
        f"@recorded_run(outputs={{'o': __import__('pathlib').Path({str(out)!r})}})\n"
        "def main(argv=None):\n"
        f"    return {code}\n"
        "sys.exit(main())\n"
    )
    proc = run_python(script)
    assert proc.returncode == process_exit
    assert load_sidecar(sidecar_of(out))["run_provenance"]["outcome"]["exit_code"] == process_exit


class TestScriptsOwnManifestEdges:
    def test_keys_keep_the_scripts_order_and_recorded_fields_follow(self, tmp_path):
        manifest = tmp_path / "m.json"
        main = manifest_script('{"z": 1, "a": 2}')
        assert main(["--out", str(tmp_path / "o"), "--manifest-out", str(manifest)]) == 0
        assert list(json.loads(manifest.read_text())) == ["z", "a", "row_count", "run_provenance"]

    def test_a_block_the_script_wrote_itself_is_not_replaced(self, tmp_path, capsys):
        manifest = tmp_path / "m.json"
        main = manifest_script('{"run_provenance": {"mine": true}}')
        assert main(["--out", str(tmp_path / "o"), "--manifest-out", str(manifest)]) == 0
        assert json.loads(manifest.read_text()) == {"run_provenance": {"mine": True}}
        assert load_sidecar(tmp_path / "m.json.manifest.json")
        assert "holds a run_provenance of its own" in capsys.readouterr().err

    def test_a_failed_rerun_does_not_overwrite_the_scripts_merged_manifest(self, tmp_path):
        manifest, out = tmp_path / "m.json", tmp_path / "o"
        assert (
            manifest_script('{"rows": 3}')(["--out", str(out), "--manifest-out", str(manifest)])
            == 0
        )
        before = manifest.read_bytes()
        failing = manifest_script(None, out_text="half", code=1)

        assert failing(["--out", str(out), "--manifest-out", str(manifest)]) == 1
        assert manifest.read_bytes() == before
        failed = load_sidecar(tmp_path / "m.json.manifest.json")["run_provenance"]
        assert failed["outcome"]["status"] == "failed"

    def test_a_manifest_that_is_also_the_output_does_not_claim_its_own_digest(self, tmp_path):
        from provenance import recorded_run

        same = tmp_path / "report.json"

        @recorded_run(outputs={"report": "out"})
        def main(argv=None):
            parser = argparse.ArgumentParser()
            parser.add_argument("--out")
            parser.add_argument("--manifest-out")
            args = parser.parse_args(argv)
            Path(args.out).write_text('{"plcc": 0.9}')
            return 0

        assert main(["--out", str(same), "--manifest-out", str(same)]) == 0
        document = json.loads(same.read_text())
        assert document["plcc"] == 0.9
        assert document["run_provenance"]["outputs"]["report"]["embedded_here"] is True


def test_an_evidence_error_raised_to_the_script_holds_no_secret(tmp_path):
    from provenance import SidecarWriteError, recorded_run

    secret = "SIDEWRITE_PW_1"
    out = tmp_path / f"w-{secret}.json"
    sidecar_of(out).mkdir()  # the sidecar cannot be written there

    @recorded_run(outputs={"model": "out"})
    def main(argv=None):
        parser = argparse.ArgumentParser()
        parser.add_argument("--password")
        parser.add_argument("--out")
        args = parser.parse_args(argv)
        Path(args.out).write_text("m")
        return 0

    with pytest.raises(SidecarWriteError) as caught:
        main(["--password", secret, "--out", str(out)])
    assert secret not in str(caught.value)
