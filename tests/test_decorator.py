"""recorded_run's forms, delegation between recorded functions, and redaction on real scripts."""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path

import pytest

from provenance import ProvenanceError, current_run, recorded_run
from provenance.run import Run
from tests.conftest import load_sidecar, run_fake, run_python, sidecar_bytes, sidecar_of
from tests.fakes import chug_wrapper, trainer


def _parse_out(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


class TestForms:
    def test_bare_decorator_records_with_manifest_out(self, tmp_path):
        @recorded_run
        def main(argv=None):
            parser = argparse.ArgumentParser()
            parser.add_argument("--manifest-out")
            parser.parse_args(argv)
            return 0

        manifest = tmp_path / "m.json"
        assert main(["--manifest-out", str(manifest)]) == 0
        block = load_sidecar(manifest)["run_provenance"]
        assert block["entrypoint"]["path"] == "tests/test_decorator.py"
        assert block["argv"] == ["--manifest-out", str(manifest)]

    def test_signature_name_and_doc_are_kept(self):
        def main(argv: list[str] | None = None, *, dry_run: bool = False) -> int:
            """Train the head."""
            return 0

        wrapped = recorded_run(outputs={"o": "out"})(main)
        assert inspect.signature(wrapped) == inspect.signature(main)
        assert (wrapped.__name__, wrapped.__doc__) == ("main", "Train the head.")

    def test_explicit_entrypoint_overrides_the_defining_file(self, tmp_path, features):
        @recorded_run(entrypoint=trainer.__file__, outputs={"out": "out"})
        def main(argv=None):
            _parse_out(argv).out.write_text("x")

        main(["--out", str(tmp_path / "o")])
        block = load_sidecar(tmp_path / "o.manifest.json")["run_provenance"]
        assert block["entrypoint"]["path"] == "tests/fakes/trainer.py"

    def test_callable_declaration(self, tmp_path):
        @recorded_run(outputs={"model": lambda args: args.out_dir / "model.bin"})
        def main(argv=None):
            parser = argparse.ArgumentParser()
            parser.add_argument("--out-dir", type=Path)
            args = parser.parse_args(argv)
            (args.out_dir / "model.bin").write_bytes(b"\0" * 3)

        main(["--out-dir", str(tmp_path)])
        entry = load_sidecar(tmp_path / "model.bin.manifest.json")["run_provenance"]["outputs"]
        assert entry["model"]["size_bytes"] == 3

    def test_methods_can_be_decorated(self, tmp_path):
        class Job:
            @recorded_run(outputs={"out": "out"})
            def main(self, argv=None):
                _parse_out(argv).out.write_text("m")
                return 7

        assert Job().main(["--out", str(tmp_path / "o")]) == 7
        assert (
            load_sidecar(tmp_path / "o.manifest.json")["run_provenance"]["outcome"]["exit_code"]
            == 7
        )

    def test_each_call_gets_a_fresh_run(self, tmp_path):
        seen = []

        @recorded_run(outputs={"out": "out"})
        def main(argv=None):
            _parse_out(argv).out.write_text("x")
            seen.append(current_run())
            current_run().record(call=len(seen))

        main(["--out", str(tmp_path / "a")])
        main(["--out", str(tmp_path / "b")])
        assert seen[0] is not seen[1]
        assert load_sidecar(tmp_path / "b.manifest.json")["call"] == 2
        assert not hasattr(main, "run")


class TestContextManager:
    def test_records_the_block_of_a_with_statement(self, tmp_path):
        out = tmp_path / "report.json"
        with recorded_run(outputs={"report": out}) as run:
            assert isinstance(run, Run)
            assert current_run() is run
            out.write_text("{}")
            run.record(items=3)
        document = load_sidecar(sidecar_of(out))
        assert document["items"] == 3
        assert document["run_provenance"]["entrypoint"]["path"] == "tests/test_decorator.py"
        assert document["run_provenance"]["outcome"]["status"] == "succeeded"

    def test_exceptions_pass_through_and_are_recorded(self, tmp_path):
        out = tmp_path / "report.json"
        with pytest.raises(RuntimeError, match="boom"), recorded_run(outputs={"report": out}):
            raise RuntimeError("boom")
        outcome = load_sidecar(sidecar_of(out))["run_provenance"]["outcome"]
        assert outcome["error"] == {"type": "RuntimeError", "message": "boom"}

    def test_one_declaration_serves_successive_with_blocks(self, tmp_path):
        out = tmp_path / "r.txt"
        declaration = recorded_run(outputs={"r": out})
        for n in (1, 2):
            with declaration as run:
                run.record(n=n)
        assert load_sidecar(sidecar_of(out))["n"] == 2


class TestDelegation:
    def test_wrapper_keeps_its_identity_and_names_the_shared_trainer(self, tmp_path, features):
        model = tmp_path / "model.json"
        proc = run_fake("chug_wrapper", "--features", features, "--out-json", model)
        assert proc.returncode == 0, proc.stderr
        document = load_sidecar(sidecar_of(model))
        block = document["run_provenance"]
        assert block["entrypoint"]["path"] == "tests/fakes/chug_wrapper.py"
        assert block["shared_trainer"]["path"] == "tests/fakes/trainer.py"
        assert block["argv"] == ["--features", str(features), "--out-json", str(model)]
        assert block["args"]["min_plcc"] == 0.8, "the delegated parse joins the outer run"
        assert block["outcome"]["gates"]["plcc"]["threshold"] == 0.8
        assert document["rows"] == 3, "fields recorded in the shared trainer join too"
        assert {"tests/fakes/chug_wrapper.py", "tests/fakes/trainer.py"} <= set(block["code"])
        embedded = json.loads(model.read_text())["run_provenance"]
        assert embedded["entrypoint"] == block["entrypoint"]
        assert embedded["shared_trainer"] == block["shared_trainer"]

    def test_direct_run_of_the_shared_trainer_has_no_shared_trainer(self, tmp_path, features):
        model = tmp_path / "model.json"
        run_fake("trainer", "--features", features, "--out-json", model)
        block = load_sidecar(sidecar_of(model))["run_provenance"]
        assert block["entrypoint"]["path"] == "tests/fakes/trainer.py"
        assert "shared_trainer" not in block

    def test_wrapper_help_writes_nothing(self, tmp_path):
        proc = run_fake("chug_wrapper", "--help", cwd=tmp_path)
        assert proc.returncode == 0
        assert "--features" in proc.stdout
        assert list(tmp_path.iterdir()) == []

    def test_in_process_delegation(self, tmp_path, features):
        model = tmp_path / "model.json"
        assert chug_wrapper.main(["--features", str(features), "--out-json", str(model)]) == 0
        block = load_sidecar(sidecar_of(model))["run_provenance"]
        assert block["entrypoint"]["path"] == "tests/fakes/chug_wrapper.py"
        assert block["shared_trainer"]["path"] == "tests/fakes/trainer.py"

    def test_failing_before_delegating_names_no_shared_trainer(self, tmp_path, features):
        report = tmp_path / "report.txt"

        @recorded_run(outputs={"report": report})
        def wrapper(argv):
            if "--broken" in argv:
                raise RuntimeError("corpus not mounted")
            return trainer.main(argv)

        with pytest.raises(RuntimeError):
            wrapper(["--broken"])
        assert "shared_trainer" not in load_sidecar(sidecar_of(report))["run_provenance"]
        wrapper(["--features", str(features), "--out-json", str(tmp_path / "m.json")])
        block = load_sidecar(sidecar_of(report))["run_provenance"]
        assert block["shared_trainer"]["path"] == "tests/fakes/trainer.py"
        assert set(block["outputs"]) == {"report", "model"}

    def test_inner_failure_is_recorded_once_by_the_outer_run(self, tmp_path, features):
        model = tmp_path / "model.json"
        proc = run_fake(
            "chug_wrapper", "--features", features, "--out-json", model, "--plcc", "0.1"
        )
        assert proc.returncode == 1
        block = load_sidecar(sidecar_of(model))["run_provenance"]
        assert block["outcome"]["status"] == "failed"
        assert block["outcome"]["gates"]["plcc"]["passed"] is False
        assert sorted(p.name for p in tmp_path.iterdir()) == [
            "features.csv",
            "model.json",
            "model.json.manifest.json",
        ]


SECRETS = ["abc123token", "hunter2", "hf_xyz", "postgres://u:pw@db/x"]


class TestRedaction:
    @pytest.fixture
    def block(self, tmp_path):
        out = tmp_path / "o.txt"
        proc = run_fake(
            "secret_script",
            "--out",
            out,
            "--api-token",
            SECRETS[0],
            "-p",
            SECRETS[1],
            f"--hfToken={SECRETS[2]}",
            "--db-url",
            SECRETS[3],
            "--tokenizer",
            "wordpiece",
            "--max-tokens",
            "32",
        )
        assert proc.returncode == 0, proc.stderr
        raw = sidecar_bytes(sidecar_of(out)).decode()
        for secret in SECRETS:
            assert secret not in raw
        return json.loads(raw)["run_provenance"]

    def test_args_are_redacted_by_name(self, block):
        args = block["args"]
        assert args["api_token"] == args["password"] == args["hf_token"] == "<redacted>"
        assert args["db_url"] == "<redacted>", "names added with redact= count too"
        assert (args["tokenizer"], args["max_tokens"]) == ("wordpiece", 32)

    def test_argv_keeps_its_shape(self, block):
        argv = block["argv"]
        redacted = ["--api-token", "<redacted>", "-p", "<redacted>", "--hfToken=<redacted>"]
        assert argv[2:7] == redacted
        assert argv[-4:] == ["--tokenizer", "wordpiece", "--max-tokens", "32"]

    def test_abbreviated_and_attached_forms(self, tmp_path):
        out = tmp_path / "o.txt"
        run_fake("secret_script", "--out", out, "--api-tok", SECRETS[0], f"-p{SECRETS[1]}")
        block = load_sidecar(sidecar_of(out))["run_provenance"]
        assert block["argv"][2:] == ["--api-tok", "<redacted>", "-p<redacted>"]
        assert block["args"]["api_token"] == "<redacted>"


class TestMisuseAndFaults:
    @pytest.mark.parametrize("kind", ["async", "generator", "async generator"])
    def test_functions_that_return_before_working_are_refused(self, kind):
        async def coroutine(argv=None):
            return 0

        def generator(argv=None):
            yield 0

        async def async_generator(argv=None):
            yield 0

        main = {"async": coroutine, "generator": generator, "async generator": async_generator}
        with pytest.raises(ProvenanceError, match=f"{kind.split()[-1]} function"):
            recorded_run(outputs={"o": "o"})(main[kind])

    def test_an_exception_whose_str_raises_passes_through_and_is_recorded(self, tmp_path):
        class Hostile(Exception):
            def __str__(self):
                raise RuntimeError("no text")

        out = tmp_path / "o"
        raised = Hostile()
        with pytest.raises(Hostile) as caught, recorded_run(outputs={"o": out}):
            raise raised
        assert caught.value is raised
        error = load_sidecar(sidecar_of(out))["run_provenance"]["outcome"]["error"]
        assert error["message"] == "<str() of the exception failed: RuntimeError>"

    def test_a_fault_in_recording_does_not_replace_the_scripts_exception(
        self, tmp_path, monkeypatch, capsys
    ):
        monkeypatch.setattr("provenance.record.write.build_block", broken_block)
        declaration = recorded_run(outputs={"o": tmp_path / "o"})
        with pytest.raises(KeyError, match="the script's own"), declaration:
            raise KeyError("the script's own")
        assert "could not record the run: RuntimeError: hashing exploded" in capsys.readouterr().err

    def test_a_fault_in_recording_fails_a_run_that_would_have_succeeded(
        self, tmp_path, monkeypatch
    ):
        monkeypatch.setattr("provenance.record.write.build_block", broken_block)
        declaration = recorded_run(outputs={"o": tmp_path / "o"})
        failed = pytest.raises(ProvenanceError, match="could not record the run")
        with failed as caught, declaration:
            pass
        assert isinstance(caught.value.__cause__, RuntimeError)
        assert not (tmp_path / "o.manifest.json").exists()

    def test_one_declaration_in_two_threads(self, tmp_path):
        import threading

        declaration = recorded_run(outputs={"o": tmp_path / "o"})
        inside, errors = threading.Barrier(2), []

        def work(n):
            try:
                with declaration as run:
                    inside.wait(timeout=10)  # both runs open at once
                    run.record(n=n)
                    assert current_run() is run
            except Exception as err:  # noqa: BLE001 -- a thread's exception is otherwise lost
                errors.append(err)

        threads = [threading.Thread(target=work, args=(n,)) for n in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert load_sidecar(tmp_path / "o.manifest.json")["n"] in (1, 2)


def broken_block(facts, *args):
    raise RuntimeError("hashing exploded")


def test_outer_declaration_resolved_at_exit_keeps_what_the_inner_run_declared(tmp_path, features):
    report = tmp_path / "report.txt"

    # The outer run never parses; its "model" dest comes from the delegated trainer's parse.
    @recorded_run(outputs={"model": "out_json", "report": report})
    def wrapper(argv):
        report.write_text("r")
        return trainer.main(argv)

    model = tmp_path / "model.json"
    wrapper(["--features", str(features), "--out-json", str(model)])
    outputs = load_sidecar(sidecar_of(model))["run_provenance"]["outputs"]
    assert outputs["model"]["path"] == model.as_posix()
    assert outputs["model"]["written_by_run"] is True, "the trainer's baseline is kept"
    assert outputs["report"]["written_by_run"] is True


class TestManifestDeclaration:
    def parse(self, argv):
        parser = argparse.ArgumentParser()
        parser.add_argument("--bundle", type=Path)
        return parser.parse_args(argv)

    def test_another_dest_or_a_callable(self, tmp_path):
        @recorded_run(manifest="bundle")
        def by_dest(argv):
            self.parse(argv)

        @recorded_run(manifest=lambda args: args.bundle / "run.json")
        def by_callable(argv):
            self.parse(argv)

        by_dest(["--bundle", str(tmp_path / "m.json")])
        by_callable(["--bundle", str(tmp_path)])
        assert load_sidecar(tmp_path / "m.json")["run_provenance"]["argv"][0] == "--bundle"
        assert load_sidecar(tmp_path / "run.json")["run_provenance"]["outcome"]["exit_code"] == 0

    def test_a_callable_that_raises_is_a_declaration_error(self, tmp_path):
        from provenance.errors import DeclarationError

        @recorded_run(manifest=lambda args: args.nope)
        def main(argv):
            self.parse(argv)

        with pytest.raises(DeclarationError, match=r"manifest 'manifest'.*AttributeError"):
            main([])


def test_an_entrypoint_that_is_not_a_file_is_refused_before_work(tmp_path):
    proc = run_python(
        "-c",
        "from pathlib import Path\n"
        "from provenance import recorded_run\n"
        f"with recorded_run(outputs={{'o': Path({str(tmp_path / 'o')!r})}}):\n"
        "    print('worked')\n",
    )
    assert proc.returncode == 1
    assert "worked" not in proc.stdout
    assert "is not a file" in proc.stderr
    assert "pass entrypoint=" in proc.stderr
