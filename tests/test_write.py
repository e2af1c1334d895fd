"""The record writer on its own: facts built by hand, no Run, real files in a temporary folder."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from provenance.errors import SidecarWriteError
from provenance.measure.paths import Declared, fingerprint
from provenance.ranks import Launch, parts_of
from provenance.record.build import RunFacts
from provenance.record.outcome import FAILED, SUCCEEDED, Outcome
from provenance.record.redact import REDACTED, SecretMatcher
from provenance.record.write import RecordWriter, WriteFacts, stat_key
from tests.conftest import load_sidecar, sidecar_bytes, sidecar_of

WRITE_MODULE = Path(__file__).parent.parent / "provenance" / "record" / "write.py"


@dataclass
class Told:
    """The makings of a writer's facts, from paths a test declared before its 'run' wrote."""

    folder: Path
    outputs: dict[str, Path]
    started_ns: int = field(default_factory=time.time_ns)
    notes: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.script = self.folder / "train.py"
        self.script.write_text("print('training')\n")
        self.baselines = {str(p): fingerprint(str(p)) for p in self.outputs.values()}
        self.stats = {sidecar_of(p): stat_key(sidecar_of(p)) for p in self.outputs.values()}

    def facts(self, **overrides: object) -> WriteFacts:
        first = str(next(iter(self.outputs.values()))) if self.outputs else None
        facts = RunFacts(
            entrypoint=str(self.script),
            root=self.folder,
            argv=self.argv,
            args={},
            inputs={},
            outputs={n: Declared((str(p),), many=False) for n, p in self.outputs.items()},
            baselines=self.baselines,
            secrets=SecretMatcher(),
            started_ns=self.started_ns,
        )
        told = WriteFacts(
            facts=facts,
            outcome=Outcome(SUCCEEDED, 0),
            warn=self.notes.append,
            first_output=first,
            sidecar_stats=self.stats,
        )
        return replace(told, **overrides)

    def write(self, **overrides: object) -> RecordWriter:
        writer = RecordWriter(self.facts(**overrides))
        try:
            writer.write()
        finally:
            writer.facts.close()
        return writer


def declared(tmp_path: Path, *names: str) -> Told:
    return Told(tmp_path, {name: tmp_path / name for name in names})


class TestAlone:
    def test_the_writer_does_not_import_the_run(self):
        imported = {
            node.module
            for node in ast.walk(ast.parse(WRITE_MODULE.read_text("utf-8")))
            if isinstance(node, ast.ImportFrom) and node.module
        }
        assert "provenance.run" not in imported
        code = "import sys, provenance.record.write; print('provenance.run' in sys.modules)"
        env = {**os.environ, "PYTHONPATH": str(WRITE_MODULE.parent.parent.parent)}
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        assert proc.stdout.strip() == "False"

    def test_facts_that_do_not_say_when_the_run_started_are_refused(self, tmp_path):
        told = declared(tmp_path, "model.bin")
        facts = told.facts()
        facts.facts.started_ns = None
        with pytest.raises(ValueError, match="when it started"):
            RecordWriter(facts)


class TestPlacement:
    def test_the_record_goes_beside_the_first_output(self, tmp_path):
        told = declared(tmp_path, "model.bin", "log.txt")
        (tmp_path / "model.bin").write_bytes(b"weights")
        writer = told.write(fields={"rows": 3})
        record = sidecar_of(tmp_path / "model.bin")
        document = load_sidecar(record)
        assert document["rows"] == 3
        block = document["run_provenance"]
        assert block["outputs"]["model.bin"]["written_by_run"] is True
        assert block["outputs"]["log.txt"]["exists"] is False
        assert (block["outcome"]["status"], block["outcome"]["exit_code"]) == ("succeeded", 0)
        assert writer.written == (record, sidecar_bytes(record))
        assert writer.outcome.status == SUCCEEDED
        assert writer.flipped is None
        assert not sidecar_of(tmp_path / "log.txt").exists()
        assert told.notes == []

    def test_a_failed_run_that_wrote_nothing_goes_beside_a_good_record(self, tmp_path):
        out = tmp_path / "model.bin"
        earlier = declared(tmp_path, "model.bin")
        out.write_bytes(b"good weights")
        earlier.write()
        good = sidecar_bytes(sidecar_of(out))
        later = declared(tmp_path, "model.bin")
        writer = later.write(outcome=Outcome(FAILED, 1))
        failed = tmp_path / "model.bin.manifest.failed.json"
        assert sidecar_bytes(sidecar_of(out)) == good
        block = load_sidecar(failed)["run_provenance"]
        assert block["outcome"]["status"] == "failed"
        assert block["outputs"]["model.bin"]["written_by_run"] is False
        assert writer.written is not None
        assert writer.written[0] == failed
        assert any("kept the earlier sidecar" in note for note in later.notes)

    def test_a_failed_run_that_wrote_its_output_keeps_the_good_record_as_previous(self, tmp_path):
        out = tmp_path / "model.bin"
        earlier = declared(tmp_path, "model.bin")
        out.write_bytes(b"good weights")
        earlier.write()
        good = sidecar_bytes(sidecar_of(out))
        later = declared(tmp_path, "model.bin")
        out.write_bytes(b"half written")
        later.write(outcome=Outcome(FAILED, 1))
        assert load_sidecar(sidecar_of(out))["run_provenance"]["outcome"]["status"] == "failed"
        assert sidecar_bytes(tmp_path / "model.bin.manifest.previous.json") == good

    def test_the_script_s_own_json_gets_the_block_merged_in(self, tmp_path):
        manifest = tmp_path / "manifest.json"
        told = declared(tmp_path, "model.bin")
        (tmp_path / "model.bin").write_bytes(b"weights")
        manifest.write_text(json.dumps({"rows": 7, "note": "the script's"}))
        told.write(manifest_out=str(manifest), fields={"rows": 1, "seed": 5})
        document = json.loads(manifest.read_text("utf-8"))
        assert document["rows"] == 7, "the script's own value stays"
        assert document["note"] == "the script's"
        assert document["seed"] == 5, "a recorded field it lacks is added"
        assert "schema" not in document
        assert document["run_provenance"]["outputs"]["model.bin"]["written_by_run"] is True
        assert not sidecar_of(manifest).exists()

    @pytest.mark.parametrize(
        ("content", "why"),
        [
            ('{"run_provenance": {"theirs": true}}', "holds a run_provenance of its own"),
            ("not json at all", "is not a JSON object this run wrote"),
        ],
    )
    def test_a_manifest_the_writer_may_not_take_is_left_and_the_record_goes_beside(
        self, tmp_path, content, why
    ):
        manifest = tmp_path / "manifest.json"
        told = declared(tmp_path, "model.bin")
        (tmp_path / "model.bin").write_bytes(b"weights")
        manifest.write_text(content)
        told.write(manifest_out=str(manifest))
        assert manifest.read_text("utf-8") == content
        block = load_sidecar(sidecar_of(manifest))["run_provenance"]
        assert block["outputs"]["model.bin"]["written_by_run"] is True
        assert any(why in note for note in told.notes)

    def test_secrets_are_hidden_from_the_record_and_from_the_notes(self, tmp_path):
        told = declared(tmp_path, "model.bin")
        told.argv = ["--api-key", "sk-live-0123456789abcdef"]
        (tmp_path / "model.bin").write_bytes(b"weights")
        told.write(fields={"password": "hunter2-hunter2"})
        text = sidecar_of(tmp_path / "model.bin").read_text("utf-8")
        assert "sk-live-0123456789abcdef" not in text
        assert "hunter2-hunter2" not in text
        document = json.loads(text)
        assert document["password"] == REDACTED
        assert document["run_provenance"]["argv"] == ["--api-key", REDACTED]


class TestRunningRecord:
    def test_start_leaves_a_running_record_that_the_final_write_removes(self, tmp_path):
        told = declared(tmp_path, "model.bin")
        starter = RecordWriter(told.facts())
        starter.start()
        assert starter.running is not None
        running = starter.running.path
        assert running.name.startswith("model.bin.manifest.running.")
        status = json.loads(running.read_text("utf-8"))["run_provenance"]["outcome"]["status"]
        assert status == "running"
        (tmp_path / "model.bin").write_bytes(b"weights")
        try:
            told.write(running=starter.running)
        finally:
            starter.running.release()
        assert not running.exists()
        assert sidecar_of(tmp_path / "model.bin").exists()


class TestConcurrentWriters:
    def test_a_record_another_run_wrote_meanwhile_marks_the_shared_output(self, tmp_path):
        out = tmp_path / "model.bin"
        mine = declared(tmp_path, "model.bin")  # this run starts: its stats are taken
        other = declared(tmp_path, "model.bin")
        out.write_bytes(b"the other run's weights")
        other.write()
        theirs = sidecar_bytes(sidecar_of(out))
        out.write_bytes(b"my weights")
        mine.write(outcome=Outcome(FAILED, 1))
        entry = load_sidecar(sidecar_of(out))["run_provenance"]["outputs"]["model.bin"]
        assert entry["concurrent_writers"] is True
        assert sidecar_bytes(tmp_path / "model.bin.manifest.previous.json") == theirs
        assert any("another run wrote model.bin while this one ran" in n for n in mine.notes)

    def test_a_live_running_record_of_another_run_marks_the_shared_output(self, tmp_path):
        out = tmp_path / "model.bin"
        other = declared(tmp_path, "model.bin")
        still = RecordWriter(other.facts())
        still.start()
        assert still.running is not None
        try:
            mine = declared(tmp_path, "model.bin")
            out.write_bytes(b"whose weights?")
            mine.write()
        finally:
            still.running.release()
        entry = load_sidecar(sidecar_of(out))["run_provenance"]["outputs"]["model.bin"]
        assert entry["concurrent_writers"] is True

    def test_a_run_alone_is_not_marked(self, tmp_path):
        out = tmp_path / "model.bin"
        mine = declared(tmp_path, "model.bin")
        out.write_bytes(b"weights")
        mine.write()
        entry = load_sidecar(sidecar_of(out))["run_provenance"]["outputs"]["model.bin"]
        assert "concurrent_writers" not in entry
        assert mine.notes == []


class TestEmbedding:
    def test_the_block_goes_into_a_json_output_the_run_wrote(self, tmp_path):
        told = declared(tmp_path, "model.json", "log.txt")
        model = tmp_path / "model.json"
        model.write_text(json.dumps({"weights": [1, 2, 3]}))
        told.write(embed_into="model.json")
        document = json.loads(model.read_text("utf-8"))
        assert document["weights"] == [1, 2, 3]
        embedded = document["run_provenance"]
        assert "blake3" not in embedded["outputs"]["model.json"], "it cannot hold its own digest"
        sidecar = load_sidecar(sidecar_of(model))["run_provenance"]
        assert sidecar["outputs"]["model.json"]["blake3"], "the sidecar has the final digest"

    def test_an_output_that_is_not_json_is_left_alone(self, tmp_path):
        told = declared(tmp_path, "model.bin")
        model = tmp_path / "model.bin"
        model.write_bytes(b"\x00weights")
        told.write(embed_into="model.bin")
        assert model.read_bytes() == b"\x00weights"
        assert any("does not hold a JSON object" in note for note in told.notes)
        assert sidecar_of(model).exists()

    def test_an_output_the_run_did_not_write_is_left_alone(self, tmp_path):
        model = tmp_path / "model.json"
        model.write_text("{}")
        told = declared(tmp_path, "model.json")
        told.write(embed_into="model.json")
        assert model.read_text("utf-8") == "{}"

    def test_a_name_that_is_no_output_is_told(self, tmp_path):
        told = declared(tmp_path, "model.json")
        (tmp_path / "model.json").write_text("{}")
        told.write(embed_into="weights")
        assert any("embed_into='weights' names no output" in note for note in told.notes)

    def test_the_block_goes_into_each_of_several_json_outputs(self, tmp_path):
        told = declared(tmp_path, "model.json", "metrics.json")
        model, metrics = tmp_path / "model.json", tmp_path / "metrics.json"
        model.write_text(json.dumps({"weights": [1]}))
        metrics.write_text(json.dumps({"plcc": 0.9}))
        told.write(embed_into=("model.json", "metrics.json"))
        blocks = [json.loads(p.read_text("utf-8"))["run_provenance"] for p in (model, metrics)]
        assert blocks[0] == blocks[1]
        for name in ("model.json", "metrics.json"):  # neither copy can hold a host's digest
            assert blocks[0]["outputs"][name]["embedded_here"] is True
            assert "blake3" not in blocks[0]["outputs"][name]
        sidecar = load_sidecar(sidecar_of(model))["run_provenance"]
        assert sidecar["outputs"]["metrics.json"]["blake3"], "the sidecar has the final digests"
        assert json.loads(metrics.read_text("utf-8"))["plcc"] == 0.9

    def test_of_several_hosts_only_those_the_run_wrote_get_the_block(self, tmp_path):
        model = tmp_path / "model.json"
        model.write_text("{}")
        told = declared(tmp_path, "model.json", "metrics.json")
        (tmp_path / "metrics.json").write_text("{}")
        told.write(embed_into=("model.json", "metrics.json"))
        assert model.read_text("utf-8") == "{}"
        block = json.loads((tmp_path / "metrics.json").read_text("utf-8"))["run_provenance"]
        assert "embedded_here" not in block["outputs"]["model.json"]

    def test_when_the_sidecar_fails_every_host_gets_its_bytes_back(self, tmp_path):
        told = declared(tmp_path, "model.json", "metrics.json")
        model, metrics = tmp_path / "model.json", tmp_path / "metrics.json"
        model.write_text('{"weights": [1]}')
        metrics.write_text('{"plcc": 0.9}')
        sidecar_of(model).mkdir()
        told.write(embed_into=("model.json", "metrics.json"))
        assert model.read_text("utf-8") == '{"weights": [1]}'
        assert metrics.read_text("utf-8") == '{"plcc": 0.9}'

    def test_when_the_sidecar_cannot_be_written_the_block_is_taken_back_out(self, tmp_path):
        told = declared(tmp_path, "model.json")
        model = tmp_path / "model.json"
        model.write_text('{"weights": [1]}')
        sidecar_of(model).mkdir()  # nothing can be renamed onto it
        writer = told.write(embed_into="model.json")
        assert model.read_text("utf-8") == '{"weights": [1]}'
        assert isinstance(writer.flipped, SidecarWriteError)
        assert writer.outcome.status == FAILED, "a run without its evidence did not succeed"
        assert writer.written is None
        assert any("could not write the sidecar" in note for note in told.notes)


class TestRanks:
    def test_two_ranks_leave_one_record_of_the_job(self, tmp_path, monkeypatch):
        monkeypatch.setenv("PROVENANCE_RANK_WAIT_S", "0")  # no rank waits for the other here
        out = tmp_path / "model.bin"
        ranks = [declared(tmp_path, "model.bin") for _ in range(2)]
        out.write_bytes(b"weights")
        writers = []
        for rank, told in enumerate(ranks):
            launch = Launch("torchrun", rank, 2, ("job-1",))
            writers.append(told.write(launch=launch))
        document = load_sidecar(sidecar_of(out))
        launch = document["run_provenance"]["launch"]
        assert launch["world_size"] == 2
        assert [(r["rank"], r["status"]) for r in launch["ranks"]] == [
            (0, "succeeded"),
            (1, "succeeded"),
        ]
        assert document["run_provenance"]["outcome"]["status"] == "succeeded"
        assert writers[1].written is not None
        assert writers[1].written[0] == sidecar_of(out)
        assert list(parts_of(tmp_path / "model.bin.manifest.ranks")) == []
