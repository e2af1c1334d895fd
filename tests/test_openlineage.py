"""Live OpenLineage events: real subprocesses of decorated fakes, sending through the official
client's file and http transports to a file and to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from provenance.emit import openlineage
from tests.conftest import FAKES, ROOT, sidecar_bytes, sidecar_of

SCHEMAS = ROOT / "docs" / "schemas"
WARNING = "provenance: OpenLineage:"


def environment(home, wait=30, **given):
    """This process's environment with no OpenLineage configuration but what is ``given``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OPENLINEAGE")}
    clean.update(PYTHONPATH=str(ROOT), HOME=str(home), PROVENANCE_OPENLINEAGE_WAIT=str(wait))
    return {**clean, **given}


def run(script, *argv, env=None, cwd, home, wait=30, timeout=60):
    """Run a fake with only the OpenLineage configuration given in ``env``."""
    return subprocess.run(
        [sys.executable, str(FAKES / f"{script}.py"), *map(str, argv)],
        cwd=cwd,
        env=environment(home, wait, **(env or {})),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def warnings_of(proc):
    return warnings_of_text(proc.stderr)


def warnings_of_text(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(WARNING)]


def check_with_client_models(event):
    """Rebuild ``event`` with openlineage-python's own models; they must say the same."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import error_message_run
    from openlineage.client.serde import Serde

    rebuilt = RunEvent(
        eventType=RunState(event["eventType"]),
        eventTime=event["eventTime"],
        run=Run(runId=event["run"]["runId"]),
        job=Job(namespace=event["job"]["namespace"], name=event["job"]["name"]),
        producer=event["producer"],
        inputs=[InputDataset(namespace=d["namespace"], name=d["name"]) for d in event["inputs"]],
        outputs=[OutputDataset(namespace=d["namespace"], name=d["name"]) for d in event["outputs"]],
    )
    bare = Serde.to_dict(rebuilt)
    assert bare["run"]["runId"] == event["run"]["runId"]
    assert {k: bare[k] for k in ("eventType", "eventTime", "producer")} == {
        k: event[k] for k in ("eventType", "eventTime", "producer")
    }
    assert [(d["namespace"], d["name"]) for d in bare.get("outputs", [])] == [
        (d["namespace"], d["name"]) for d in event["outputs"]
    ]
    if "errorMessage" in event["run"]["facets"]:
        given = event["run"]["facets"]["errorMessage"]
        error_message_run.ErrorMessageRunFacet(
            message=given["message"], programmingLanguage=given["programmingLanguage"]
        )
    for dataset in (*event["inputs"], *event["outputs"]):
        if "provenance_digest" in dataset["facets"]:
            check_facet("ProvenanceDigestDatasetFacet", dataset["facets"]["provenance_digest"])
    if "provenance_gates" in event["run"]["facets"]:
        check_facet("ProvenanceGatesRunFacet", event["run"]["facets"]["provenance_gates"])


def check_facet(name, facet):
    schema = json.loads((SCHEMAS / f"{name}.json").read_text("utf-8"))
    assert facet["_schemaURL"] == f"{schema['$id']}#/$defs/{name}"
    jsonschema.Draft202012Validator(schema["$defs"][name]).validate(facet)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")  # no ~/.openlineage/openlineage.yml of the machine's


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "features.csv"
    path.write_text("adm2,motion2\n0.9,1.0\n")
    return path


class Receiver(http.server.BaseHTTPRequestHandler):
    """An OpenLineage HTTP endpoint: keeps every event it is sent."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append((self.path, json.loads(body)))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


class TestFileTransport:
    """OPENLINEAGE_CONFIG names an openlineage.yml with the client's file transport."""

    @pytest.fixture(scope="class")
    @classmethod
    def runs(cls, tmp_path_factory, home, features):
        work = tmp_path_factory.mktemp("file-transport")
        events = work / "events.jsonl"
        config = work / "lineage.yml"
        config.write_text(
            f"transport:\n  type: file\n  log_file_path: {events}\n  append: true\n", "utf-8"
        )
        model = work / "model.json"
        argv = ("--features", features, "--out-json", model, "--plcc", "0.5")
        off = run("trainer", *argv, cwd=work, home=home)
        quiet = sidecar_bytes(sidecar_of(model))
        on = run("trainer", *argv, env={"OPENLINEAGE_CONFIG": str(config)}, cwd=work, home=home)
        lines = events.read_text("utf-8").splitlines()
        return off, on, quiet, sidecar_bytes(sidecar_of(model)), [json.loads(x) for x in lines]

    def test_the_run_is_unchanged(self, runs):
        off, on, quiet, loud, _ = runs
        assert (off.returncode, on.returncode) == (1, 1)  # the fake's gate fails
        assert warnings_of(on) == [], on.stderr
        assert loud == quiet  # the sidecar is the same bytes with emission on or off

    def test_start_then_fail_with_digests_and_gates(self, runs, features):
        *_, events = runs
        assert [e["eventType"] for e in events] == ["START", "FAIL"]
        start, end = events
        assert start["run"]["runId"] == end["run"]["runId"]
        assert start["job"] == {**end["job"], "facets": start["job"]["facets"]}
        assert (end["job"]["namespace"], end["job"]["name"]) == (
            "provenance",
            "tests/fakes/trainer.py",
        )
        assert start["eventTime"] <= end["eventTime"]
        digest = end["inputs"][0]["facets"]["provenance_digest"]
        assert end["inputs"][0]["name"] == str(features)
        assert digest["size_bytes"] == features.stat().st_size
        gates = end["run"]["facets"]["provenance_gates"]["gates"]
        assert gates == {"plcc": {"passed": False, "threshold": 0.75, "value": 0.5}}
        assert end["run"]["facets"]["errorMessage"]["message"] == (
            "failed with exit code 1; failed gates: plcc"
        )
        for event in events:
            check_with_client_models(event)

    def test_the_digests_are_the_records(self, runs):
        _, _, _, loud, events = runs
        block = json.loads(loud)["run_provenance"]
        facet = events[1]["inputs"][0]["facets"]["provenance_digest"]
        entry = block["inputs"]["features"]
        assert (facet["blake3"], facet["sha256"]) == (entry["blake3"], entry["sha256"])


class TestHttpTransport:
    """OPENLINEAGE_URL points the client's http transport at a receiver on 127.0.0.1."""

    @pytest.fixture(scope="class")
    @classmethod
    def ended(cls, tmp_path_factory, home, receiver):
        work = tmp_path_factory.mktemp("http-transport")
        url = f"http://127.0.0.1:{receiver.server_address[1]}"
        env = {"OPENLINEAGE_URL": url, "OPENLINEAGE_NAMESPACE": "team-vmaf"}
        found = {}
        for mode in ("return-none", "raise", "interrupt", "--help"):
            del receiver.received[:]
            out = work / f"{mode}.txt"
            argv = ("--help",) if mode == "--help" else ("--mode", mode, "--out", out, "--write")
            proc = run("outcomes", *argv, env=env, cwd=work, home=home)
            found[mode] = (proc, list(receiver.received))
        return found

    @pytest.mark.parametrize(
        ("mode", "code", "ends"),
        [
            ("return-none", 0, "COMPLETE"),
            ("raise", 1, "FAIL"),
            ("interrupt", -signal.SIGINT, "ABORT"),
            ("--help", 0, "ABORT"),  # nothing was run: the START must not stay open
        ],
    )
    def test_outcome_maps_to_the_end_event(self, ended, mode, code, ends):
        proc, received = ended[mode]
        assert proc.returncode == code, proc.stderr
        assert warnings_of(proc) == []
        assert {path for path, _ in received} == {"/api/v1/lineage"}
        events = [event for _, event in received]
        assert [e["eventType"] for e in events] == ["START", ends]
        assert {e["job"]["namespace"] for e in events} == {"team-vmaf"}
        assert len({e["run"]["runId"] for e in events}) == 1
        for event in events:
            check_with_client_models(event)

    def test_a_failure_says_why(self, ended):
        _, received = ended["raise"]
        facet = received[1][1]["run"]["facets"]["errorMessage"]
        assert facet["message"] == "ValueError: features table has no rows"

    def test_sigterm_aborts(self, tmp_path, home, receiver):
        del receiver.received[:]
        ready = tmp_path / "ready"
        env = environment(home, OPENLINEAGE_URL=f"http://127.0.0.1:{receiver.server_address[1]}")
        script = FAKES / "outcomes.py"
        argv = ["--mode", "wait", "--out", tmp_path / "o.txt", "--ready", ready]
        with subprocess.Popen([sys.executable, script, *map(str, argv)], env=env) as proc:
            while not ready.exists() and proc.poll() is None:
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == -signal.SIGTERM
        assert [e["eventType"] for _, e in receiver.received] == ["START", "ABORT"]


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class TestDeadServer:
    """A lineage server that is down or hangs neither fails the run nor holds it."""

    def test_closed_port(self, tmp_path, home):
        config = tmp_path / "lineage.yml"
        url = f"http://127.0.0.1:{closed_port()}"
        # No retries, so the refusal itself is what the run hears, well within the wait.
        config.write_text(f"transport:\n  type: http\n  url: {url}\n  retry:\n    total: 0\n")
        out = tmp_path / "o.txt"
        proc = run(
            "outcomes", "--mode", "return-none", "--out", out, "--write",
            env={"OPENLINEAGE_CONFIG": str(config)}, cwd=tmp_path, home=home,
        )  # fmt: skip
        assert proc.returncode == 0
        assert sidecar_bytes(sidecar_of(out))
        (warning,) = warnings_of(proc)
        assert warning.startswith(f"{WARNING} could not send the run's events: ConnectionError: ")
        assert proc.stderr.count("\n") == 1  # nothing else: no traceback, no client log

    def test_a_config_file_that_is_not_there(self, tmp_path, home):
        out = tmp_path / "o.txt"
        missing = tmp_path / "nowhere.yml"
        proc = run(
            "outcomes", "--mode", "return-none", "--out", out, "--write",
            env={"OPENLINEAGE_CONFIG": str(missing)}, cwd=tmp_path, home=home,
        )  # fmt: skip
        assert proc.returncode == 0
        assert sidecar_bytes(sidecar_of(out))
        assert proc.stderr.splitlines() == [
            f"{WARNING} OPENLINEAGE_CONFIG={missing} is not a file; the client uses its console "
            "transport; the sidecar is still the record"
        ]

    def test_a_config_file_that_is_not_yaml(self, tmp_path, home):
        (tmp_path / "openlineage.yml").write_text("transport: [type: http\n")
        out = tmp_path / "o.txt"
        proc = run(
            "outcomes", "--mode", "return-none", "--out", out, "--write",
            cwd=tmp_path, home=home,
        )  # fmt: skip
        assert proc.returncode == 0
        assert proc.stderr.splitlines() == [
            f"{WARNING} the client found no transport in its configuration (an unreadable "
            "openlineage.yml?) and only logs the events; the sidecar is still the record"
        ]

    def test_the_warning_hides_secrets(self, tmp_path, home):
        out = tmp_path / "o.txt"
        url = "http://bot:s3cr3tpass@127.0.0.1:99999"  # requests names this URL in its error
        proc = run(
            "outcomes", "--mode", "return-none", "--out", out, "--write",
            env={"OPENLINEAGE_URL": url}, cwd=tmp_path, home=home,
        )  # fmt: skip
        assert proc.returncode == 0
        (warning,) = warnings_of(proc)
        assert "127.0.0.1:99999" in warning
        assert "s3cr3tpass" not in proc.stderr

    def test_hanging_receiver(self, tmp_path, home):
        with socket.socket() as hung:  # accepts connections (the backlog) and never answers
            hung.bind(("127.0.0.1", 0))
            hung.listen(8)
            config = tmp_path / "openlineage.yml"
            url = f"http://127.0.0.1:{hung.getsockname()[1]}"
            config.write_text(f"transport:\n  type: http\n  url: {url}\n  timeout: 600\n")
            out = tmp_path / "o.txt"
            proc = run(
                "outcomes",
                "--mode",
                "return-int",
                "--code",
                "4",
                "--out",
                out,
                "--write",
                cwd=tmp_path,
                home=home,
                wait=1,
                timeout=30,
            )  # fmt: skip  -- openlineage.yml in the working folder, as the client looks for it
        assert proc.returncode == 4
        assert json.loads(sidecar_bytes(sidecar_of(out)))["run_provenance"]["outcome"]["exit_code"]
        assert warnings_of(proc) == [
            "provenance: OpenLineage: the run's events were not sent within 1 s "
            "(PROVENANCE_OPENLINEAGE_WAIT); the sidecar is still the record"
        ]


def run_in_process(folder, home, *, block_client=False, **env):
    """Run the outcomes fake's main in a fresh interpreter and list the openlineage modules it
    imported; ``block_client`` makes importing the client fail as when it is not installed."""
    script = folder / "check.py"
    script.write_text(
        "import sys\n"
        + ("sys.modules['openlineage'] = None\n" if block_client else "")
        + f"sys.path.insert(0, {str(FAKES)!r})\n"
        "import outcomes\n"
        f"outcomes.main(['--mode', 'return-none', '--write', '--out', {str(folder / 'o')!r}])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'openlineage'))\n"
    )
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=folder,
        env=environment(home, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_unconfigured_runs_never_import_the_client(tmp_path, home):
    proc = run_in_process(tmp_path, home)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert (tmp_path / "o.manifest.json").is_file()


def test_configured_without_the_client_warns_once(tmp_path, home):
    proc = run_in_process(tmp_path, home, block_client=True, OPENLINEAGE_URL="http://127.0.0.1:9")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o.manifest.json").is_file()
    (warning,) = warnings_of(proc)
    assert warning.startswith("provenance: OpenLineage: could not send the run's events: ")
    assert "Error: " in warning
    assert "openlineage" in warning
    assert warning.endswith("; the sidecar is still the record")
    assert proc.stderr.count("\n") == 1


def launch_ranks(
    tmp_path, home, *argv, late: str = "", ranks: int = 2, **extra: str
) -> tuple[list[int], list[str]]:
    """Torchrun-style ranks of the fake, sending events to a file; their exits and stderr."""
    config = tmp_path / "lineage.yml"
    events = tmp_path / "events.jsonl"
    config.write_text(f"transport:\n  type: file\n  log_file_path: {events}\n  append: true\n")
    command = [sys.executable, str(FAKES / "ranked.py"), "--out", str(tmp_path / "model.json")]
    procs = [
        subprocess.Popen(
            [*command, *argv],
            env=environment(
                home,
                OPENLINEAGE_CONFIG=str(config),
                RANK=str(rank),
                WORLD_SIZE=str(ranks),
                PROVENANCE_RANK_WAIT_S="120",  # a rank started late is still waited for
                RANKED_LATE=late,
                **extra,
            ),
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(ranks)
    ]
    stderr = [p.communicate(timeout=120)[1] for p in procs]
    return [p.returncode for p in procs], stderr


def test_rank_zero_writing_the_jobs_record_ends_with_the_jobs_outcome(tmp_path, home):
    codes, stderr = launch_ranks(tmp_path, home, "--fail-rank", "1", late="0:1.5")
    assert codes == [0, 1], stderr
    sent = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["eventType"] for e in sent] == ["START", "FAIL"]  # rank 1 failed the job
    assert "rank 1 ran out of memory" in sent[1]["run"]["facets"]["errorMessage"]["message"]


def sent_events(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]


def test_rank_zero_ends_with_the_jobs_outcome_when_another_rank_writes_the_record(tmp_path, home):
    # Rank 2 waits for the others; rank 0 reports while rank 1 still runs, then rank 1 fails
    # and writes the job's record: rank 0's end event must say the job failed, and why.
    codes, stderr = launch_ranks(tmp_path, home, "--fail-rank", "1", late="0:0.5,1:2", ranks=3)
    assert codes == [0, 1, 0], stderr
    sent = sent_events(tmp_path)
    assert [e["eventType"] for e in sent] == ["START", "FAIL"]
    assert "rank 1 ran out of memory" in sent[1]["run"]["facets"]["errorMessage"]["message"]
    assert not any(WARNING in text for text in stderr), stderr


def test_rank_zero_says_so_when_the_jobs_record_comes_too_late(tmp_path, home):
    codes, stderr = launch_ranks(
        tmp_path, home, late="0:0.5,1:4", ranks=3, PROVENANCE_OPENLINEAGE_WAIT="1"
    )
    assert codes == [0, 0, 0], stderr
    sent = sent_events(tmp_path)
    assert [e["eventType"] for e in sent] == ["START", "COMPLETE"]  # rank 0's part, sent
    (warning,) = warnings_of_text(stderr[0])
    assert "the job's record was not written within 0.5 s" in warning
    assert "describes rank 0's part" in warning


def test_a_launch_of_ranks_is_one_run_sent_by_rank_zero(tmp_path, home):
    events = tmp_path / "events.jsonl"
    config = tmp_path / "lineage.yml"
    config.write_text(f"transport:\n  type: file\n  log_file_path: {events}\n  append: true\n")
    out = tmp_path / "model.json"
    command = [sys.executable, str(FAKES / "ranked.py"), "--out", str(out)]
    procs = [
        subprocess.Popen(
            command,
            env=environment(
                home,
                OPENLINEAGE_CONFIG=str(config),
                RANK=str(rank),
                WORLD_SIZE="2",
                PROVENANCE_RANK_WAIT_S="120",  # a rank started late is still waited for
            ),
            cwd=tmp_path,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    stderr = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], stderr
    assert not any(WARNING in text for text in stderr)
    sent = [json.loads(line) for line in events.read_text("utf-8").splitlines()]
    assert [e["eventType"] for e in sent] == ["START", "COMPLETE"]
    (output,) = sent[1]["outputs"]
    assert output["name"] == str(out)
    assert output["facets"]["provenance_digest"]["size_bytes"] == out.stat().st_size


def test_the_facet_schemas_are_where_the_docs_site_puts_them():
    """_schemaURL names the built site's schemas/, and the files behind it are in docs/."""
    site_url = next(
        line.split(":", 1)[1].strip()
        for line in (ROOT / "mkdocs.yml").read_text("utf-8").splitlines()
        if line.startswith("site_url:")
    )
    assert site_url == openlineage.DOCS_URL
    for url in (openlineage.DIGEST_FACET_SCHEMA, openlineage.GATES_FACET_SCHEMA):
        address, pointer = url.split("#", 1)
        assert address.startswith(site_url)
        schema = json.loads((ROOT / "docs" / address[len(site_url) :]).read_text("utf-8"))
        assert schema["$id"] == address
        assert pointer.rsplit("/", 1)[-1] in schema["$defs"]


def test_rank_zero_finds_the_jobs_record_kept_beside_an_earlier_one(tmp_path, home):
    # An earlier job wrote the model's record; this one writes no output and succeeds, so its
    # record goes beside the earlier one (model.json.manifest.succeeded.json).
    assert launch_ranks(tmp_path, home)[0] == [0, 0]
    codes, stderr = launch_ranks(
        tmp_path, home, "--save-rank", "5", late="1:0.5", PROVENANCE_OPENLINEAGE_WAIT="6"
    )
    assert codes == [0, 0], stderr
    assert (tmp_path / "model.json.manifest.succeeded.json").is_file()
    assert warnings_of_text(stderr[0]) == []  # it was written: rank 0 describes the job
    assert sent_events(tmp_path)[-1]["eventType"] == "COMPLETE"


def test_rank_zero_never_takes_an_earlier_jobs_record_for_this_ones(tmp_path, home):
    # An earlier job's record, touched since (a copy back, a checkout): newer than any report.
    assert launch_ranks(tmp_path, home)[0] == [0, 0]
    earlier = tmp_path / "model.json.manifest.json"
    later = time.time_ns() + 3600 * 10**9
    os.utime(earlier, ns=(later, later))
    # This job writes no output and fails: its record goes beside the earlier one.
    codes, stderr = launch_ranks(
        tmp_path,
        home,
        "--save-rank",
        "5",
        "--fail-rank",
        "1",
        late="1:0.5",
        PROVENANCE_OPENLINEAGE_WAIT="6",
    )
    assert codes == [0, 1], stderr
    assert (tmp_path / "model.json.manifest.failed.json").is_file()
    end = sent_events(tmp_path)[-1]
    assert end["eventType"] == "FAIL"  # this job's outcome, not the earlier one's COMPLETE
    assert "rank 1 ran out of memory" in end["run"]["facets"]["errorMessage"]["message"]
