"""The provenance command's show, verify, diff, lineage, replay and export, as subprocesses."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import hypothesis
import pytest
from hypothesis import strategies as st

from provenance.record.sidecar import running_record_path, side_record_path, sidecar_path_for
from tests.conftest import ROOT, block_of, load_sidecar, run_fake, run_script, sidecar_of
from tests.handmade import (
    HEX,
    cli_in,
    copy_fake,
    digests,
    document,
    file_entry,
    project,
    run_cli,
    run_in,
    running_document,
    write,
)
from tests.test_openlineage import check_with_client_models

SAMPLE_SCORES = ROOT / "ai/sample/scores.csv"


def cli(*argv, timeout=60):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "provenance", *map(str, argv)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def summary(tmp_path):
    """A fresh run of the summary script on a private copy of its input."""
    scores = tmp_path / "scores.csv"
    shutil.copy(SAMPLE_SCORES, scores)
    out = tmp_path / "summary.json"
    proc = run_script("summarize_scores", scores, "--out", out)
    assert proc.returncode == 0, proc.stderr
    return scores, out


# -- show --------------------------------------------------------------------------------------


def test_show_summarises_the_chug_run_with_both_identities(demo):
    proc = cli("show", demo / "models/chug_hdr_mos_head.npz")
    assert proc.returncode == 0, proc.stderr
    assert "entrypoint      ai/scripts/train_chug_hdr_mos_head.py" in proc.stdout
    assert "shared trainer  ai/scripts/train_konvid_mos_head.py" in proc.stdout
    assert "-m ai.scripts.train_chug_hdr_mos_head --table" in proc.stdout
    assert "gate mos_head: pass" in proc.stdout
    info = json.loads(cli("show", "--json", demo / "models/chug_hdr_mos_head.npz").stdout)
    block = load_sidecar(sidecar_of(demo / "models/chug_hdr_mos_head.npz"))["run_provenance"]
    assert info["shared_trainer"] == block["shared_trainer"]
    assert info["inputs"]["table"] == block["inputs"]["table"]
    assert info["fields"]["model_id"] == "chug_hdr_mos_head"
    assert info["outcome"]["status"] == "succeeded"


def test_show_reads_a_block_embedded_in_an_artifact_without_a_sidecar(demo):
    promote = demo / "reports/gate/PROMOTE.json"
    assert not sidecar_of(promote).exists()
    proc = cli("show", promote)
    assert proc.returncode == 0, proc.stderr
    assert "(the block embedded in the artifact)" in proc.stdout
    assert "validate_ensemble_seeds.py" in proc.stdout


def test_show_can_fail_on_a_failed_outcome(tmp_path):
    out = tmp_path / "summary.json"
    assert (
        run_script("summarize_scores", SAMPLE_SCORES, "--out", out, "--min-std", 9).returncode == 1
    )
    assert cli("show", out).returncode == 0
    checked = cli("show", "--check-outcome", out)
    assert checked.returncode == 1
    assert "failed (exit 1)" in checked.stdout
    assert "gate mos_spread: FAIL" in checked.stdout


def test_show_of_nothing_is_exit_2(tmp_path):
    proc = cli("show", tmp_path / "nothing.bin")
    assert proc.returncode == 2
    assert "neither it nor nothing.bin.manifest.json exists" in proc.stderr


# -- verify ------------------------------------------------------------------------------------


def test_verify_passes_an_untouched_demo(demo):
    # The demo ran outside the project, so its paths are read only when asked.
    proc = cli(
        "verify",
        "--outside-root",
        demo / "models/konvid_mos_head.onnx",
        demo / "tables/combined.parquet",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 changed, 0 missing, 0 appeared, 0 skipped" in proc.stdout


def test_verify_reports_a_changed_input_and_a_missing_output(summary):
    scores, out = summary
    scores.write_text(scores.read_text().replace("4.", "3.", 1))
    proc = cli("verify", "--outside-root", out)
    assert proc.returncode == 1
    assert "changed   input  scores" in proc.stdout
    out.unlink()
    report = json.loads(cli("verify", "--json", "--outside-root", sidecar_of(out)).stdout)
    status = {c["name"]: c["status"] for c in report[0]["checks"] if c["group"] != "code"}
    assert status == {"scores": "changed", "report": "missing"}


def test_verify_notices_a_rewrite_that_keeps_size_and_mtime(summary):
    scores, out = summary
    before = os.stat(scores)
    data = bytearray(scores.read_bytes())
    data[-3] = ord("0") if data[-3] != ord("0") else ord("1")
    scores.write_bytes(bytes(data))
    os.utime(scores, ns=(before.st_atime_ns, before.st_mtime_ns))
    proc = cli("verify", "--outside-root", out)
    assert proc.returncode == 1
    assert "changed   input  scores" in proc.stdout


def hostile_record(tmp_path: Path, summary, entries: dict) -> Path:
    """A schema-valid record whose inputs are the given entries."""
    _, out = summary
    document = json.loads(sidecar_of(out).read_text())
    document["run_provenance"]["inputs"] = entries
    path = tmp_path / "hostile.bin.manifest.json"
    path.write_text(json.dumps(document))
    return path


def test_verify_never_opens_what_could_hang_it_and_says_what_it_skipped(tmp_path, summary):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    sparse = tmp_path / "huge.bin"
    with open(sparse, "wb") as handle:
        handle.truncate(3 * 1024**3)
    file_entry = {
        "exists": True,
        "kind": "file",
        "size_bytes": 10,
        "blake3": "0" * 64,
        "sha256": "0" * 64,
    }
    record = hostile_record(
        tmp_path,
        summary,
        {
            "fifo": {**file_entry, "path": str(fifo)},
            "device": {**file_entry, "path": "/dev/zero"},
            "huge": {**file_entry, "path": str(sparse), "size_bytes": 3 * 1024**3},
            "gone": {**file_entry, "path": str(tmp_path / "vanished")},
            "nul": {**file_entry, "path": "bad\u0000name"},
            "other": {"path": str(fifo), "exists": True, "kind": "other"},
            "unread": {
                "path": str(sparse),
                "exists": True,
                "kind": "file",
                "size_bytes": 1,
                "blake3": None,
                "sha256": None,
                "error": "PermissionError: denied",
            },
        },
    )
    proc = cli("verify", "--json", "--outside-root", "--max-bytes", 1024**3, record, timeout=30)
    assert proc.returncode == 1, proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)[0]["checks"] if c["group"] == "input"}
    assert checks["fifo"]["detail"] == "not a file or directory: never read"
    assert checks["device"]["detail"] == "not a file or directory: never read"
    assert checks["huge"]["detail"].startswith("larger than --max-bytes")
    assert checks["gone"]["status"] == "missing"
    assert checks["nul"]["detail"].startswith("unusable path")
    assert checks["other"]["status"] == "skipped"
    assert checks["unread"]["detail"] == "recorded without a digest (unreadable then)"
    assert {c["status"] for c in checks.values()} == {"skipped", "missing"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"schema": "provenance.manifest/v1"}', "not a valid provenance sidecar"),
        (b"\xff\xfe\x00", "not JSON"),
    ],
    ids=["malformed", "deeply-nested", "not-a-sidecar", "not-utf8"],
)
def test_verify_refuses_an_unreadable_record_without_crashing(tmp_path, content, message):
    record = tmp_path / "x.bin.manifest.json"
    record.write_bytes(content)
    proc = cli("verify", record, timeout=30)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_verify_does_not_hang_on_a_record_that_is_a_fifo(tmp_path):
    record = tmp_path / "x.bin.manifest.json"
    os.mkfifo(record)
    proc = cli("verify", record, timeout=30)
    assert proc.returncode == 2
    assert "not a regular file" in proc.stderr


def test_verify_keeps_going_past_an_unreadable_record(tmp_path, summary):
    _, out = summary
    proc = cli("verify", tmp_path / "missing.bin", out)
    assert proc.returncode == 2
    assert "0 changed, 0 missing" in proc.stdout


# -- diff --------------------------------------------------------------------------------------


def test_diff_of_two_seeds_names_what_differs(demo):
    a, b = demo / "models/konvid_seed0.npz", demo / "models/konvid_seed1.npz"
    proc = cli("diff", "--json", a, b)
    assert proc.returncode == 1
    found = {
        (d["section"], d["key"]): (d["a"], d["b"]) for d in json.loads(proc.stdout)["differences"]
    }
    assert found[("args", "seed")] == (0, 1)
    assert ("code", "entrypoint") not in found  # the same code
    assert ("inputs", "table") not in found  # the same table
    assert found[("fields", "mean_plcc")][0] != found[("fields", "mean_plcc")][1]
    assert cli("diff", a, a).stdout.endswith("no differences\n")
    assert cli("diff", a, a).returncode == 0


def test_diff_sees_code_and_outcome(tmp_path):
    features = tmp_path / "f.csv"
    features.write_text("adm2\n0.9\n")
    passing, failing = tmp_path / "a.json", tmp_path / "b.json"
    run_fake("trainer", "--features", features, "--out-json", passing)
    run_fake("chug_wrapper", "--features", features, "--out-json", failing, "--plcc", "0.5")
    proc = cli("diff", "--json", passing, failing)
    found = {(d["section"], d["key"]) for d in json.loads(proc.stdout)["differences"]}
    assert {
        ("code", "entrypoint"),
        ("code", "shared_trainer"),
        ("outcome", "status"),
        ("outcome", "exit_code"),
        ("gates", "plcc"),
    } <= found


# -- lineage -----------------------------------------------------------------------------------


def test_lineage_leads_from_the_onnx_model_to_the_corpus_shards(demo):
    proc = cli("lineage", "--search", demo, demo / "models/konvid_mos_head.onnx")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].endswith("<- ai/scripts/export_mos_head_onnx.py [succeeded]")
    for step in (
        "train_konvid_mos_head.py",
        "enrich_k150k_parquet_metadata.py",
        "extract_k150k_features.py",
        "aggregate_corpora.py",
    ):
        assert any(step in line for line in lines), step
    shard = next(line for line in lines if "sample/mos/konvid-150k.jsonl" in line)
    assert "generate_sample_data.py" in shard
    assert "part of" in shard


def test_lineage_matches_by_digest_not_by_path(demo, tmp_path):
    moved = tmp_path / "elsewhere.npz"
    shutil.copy(demo / "models/konvid_seed0.npz", moved)
    out = tmp_path / "m.onnx"
    assert run_script("export_mos_head_onnx", "--checkpoint", moved, "--out", out).returncode == 0
    tree = json.loads(cli("lineage", "--json", "--search", demo, "--search", tmp_path, out).stdout)
    [checkpoint] = tree["inputs"]
    assert checkpoint["link"] == "digest"
    assert checkpoint["produced_by"]["entrypoint"] == "ai/scripts/train_konvid_mos_head.py"
    moved.write_bytes(moved.read_bytes() + b"x")  # same path, other bytes: no longer that model
    assert run_script("export_mos_head_onnx", "--checkpoint", moved, "--out", out).returncode == 0
    tree = json.loads(cli("lineage", "--json", "--search", demo, "--search", tmp_path, out).stdout)
    assert tree["inputs"][0]["raw"] is True


def test_lineage_as_graphviz(demo):
    proc = cli("lineage", "--dot", "--search", demo, demo / "models/konvid_mos_head.onnx")
    assert proc.returncode == 0
    assert proc.stdout.startswith("digraph lineage {")
    assert '[shape=box, style=rounded, label="ai/scripts/aggregate_corpora.py' in proc.stdout
    assert proc.stdout.count("->") >= 10
    if shutil.which("dot"):
        subprocess.run(
            ["dot", "-Tsvg"], input=proc.stdout, text=True, check=True, capture_output=True
        )


# -- replay ------------------------------------------------------------------------------------


def test_replay_prints_the_command_from_the_root(summary):
    scores, out = summary
    proc = cli("replay", out)
    assert proc.returncode == 0
    assert proc.stdout.strip() == (
        f"cd {ROOT} && python -m ai.scripts.summarize_scores {scores} --out {out}"
    )
    fake = tmp = Path(out).parent / "t.tsv"
    run_fake("table_builder", scores, "--out", tmp)
    assert "python -m tests.fakes.table_builder" in cli("replay", fake).stdout


def test_replay_run_reproduces_then_shows_what_drifted(summary):
    scores, out = summary
    proc = cli("replay", "--run", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reproduced: no differences" in proc.stdout
    scores.write_text(scores.read_text() + "extra_clip.mp4,4.5\n")
    proc = cli("replay", "--run", "--json", out)
    assert proc.returncode == 1
    found = {(d["section"], d["key"]) for d in json.loads(proc.stdout)["differences"]}
    assert ("inputs", "scores") in found
    assert ("fields", "clips") in found


def test_replay_refuses_to_run_a_command_with_redacted_secrets(tmp_path):
    out = tmp_path / "o.txt"
    assert run_fake("secret_script", "--out", out, "--api-token", "s3cr3t").returncode == 0
    printed = cli("replay", out)
    assert "--api-token '<redacted>'" in printed.stdout
    assert "redacted values" in printed.stderr
    refused = cli("replay", "--run", out)
    assert refused.returncode == 2
    assert "s3cr3t" not in refused.stdout + refused.stderr


# -- export ------------------------------------------------------------------------------------


def test_export_slsa_is_a_valid_in_toto_statement(demo):
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    onnx = demo / "models/konvid_mos_head.onnx"
    proc = cli("export", "--format", "slsa", onnx)
    assert proc.returncode == 0, proc.stderr
    statement = json.loads(proc.stdout)
    parsed = json_format.ParseDict(statement, statement_pb2.Statement())
    Statement.copy_from_pb(parsed).validate()
    json_format.ParseDict(statement["predicate"], provenance_pb2.Provenance())
    subjects = {s["name"]: s["digest"] for s in statement["subject"]}
    assert subjects[str(onnx)]["sha256"] == hashlib.sha256(onnx.read_bytes()).hexdigest()
    assert "blake3" in subjects[str(onnx)]
    deps = {d["name"]: d for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert deps["ai/scripts/export_mos_head_onnx.py"]["annotations"]["role"] == "entrypoint"
    assert deps[str(demo / "models/konvid_seed0.npz")]["annotations"]["role"] == "input"
    params = statement["predicate"]["buildDefinition"]["externalParameters"]
    assert params["args"]["opset"] == 17
    assert cli("export", "--format", "slsa", onnx).stdout == proc.stdout  # the same bytes


def test_export_openlineage_events_are_the_clients_models(tmp_path):

    features = tmp_path / "f.csv"
    features.write_text("adm2\n0.9\n")
    model = tmp_path / "m.json"
    assert (
        run_fake("trainer", "--features", features, "--out-json", model, "--plcc", "0.1").returncode
        == 1
    )
    proc = cli("export", "--format", "openlineage", "--event-time", "2026-05-01T12:00:00Z", model)
    assert proc.returncode == 0, proc.stderr
    start, end = (json.loads(line) for line in proc.stdout.splitlines())
    assert (start["eventType"], end["eventType"]) == ("START", "FAIL")
    assert end["run"]["facets"]["errorMessage"]["message"] == (
        "failed with exit code 1; failed gates: plcc"
    )
    for event in (start, end):
        check_with_client_models(event)
    digest = end["outputs"][0]["facets"]["provenance_digest"]
    assert digest["sha256"] == block_of(model)["outputs"]["model"]["sha256"]
    assert end["run"]["facets"]["provenance_gates"]["gates"]["plcc"]["passed"] is False
    assert [d["name"] for d in end["outputs"]] == [str(model.resolve())]
    assert start["run"]["runId"] == end["run"]["runId"]


def test_export_openlineage_interrupted_run_aborts(tmp_path):
    out = tmp_path / "o.txt"
    assert run_fake("outcomes", "--mode", "interrupt", "--out", out).returncode != 0
    end = json.loads(cli("export", "--format", "openlineage", out).stdout.splitlines()[1])
    assert end["eventType"] == "ABORT"
    assert end["run"]["facets"]["errorMessage"]["message"] == "interrupted with exit code 130"
    check_with_client_models(end)


def test_export_openlineage_fail_carries_the_error(tmp_path):
    from openlineage.client.facet_v2 import error_message_run

    out = tmp_path / "o.txt"
    proc = run_fake("outcomes", "--mode", "raise", "--out", out)
    assert proc.returncode == 1
    end = json.loads(cli("export", "--format", "openlineage", out).stdout.splitlines()[1])
    assert end["eventType"] == "FAIL"
    facet = end["run"]["facets"]["errorMessage"]
    error_message_run.ErrorMessageRunFacet(
        message=facet["message"], programmingLanguage=facet["programmingLanguage"]
    )
    assert facet["message"] == "ValueError: features table has no rows"


# -- records are hostile input -----------------------------------------------------------------
# Records written by hand or by fakes copied into a small project, run in-process on strict stdio.


@pytest.fixture
def proj(tmp_path):
    return project(tmp_path / "proj")


def built_table(proj, name="table_builder", folder=None):
    """A table built by the fake table builder run inside ``proj``; its artifact path."""
    script = copy_fake(name, folder or proj)
    (proj / "s.csv").write_text("name,value\nb,2\na,1\n")
    shown = script.relative_to(proj).as_posix()
    proc = run_in(proj, shown, "s.csv", "--out", "t.tsv")
    assert proc.returncode == 0, proc.stderr
    return proj / "t.tsv"


def one_line(result):
    """The one line a command that refused its input printed: a clear one, not a crash."""
    assert "Traceback" not in result.err
    assert "internal error" not in result.err
    assert len(result.err.strip().splitlines()) == 1, result.err
    return result.err.strip()


class TestEveryCommand:
    """What every command does with a record no writer produces."""

    @pytest.mark.parametrize(
        "text",
        ['"exit_code": NaN', '"exit_code": 0, "exit_code": 0'],
        ids=["nan", "duplicate-key"],
    )
    def test_validate_refuses_nan_and_duplicate_keys(self, proj, text):
        record = proj / "o.bin.manifest.json"
        record.write_text(json.dumps(document()).replace('"exit_code": 0', text))
        result = run_cli("validate", record)
        assert result.code == 2
        assert ": valid" not in result.out

    @pytest.mark.parametrize("command", ["show", "verify", "diff", "lineage", "replay", "export"])
    def test_a_huge_integer_is_one_line_and_exit_2(self, proj, command):
        record = proj / "o.bin.manifest.json"
        record.write_text(
            json.dumps(document()).replace('"exit_code": 0', '"exit_code": ' + "7" * 5000)
        )
        argv = {"diff": [record, record], "export": ["--format", "slsa", record]}.get(
            command, [record]
        )
        result = run_cli(command, *argv)
        assert result.code == 2
        assert "digits" in one_line(result)


class TestVerifyStaysInsideTheRoot:
    def test_nothing_outside_the_root_is_read_unless_asked(self, proj, tmp_path):
        secret = tmp_path / "shadow"
        secret.write_text("root:$6$hash:19000:0:99999:7:::\n")
        os.symlink(secret, proj / "link")
        entry = file_entry(secret, "")
        inputs = {
            "up": {**entry, "path": "../shadow"},
            "absolute": {**entry, "path": str(secret)},
            "link": {**entry, "path": "link"},
        }
        record = write(proj / "m.bin.manifest.json", document(inputs=inputs))
        result = run_cli("verify", "--json", "--no-code", record)
        assert result.code == 1
        checks = {c["name"]: c for c in json.loads(result.out)[0]["checks"]}
        for check in checks.values():
            assert check["status"] == "skipped", check
            assert "outside the project root" in check["detail"], check
        # The temporary folder's name holds numbers of its own (pytest-322): not the file's.
        text = run_cli("verify", "--no-code", record).out.replace(str(tmp_path), "TMP")
        assert entry["blake3"][:12] not in text
        assert str(entry["size_bytes"]) not in text
        asked = run_cli("verify", "--json", "--no-code", "--outside-root", record)
        assert asked.code == 0, asked
        assert {c["status"] for c in json.loads(asked.out)[0]["checks"]} == {"unchanged"}

    def test_a_folder_is_bounded_by_entries_and_bytes(self, proj):
        folder = proj / "many"
        folder.mkdir()
        for i in range(30):
            (folder / f"{i}.txt").write_text("x" * 100)
        for i in range(30):
            (proj / "folders" / str(i)).mkdir(parents=True)
        entry = {
            "path": "many",
            "exists": True,
            "kind": "directory",
            "blake3": HEX,
            "file_count": 30,
            "size_bytes": 3000,
        }

        def check(entry, *flags):
            record = write(proj / "m.bin.manifest.json", document(inputs={"it": entry}))
            result = run_cli("verify", "--json", "--no-code", *flags, record)
            [check] = json.loads(result.out)[0]["checks"]
            return check["status"], check["detail"]

        # What the record claims is over a limit: not walked at all.
        assert check(entry, "--max-entries", 10) == (
            "skipped",
            "more than 10 entries (--max-entries): not walked",
        )
        assert check(entry, "--max-bytes", 1000)[1].startswith("larger than --max-bytes")
        # What the walk finds past a limit, or past what the record claims: it stops there.
        empty = {**entry, "path": "folders", "file_count": 0, "size_bytes": 0}
        assert check(empty, "--max-entries", 10) == (
            "skipped",
            "more than 10 entries (--max-entries)",
        )
        assert check({**entry, "file_count": 3}) == ("changed", "more files than the 3 recorded")
        assert check({**entry, "size_bytes": 250}) == (
            "changed",
            "more bytes than the 250 recorded",
        )

    def test_a_record_naming_the_filesystem_root_as_a_folder_finishes(self, proj):
        entry = {
            "path": "/",
            "exists": True,
            "kind": "directory",
            "blake3": HEX,
            "file_count": 5,
            "size_bytes": 500,
        }
        record = write(proj / "m.bin.manifest.json", document(inputs={"slash": entry}))
        proc = cli_in(proj, "verify", "--json", "--no-code", "--outside-root", record)
        assert proc.returncode == 1
        [check] = json.loads(proc.stdout)[0]["checks"]
        assert check["status"] in ("changed", "skipped")


def lost_and_live(proj):
    """A sidecar with two running records beside it: (sidecar, lost, live)."""
    (proj / "t.tsv").write_text("a\t1\n")
    sidecar = write(
        proj / "t.tsv.manifest.json",
        document(outputs={"table": file_entry(proj / "t.tsv", "t.tsv")}),
    )
    lost = write(running_record_path(sidecar, "0badf00d"), running_document(table="t.tsv"))
    live = write(running_record_path(sidecar, "1234abcd"), running_document(table="t.tsv"))
    return sidecar, lost, live


class TestRunningRecords:
    def test_show_and_verify_tell_a_lost_run_from_a_live_one(self, proj):
        _sidecar, lost, live = lost_and_live(proj)
        with open(live) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            shown = run_cli("show", proj / "t.tsv")
            verified = run_cli("verify", "--json", "--no-code", proj / "t.tsv")
        assert shown.code == 0, shown
        assert any("lost" in line and lost.name in line for line in shown.out.splitlines())
        assert any("running" in line and live.name in line for line in shown.out.splitlines())
        assert verified.code == 1, verified
        checks = {c["path"]: c["status"] for c in json.loads(verified.out)[0]["checks"]}
        assert checks[lost.name] == "lost"
        assert checks[live.name] == "running"

    def test_a_live_run_alone_is_no_finding(self, proj):
        _sidecar, lost, live = lost_and_live(proj)
        lost.unlink()
        with open(live) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            verified = run_cli("verify", "--no-code", proj / "t.tsv")
        assert verified.code == 0, verified.out

    def test_a_running_record_can_be_shown_and_verified_itself(self, proj):
        sidecar, lost, live = lost_and_live(proj)
        sidecar.unlink()
        for given in (lost, proj / "t.tsv"):
            shown = run_cli("show", given)
            assert shown.code == 0, shown
            assert "outcome         lost (the run never ended" in shown.out
            assert "never measured: the run was lost before it ended" in shown.out
            verified = run_cli("verify", "--json", "--no-code", given)
            assert verified.code == 1, verified
            assert "Traceback" not in verified.err
        with open(live) as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            held = run_cli("show", live).out
            assert "(running" in held
            assert "outcome         running" in held
            assert "(pending: not measured until the run ends)" in held
            assert "(lost" in run_cli("show", lost).out


class TestHostileRecordsInLineage:
    @pytest.mark.parametrize(
        "hostile",
        ["huge-int", "loop", "nul", "surrogate", "nan", "duplicate", "not-json", "fifo"],
    )
    def test_one_hostile_sidecar_does_not_break_lineage_for_others(self, proj, hostile):
        table = built_table(proj)
        os.symlink(proj / "loop2", proj / "loop1")
        os.symlink(proj / "loop1", proj / "loop2")
        bad = proj / "bad.bin.manifest.json"
        doc = document(outputs={"out": file_entry(proj / "s.csv", "s.csv")})
        entry = doc["run_provenance"]["outputs"]["out"]
        text = None
        if hostile == "huge-int":
            text = json.dumps(doc).replace('"exit_code": 0', '"exit_code": ' + "1" * 5000)
        elif hostile == "nan":
            text = json.dumps(doc).replace('"exit_code": 0', '"exit_code": NaN')
        elif hostile == "duplicate":
            text = json.dumps(doc).replace('"argv": []', '"argv": [], "argv": ["x"]')
        elif hostile == "not-json":
            text = json.dumps(doc)[:100]
        elif hostile == "fifo":
            os.mkfifo(bad)
        else:
            entry["path"] = {"loop": "loop1/x", "nul": "a\u0000b", "surrogate": "\ud800"}[hostile]
        if text is not None:
            bad.write_text(text)
        elif hostile != "fifo":
            write(bad, doc)
        result = run_cli("lineage", "--json", table)
        assert result.code == 0, result
        assert "Traceback" not in result.err
        tree = json.loads(result.out)
        assert tree["entrypoint"] == "table_builder.py"
        assert [i["name"] for i in tree["inputs"]] == ["shards[0]"]

    def test_a_deep_chain_of_records_is_cut_short_and_says_so(self, proj):
        depth = 1300
        for i in range(depth):
            into = {
                "x": {
                    "path": f"f{i}",
                    "exists": True,
                    "kind": "file",
                    "size_bytes": 1,
                    "blake3": f"{i:064x}",
                    "sha256": None,
                }
            }
            made = {"y": {**into["x"], "path": f"f{i + 1}", "blake3": f"{i + 1:064x}"}}
            write(proj / f"f{i + 1}.manifest.json", document(inputs=into, outputs=made))
        for flags in ((), ("--json",), ("--dot",)):
            result = run_cli("lineage", *flags, proj / f"f{depth}")
            assert result.code == 1, result.err
            assert "Traceback" not in result.err
            assert "deeper than" in result.err
        tree = json.loads(run_cli("lineage", "--json", proj / f"f{depth}").out)
        levels = 0
        while tree["inputs"] and "produced_by" in tree["inputs"][0]:
            tree, levels = tree["inputs"][0]["produced_by"], levels + 1
        assert tree["inputs"][0].get("truncated") is True
        assert 10 < levels < depth

    def test_a_run_that_did_not_write_its_output_is_not_its_producer(self, proj):
        (proj / "data.csv").write_text("x\n")
        entry = file_entry(proj / "data.csv", "data.csv")
        write(
            proj / "data.csv.manifest.json",
            document("old.py", outputs={"out": {**entry, "written_by_run": False}}),
        )
        write(proj / "other.manifest.json", document("maker.py", outputs={"out": entry}))
        write(proj / "model.bin.manifest.json", document("train.py", inputs={"data": entry}))
        tree = json.loads(run_cli("lineage", "--json", proj / "model.bin").out)
        [data] = tree["inputs"]
        assert data["produced_by"]["entrypoint"] == "maker.py"
        (proj / "other.manifest.json").unlink()
        tree = json.loads(run_cli("lineage", "--json", proj / "model.bin").out)
        assert tree["inputs"][0]["raw"] is True


class TestReplayRun:
    @pytest.mark.parametrize("exit_code", [0, 3])
    def test_a_replay_that_writes_no_record_is_a_finding(self, proj, tmp_path, exit_code):
        table = built_table(proj)
        python = tmp_path / "python-that-writes-nothing"
        python.write_text(f"#!/bin/sh\nexit {exit_code}\n")
        python.chmod(0o755)
        result = run_cli("replay", "--run", "--json", "--python", python, table)
        assert result.code == 1, result
        report = json.loads(result.out)
        assert report["exit_code"] == exit_code
        assert report["record"] is None
        assert "it wrote no record" in report["problems"]
        assert report["reproduced"] is False

    def test_a_script_that_cannot_import_suggests_python(self, proj, tmp_path):
        """An interpreter without the run's packages (here: the same one, with no site
        packages and no PYTHONPATH) fails on its first import: replay says to give --python."""
        table = built_table(proj)
        python = tmp_path / "python-without-packages"
        python.write_text(f'#!/bin/sh\nexec {sys.executable} -I -S "$@"\n')
        python.chmod(0o755)
        result = run_cli("replay", "--run", "--json", "--python", python, table)
        assert result.code == 1, result
        report = json.loads(result.out)
        hint = (
            f"it could not import provenance with {python}: give the interpreter the run used "
            "with --python (a virtual environment's bin/python, say)"
        )
        assert hint in report["problems"]
        assert "ModuleNotFoundError: No module named 'provenance'" in result.err
        plain = run_cli("replay", "--run", "--python", python, table)
        assert hint in plain.out

    def test_a_script_failing_otherwise_gets_no_import_hint(self, proj):
        copy_fake("outcomes", proj)
        run_in(
            proj, "outcomes.py", "--mode", "exit-int", "--code", "3", "--write", "--out", "o.txt"
        )
        report = json.loads(run_cli("replay", "--run", "--json", proj / "o.txt").out)
        assert not any("--python" in p for p in report["problems"])

    def test_a_nonzero_exit_is_a_finding_even_when_the_record_is_the_same(self, proj):
        copy_fake("outcomes", proj)
        proc = run_in(
            proj, "outcomes.py", "--mode", "exit-int", "--code", "3", "--write", "--out", "o.txt"
        )
        assert proc.returncode == 3
        result = run_cli("replay", "--run", "--json", proj / "o.txt")
        assert result.code == 1, result
        report = json.loads(result.out)
        assert report["exit_code"] == 3
        assert report["differences"] == []
        assert report["reproduced"] is False

    def test_it_judges_the_record_it_wrote_not_a_stale_side_record(self, proj):
        table = built_table(proj)
        sidecar = sidecar_of(table)
        stale = json.loads(sidecar.read_text())
        stale["run_provenance"]["outcome"] = {
            "status": "failed",
            "exit_code": 1,
            "error": None,
            "gates": {},
        }
        write(side_record_path(sidecar, "failed"), stale)
        result = run_cli("replay", "--run", table)
        assert result.code == 0, result
        assert "reproduced: no differences" in result.out
        assert f"new record {sidecar}" in result.out

    @pytest.mark.parametrize("given", ["t.tsv", "t.tsv.manifest.json", "./sub/../t.tsv"])
    def test_it_names_the_new_record_as_the_path_was_given(self, proj, monkeypatch, given):
        table = built_table(proj)
        (proj / "sub").mkdir()
        monkeypatch.chdir(proj)
        shown = str(Path(given).parent / "t.tsv.manifest.json")
        result = run_cli("replay", "--run", given)
        assert result.code == 0, result
        assert f"replayed: exit 0; new record {shown}\n" in result.out
        assert str(proj) not in result.out
        report = json.loads(run_cli("replay", "--run", "--json", given).out)
        assert report["record"] == shown
        assert (proj / report["record"]).resolve() == sidecar_of(table).resolve()

    def test_a_new_record_given_by_an_absolute_path_is_named_absolute(self, proj):
        table = built_table(proj)
        result = run_cli("replay", "--run", table)
        assert f"new record {sidecar_of(table)}\n" in result.out

    def test_a_package_script_started_by_path_reproduces(self, proj):
        (proj / "pkg").mkdir()
        (proj / "pkg/__init__.py").write_text("")
        table = built_table(proj, folder=proj / "pkg")
        result = run_cli("replay", "--run", table)
        assert result.code == 0, result.out

    @pytest.mark.parametrize(
        "entrypoint", ["-c", "-mpwn", "../outside.py", "OUTSIDE", "link.py", "folder", "gone.py"]
    )
    def test_it_runs_only_a_regular_file_under_the_root(self, proj, tmp_path, entrypoint):
        pwned = tmp_path / "PWNED"
        evil = f"import pathlib; pathlib.Path({str(pwned)!r}).touch()\n"
        outside = tmp_path / "outside.py"
        outside.write_text(evil)
        (proj / "pwn.py").write_text(evil)  # what -mpwn would import
        (proj / "folder").mkdir()
        os.symlink(outside, proj / "link.py")
        entrypoint = entrypoint.replace("OUTSIDE", str(outside))
        record = write(
            proj / "o.txt.manifest.json",
            document(entrypoint, entrypoint_digests=digests(outside), argv=[evil]),
        )
        result = run_cli("replay", "--run", "--force", record)
        assert result.code == 2, result
        one_line(result)
        assert not pwned.exists()

    @pytest.mark.parametrize("name", ["-c", "-mpwn", "-"])
    def test_a_script_named_like_an_option_runs_as_a_script(self, proj, tmp_path, name):
        pwned = tmp_path / "PWNED"
        evil = f"import pathlib; pathlib.Path({str(pwned)!r}).touch()"
        (proj / "pwn.py").write_text(evil)
        script = proj / name
        script.write_text("import sys; print('ran with', sys.argv[1:])\n")
        record = write(
            proj / "o.txt.manifest.json",
            document(name, entrypoint_digests=digests(script), argv=[evil]),
        )
        result = run_cli("replay", "--run", "--json", record)
        assert result.code == 1, result  # it ran, and wrote no record
        assert json.loads(result.out)["argv"][1] == str(script)
        assert not pwned.exists()

    def test_a_changed_entrypoint_is_named_and_needs_force(self, proj):
        table = built_table(proj)
        sidecar = sidecar_of(table)
        before = json.loads(sidecar.read_text())
        (proj / "table_builder.py").write_text(
            (proj / "table_builder.py").read_text() + "# changed\n"
        )
        refused = run_cli("replay", "--run", table)
        assert refused.code == 2
        line = one_line(refused)
        recorded = before["run_provenance"]["entrypoint"]["sha256"]
        now = digests(proj / "table_builder.py")["sha256"]
        assert recorded[:12] in line
        assert now[:12] in line
        assert "--force" in line
        forced = run_cli("replay", "--run", "--json", "--force", table)
        assert forced.code == 1, forced
        found = {(d["section"], d["key"]) for d in json.loads(forced.out)["differences"]}
        assert ("code", "entrypoint") in found

    @pytest.mark.parametrize("kind", ["zip", "zip-named-py", "zip-appended", "pyc", "pyc-magic"])
    def test_an_entrypoint_python_would_run_other_code_from_is_refused(self, proj, tmp_path, kind):
        """Python runs the __main__.py of any file it can read as a zip archive (an .npz, a .pt
        checkpoint), and bytecode by its magic number: the digest would check the wrong code."""
        import importlib.util
        import py_compile
        import zipfile

        pwned = tmp_path / "PWNED"
        evil = f"import pathlib; pathlib.Path({str(pwned)!r}).touch()\n"
        name = {"zip": "data.npz", "zip-named-py": "train.py", "zip-appended": "train.py"}.get(
            kind, "train.pyc" if kind == "pyc" else "train"
        )
        entry = proj / name
        if kind.startswith("zip"):
            with zipfile.ZipFile(entry, "w") as archive:
                archive.writestr("__main__.py", evil)
            if kind == "zip-appended":  # source text, with a zip after it
                data = entry.read_bytes()
                entry.write_bytes(b"print('source')\n" + data)
        else:
            source = tmp_path / "evil.py"
            source.write_text(evil)
            py_compile.compile(str(source), cfile=str(entry))
            assert entry.read_bytes()[:4] == importlib.util.MAGIC_NUMBER
        record = write(
            proj / "o.txt.manifest.json", document(name, entrypoint_digests=digests(entry))
        )
        for force in ((), ("--force",)):
            result = run_cli("replay", "--run", *force, record)
            assert result.code == 2, result
            one_line(result)
        assert not pwned.exists()

    @pytest.mark.parametrize("shadow", ["package", "extension"])
    def test_a_module_the_import_system_would_find_elsewhere_is_refused(
        self, proj, tmp_path, shadow
    ):
        """python -m pkg.job imports a package folder pkg/job/ (or an extension module beside
        pkg/job.py) before pkg/job.py: the file whose digest was checked would not run."""
        import importlib.machinery

        pwned = tmp_path / "PWNED"
        evil = f"import pathlib; pathlib.Path({str(pwned)!r}).touch()\n"
        (proj / "pkg").mkdir()
        (proj / "pkg/__init__.py").write_text("")
        job = proj / "pkg/job.py"
        job.write_text("print('the checked code')\n")
        if shadow == "package":
            (proj / "pkg/job").mkdir()
            (proj / "pkg/job/__init__.py").write_text("")
            (proj / "pkg/job/__main__.py").write_text(evil)
        else:
            suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
            (proj / f"pkg/job{suffix}").write_bytes(b"\x7fELF not really")
        record = write(
            proj / "o.txt.manifest.json", document("pkg/job.py", entrypoint_digests=digests(job))
        )
        result = run_cli("replay", "--run", record)
        assert result.code == 2, result
        assert "python -m pkg.job would run" in one_line(result)
        assert not pwned.exists()

    def test_a_nul_in_the_command_is_refused_in_one_line(self, proj):
        table = built_table(proj)
        sidecar = sidecar_of(table)
        document_ = json.loads(sidecar.read_text())
        document_["run_provenance"]["argv"].append("a\u0000b")
        write(sidecar, document_)
        result = run_cli("replay", "--run", table)
        assert result.code == 2, result
        assert "NUL" in one_line(result)
        assert "internal error" not in result.err

    def test_the_printed_command_gives_a_shell_the_recorded_arguments(self, proj, tmp_path):
        words = ["a\nb", "x\ttab", "\u2028x", "\x1b[31m", "it's", "\x9b", "back\\slash"]
        record = write(proj / "o.txt.manifest.json", document("show.py", argv=words))
        result = run_cli("replay", record)
        assert result.code == 0, result
        line = result.out.rstrip("\n")
        for raw in ("\n", "\x1b", "\x9b", "\u2028"):
            assert raw not in line
        command = line.split(" && ", 1)[1].replace("python show.py", "", 1)
        shell = subprocess.run(
            ["bash", "-c", f'for w in {command}; do printf "%s\\0" "$w"; done'],
            capture_output=True,
            check=True,
        )
        assert shell.stdout.decode().split("\0")[:-1] == words

    def test_the_printed_command_cannot_be_read_as_an_interpreter_option(self, proj):
        record = write(proj / "o.txt.manifest.json", document("-c", argv=["print(1)"]))
        result = run_cli("replay", "--json", record)
        assert result.code == 0
        argv = json.loads(result.out)["argv"]
        assert argv[1] == "./-c"


class TestExport:
    @pytest.mark.parametrize("number", ["NaN", "1e999", "9" * 5000])
    def test_export_refuses_numbers_strict_json_has_not(self, proj, number):
        (proj / "o.bin").write_text("x")
        doc = document(outputs={"o": file_entry(proj / "o.bin", "o.bin")}, fields={"score": 1})
        record = proj / "o.bin.manifest.json"
        record.write_text(json.dumps(doc).replace('"score": 1', f'"score": {number}'))
        for fmt in ("slsa", "openlineage"):
            result = run_cli("export", "--format", fmt, record)
            assert result.code == 2
            one_line(result)

    @pytest.mark.parametrize("kind", ["symlink", "fifo", "folder"])
    def test_export_out_replaces_only_a_regular_file(self, proj, tmp_path, kind):
        (proj / "o.bin").write_text("x")
        record = write(
            proj / "o.bin.manifest.json",
            document(outputs={"o": file_entry(proj / "o.bin", "o.bin")}),
        )
        target, out = tmp_path / "precious", tmp_path / "out.json"
        target.write_text("keep me")
        {
            "symlink": lambda: os.symlink(target, out),
            "fifo": lambda: os.mkfifo(out),
            "folder": out.mkdir,
        }[kind]()
        result = run_cli("export", "--format", "slsa", "--out", out, record)
        assert result.code == 2
        assert "not a regular file" in one_line(result)
        assert target.read_text() == "keep me"
        assert out.is_symlink() if kind == "symlink" else True
        fine = tmp_path / "fine.json"
        assert run_cli("export", "--format", "slsa", "--out", fine, record).code == 0
        assert run_cli("export", "--format", "slsa", "--out", fine, record).code == 0
        assert json.loads(fine.read_text())["_type"] == "https://in-toto.io/Statement/v1"

    def test_export_passes_strings_from_the_record_through_redaction(self, proj, monkeypatch):
        (proj / "o.bin").write_text("x")
        error = {"type": "HTTPError", "message": "GET https://u:s3cr3tpass@host/ failed"}
        record = write(
            proj / "o.bin.manifest.json",
            document(
                outputs={"o": file_entry(proj / "o.bin", "o.bin")},
                argv=["--url", "https://u:s3cr3tpass@h"],
                status="failed",
                exit_code=1,
                error=error,
            ),
        )
        record_doc = json.loads(record.read_text())
        record_doc["run_provenance"]["args"] = {
            "url": "https://u:s3cr3tpass@h",
            "n": [{"password": "s3cr3tpass"}],
            "hf_token": "hf_OLDRAWTOKEN",  # an older record, redacted by name only now
        }
        record_doc["run_provenance"]["argv"] += ["--hf-token", "hf_OLDRAWTOKEN"]
        record_doc["run_provenance"]["outcome"]["gates"] = {
            "g": {"passed": True, "api_key": "OLDRAW_GATE_KEY"}
        }
        write(record, record_doc)
        for fmt in ("slsa", "openlineage"):
            result = run_cli("export", "--format", fmt, record)
            assert result.code == 0, result
            decoded = result.out + "".join(
                base64.b64decode(b["content"]).decode()
                for b in (
                    json.loads(result.out)["predicate"]["runDetails"]["byproducts"]
                    if fmt == "slsa"
                    else []
                )
            )
            assert "s3cr3tpass" not in decoded
            assert "OLDRAW" not in decoded
            assert "<redacted>" in decoded

    def test_export_refuses_a_bad_event_time_in_one_line(self, proj):
        record = write(proj / "o.bin.manifest.json", document())
        result = run_cli("export", "--format", "openlineage", "--event-time", "yesterday", record)
        assert result.code == 2
        assert "not an ISO 8601 time: 'yesterday'" in result.err
        assert "Traceback" not in result.err

    def test_a_running_record_exports_only_its_start(self, proj):
        _, lost, _ = lost_and_live(proj)
        result = run_cli("export", "--format", "openlineage", lost)
        assert result.code == 0, result
        [start] = (json.loads(line) for line in result.out.splitlines())
        assert start["eventType"] == "START"


class TestStrictStdio:
    """Names that are not UTF-8 and lone surrogates, on stdio that refuses them."""

    @pytest.fixture
    def odd(self, proj):
        name = os.fsdecode(b"caf\xe9.bin")
        artifact = proj / name
        artifact.write_text("x")
        entry = file_entry(artifact, name)
        doc = document(
            inputs={"odd\ud800": {**entry, "path": "lone\ud800"}},
            outputs={"o": entry},
            fields={"note": "\udc80 and \x1b[2J", "café": "naïve…"},
        )
        write(sidecar_of(artifact), doc)
        return artifact

    @pytest.mark.parametrize("encoding", ["utf-8", "ascii"])
    def test_in_process(self, odd, encoding):
        for argv in (
            ["show", odd],
            ["show", "--json", odd],
            ["verify", odd],
            ["verify", "--json", odd],
            ["diff", odd, odd],
            ["diff", "--json", odd, odd],
            ["lineage", odd],
            ["lineage", "--json", odd],
            ["lineage", "--dot", odd],
            ["replay", odd],
            ["replay", "--json", odd],
            ["validate", odd],
        ):
            result = run_cli(*argv, encoding=encoding)
            assert result.code in (0, 1), (argv, result)
            assert "Traceback" not in result.err, argv
            assert "\x1b" not in result.out, argv
            if "--json" in argv:
                parsed = json.loads(result.out)  # valid JSON, whatever the stream could take
                if argv[0] == "show":
                    assert parsed["fields"]["café"] == "naïve…"
                    assert parsed["fields"]["note"].startswith("\udc80")

    @pytest.mark.parametrize(
        "env", [{"PYTHONIOENCODING": "utf-8:strict"}, {"LC_ALL": "C", "PYTHONIOENCODING": ""}]
    )
    def test_as_a_subprocess(self, odd, env):
        for argv in (["show", odd], ["verify", "--json", odd], ["diff", odd, odd]):
            proc = cli_in(odd.parent, *argv, env=env)
            assert proc.returncode in (0, 1), (argv, proc.stderr)
            assert "Traceback" not in proc.stderr


SOMETIMES = """
import sys
from pathlib import Path
from provenance import recorded_run

@recorded_run(outputs={"model": Path("model.bin")})
def main(argv=None):
    if not Path("broken").exists():
        Path("model.bin").write_text("weights")
    return 0

sys.exit(main())
"""


def test_a_replay_that_wrote_none_of_its_outputs_is_not_reproduced(proj):
    (proj / "sometimes.py").write_text(SOMETIMES)
    assert run_in(proj, "sometimes.py").returncode == 0
    (proj / "broken").write_text("")  # the replay will now write nothing
    result = run_cli("replay", "--run", proj / "model.bin")
    assert result.code == 1, result
    assert "not reproduced" in result.out
    assert "did not write model" in result.out


def test_things_named_like_running_records_are_never_opened(proj, tmp_path):
    (proj / "o.bin").write_text("x")
    write(
        proj / "o.bin.manifest.json", document(outputs={"o": file_entry(proj / "o.bin", "o.bin")})
    )
    os.mkfifo(proj / "o.bin.manifest.running.0123abcd.json")
    (proj / "o.bin.manifest.running.4567abcd.json").symlink_to("/dev/zero")
    (proj / "o.bin.manifest.running.89abcdef.json").mkdir()
    result = run_cli("verify", "--no-code", proj / "o.bin", guard=30)
    assert "lost" not in result.out, result
    assert result.code == 0, result


def test_json_output_escapes_what_could_steer_a_terminal(proj):
    (proj / "o.bin").write_text("x")
    error = {"type": "E", "message": "a\u202eb\u200fc\x9bd"}
    record = write(
        proj / "o.bin.manifest.json",
        document(
            outputs={"o": file_entry(proj / "o.bin", "o.bin")},
            status="failed",
            exit_code=1,
            error=error,
            argv=["--note", error["message"] + "\x7f"],
        ),
    )
    result = run_cli("show", "--json", record)
    for raw in ("\u202e", "\u200f", "\x9b"):
        assert raw not in result.out
    assert json.loads(result.out)["outcome"]["error"]["message"] == error["message"]
    for fmt in ("slsa", "openlineage"):
        exported = run_cli("export", "--format", fmt, record)
        assert exported.code == 0, exported
        for raw in ("\u202e", "\u200f", "\x9b", "\x7f"):
            assert raw not in exported.out, fmt
        lines = exported.out.splitlines()
        values = [json.loads(exported.out)] if fmt == "slsa" else [json.loads(x) for x in lines]
        assert error["message"] in json.dumps(values, ensure_ascii=False), fmt  # the same text


class TestDiffReadsPerKey:
    """Two training runs' records, as ``diff`` reads them: per token, per metric, per key."""

    def pair(self, proj, a, b):
        return write(proj / "a.bin.manifest.json", a), write(proj / "b.bin.manifest.json", b)

    def lines(self, proj, a, b):
        result = run_cli("diff", *self.pair(proj, a, b))
        assert result.code == 1, result
        return result.out.splitlines()[3:]

    def test_argv_reads_as_the_tokens_that_changed(self, proj):
        before = ["--table", "t.parquet", "--seed", "0", "--out", "m0.npz"]
        after = ["--table", "t.parquet", "--seed", "1", "--out", "m1.npz", "--debug"]
        lines = self.lines(proj, document(argv=before), document(argv=after))
        assert lines == [
            "  command  argv[3] (--seed): 0 -> 1",
            "  command  argv[5] (--out, --debug):",
            "           - m0.npz",
            "           + m1.npz --debug",
        ]

    def test_an_inserted_or_removed_token_reads_as_such(self, proj):
        lines = self.lines(
            proj, document(argv=["fit", "--config", "c.yaml"]), document(argv=["fit", "-v"])
        )
        assert lines == [
            "  command  argv[1:3] (--config, -v):",
            "           - --config c.yaml",
            "           + -v",
        ]
        lines = self.lines(proj, document(argv=["fit"]), document(argv=["fit", "--dry-run"]))
        assert lines == ["  command  argv[1] (--dry-run):", "           + --dry-run"]
        lines = self.lines(proj, document(argv=["fit", "-v", "x"]), document(argv=["fit", "x"]))
        assert lines == ["  command  argv[1] (-v):", "           - -v"]

    @pytest.mark.parametrize(
        ("before", "after", "line"),
        [
            (
                ["--lr=0.1", "--seed=0"],
                ["--lr=0.1", "--seed=1"],
                "argv[1] (--seed): --seed=0 -> --seed=1",
            ),
            (["--seed", "0", "x"], ["--seed", "1", "x"], "argv[1] (--seed): 0 -> 1"),
            (["-s0", "x"], ["-s1", "x"], "argv[0] (-s): -s0 -> -s1"),
            (["-s", "0", "x"], ["-s", "1", "x"], "argv[1] (-s): 0 -> 1"),
            (["--lr", "-0.5"], ["--lr", "-1e3"], "argv[1] (--lr): -0.5 -> -1e3"),
            (
                ["--seed", "0", "a.csv"],
                ["--seed", "0", "b.csv"],
                "argv[2] (positional): a.csv -> b.csv",
            ),
            (
                ["--verbose", "a.csv"],
                ["--verbose", "b.csv"],
                "argv[1] (positional): a.csv -> b.csv",
            ),
            (
                ["--out", "m", "--", "--seed"],
                ["--out", "m", "--", "--seeds"],
                "argv[3] (positional): --seed -> --seeds",
            ),
            (["--out", "m", "--", "-"], ["--out", "m", "--", "x"], "argv[3] (positional): - -> x"),
            (["--tag", "a", "--tag", "b"], ["--tag", "a", "--tag", "c"], "argv[3] (--tag): b -> c"),
            (
                ["--inputs", "a", "b", "--seed", "0"],
                ["--inputs", "a", "c", "--seed", "0"],
                "argv[2] (--inputs): b -> c",
            ),
            (["x", "--k=v"], ["y", "--k=v"], "argv[0] (positional): x -> y"),
        ],
        ids=[
            "k=v",
            "k-v",
            "short-attached",
            "short-apart",
            "negative-numbers",
            "positional",
            "after-a-flag",
            "after-dashdash",
            "stdin-after-dashdash",
            "repeated",
            "a-list",
            "before-an-option",
        ],
    )
    def test_every_argv_form_gets_its_label(self, proj, before, after, line):
        args = {"verbose": True, "inputs": ["a", "b"], "seed": 0, "tag": "b"}
        a, b = document(argv=before), document(argv=after)
        a["run_provenance"]["args"] = b["run_provenance"]["args"] = args
        assert self.lines(proj, a, b) == [f"  command  {line}"]

    def test_the_count_is_of_the_lines_printed_in_text_and_json(self, proj):
        a = document(
            argv=["--seed", "0", "--out", "a"],
            gates={"g": {"passed": True, "plcc": 0.9, "rmse": 0.1}},
            fields={"r": {"n": 1, "m": 2}},
        )
        b = document(
            argv=["--seed", "1", "--out", "b"],
            gates={"g": {"passed": True, "plcc": 0.8, "rmse": 0.2}},
            fields={"r": {"n": 2, "m": 3}},
        )
        result = run_cli("diff", *self.pair(proj, a, b))
        header, *lines = result.out.splitlines()[2:]
        assert header == f"{len(lines)} differences:"
        assert len(lines) == 6
        report = json.loads(run_cli("diff", "--json", *self.pair(proj, a, b)).out)
        assert report["count"] == len(report["lines"]) == len(lines)
        assert [
            f"  {x['section']:<8} {x['key']}: {x['a']} -> {x['b']}" for x in report["lines"]
        ] == lines

    def test_a_gate_reads_per_metric(self, proj):
        a = document(gates={"plcc": {"passed": True, "plcc": 0.91, "min_plcc": 0.85}})
        b = document(gates={"plcc": {"passed": False, "plcc": 0.80, "min_plcc": 0.85}})
        assert self.lines(proj, a, b) == [
            "  gates    plcc.passed: true -> false",
            "  gates    plcc.plcc: 0.91 -> 0.8",
        ]

    def test_a_field_holding_a_mapping_reads_per_key(self, proj):
        a = document(fields={"rows": {"total": 600, "train": 533}, "model_id": "m"})
        b = document(fields={"rows": {"total": 600, "train": 500, "held_out": 100}})
        assert self.lines(proj, a, b) == [
            '  fields   model_id: "m" -> (absent)',
            "  fields   rows.held_out: (absent) -> 100",
            "  fields   rows.train: 533 -> 500",
        ]

    def test_a_key_holding_null_is_not_a_key_that_is_absent(self, proj):
        a = document(fields={"k": None, "n": 1})
        b = document(fields={"n": 1})
        assert self.lines(proj, a, b) == ["  fields   k: null -> (absent)"]
        assert self.lines(proj, b, a) == ["  fields   k: (absent) -> null"]

    def test_json_keeps_one_item_per_gate_and_field(self, proj):
        a = document(
            argv=["--seed", "0"], gates={"g": {"passed": True, "plcc": 0.9}}, fields={"r": {"n": 1}}
        )
        b = document(
            argv=["--seed", "1"], gates={"g": {"passed": True, "plcc": 0.8}}, fields={"r": {"n": 2}}
        )
        result = run_cli("diff", "--json", *self.pair(proj, a, b))
        assert result.code == 1
        report = json.loads(result.out)
        assert sorted(report) == ["a", "b", "count", "differences", "lines", "same"]
        assert report["differences"] == [
            {"section": "command", "key": "argv", "a": ["--seed", "0"], "b": ["--seed", "1"]},
            {
                "section": "gates",
                "key": "g",
                "a": {"passed": True, "plcc": 0.9},
                "b": {"passed": True, "plcc": 0.8},
            },
            {"section": "fields", "key": "r", "a": {"n": 1}, "b": {"n": 2}},
        ]

    @pytest.mark.parametrize(
        ("a", "b"),
        [
            ({"r": {"n": 1}}, {"r": [1, 2]}),
            ({"r": "text"}, {"r": {"n": {"m": {}}}}),
            ({"r": {}}, {"r": None}),
        ],
        ids=["dict-to-list", "str-to-nested", "empty-to-null"],
    )
    def test_a_value_of_another_shape_reads_whole(self, proj, a, b):
        result = run_cli("diff", *self.pair(proj, document(fields=a), document(fields=b)))
        assert result.code == 1
        assert "Traceback" not in result.err
        (line,) = result.out.splitlines()[3:]
        assert line.startswith("  fields   r: ")

    def test_a_deep_and_wide_field_is_read_without_a_traceback(self, proj):
        deep: dict = {"leaf": 1}
        for _ in range(60):
            deep = {"k": deep}
        wide = {f"m{i}": i for i in range(5000)}
        a = document(fields={"deep": deep, "wide": wide})
        b = document(fields={"deep": {"k": 0}, "wide": {**wide, "m4999": -1}})
        lines = self.lines(proj, a, b)
        assert lines[-1] == "  fields   wide.m4999: 4999 -> -1"
        assert lines[0] == "  fields   deep.k: (absent) -> 0"
        assert lines[1].startswith("  fields   deep.k.k.k")
        assert lines[1].endswith(".leaf: 1 -> (absent)")

    def with_config(self, resolved, config_file=None, command="vmaf-train fit"):
        doc = document()
        files = [file_entry(config_file, config_file.name)] if config_file else []
        doc["run_provenance"] |= {
            "command": command,
            "config": {"files": files, "resolved": resolved},
        }
        return doc

    def test_the_resolved_config_reads_per_key(self, proj):
        first, second = proj / "a.yaml", proj / "b.yaml"
        first.write_text("trainer: {epochs: 50}\n")
        second.write_text("trainer: {epochs: 5}\n")
        a = self.with_config({"trainer": {"epochs": 50, "lr": 0.1}, "data": "x"}, first)
        b = self.with_config({"trainer": {"epochs": 5, "lr": 0.1}, "data": "x"}, second)
        lines = self.lines(proj, a, b)
        assert lines[0].startswith("  config   files[0]: a.yaml (")
        assert lines[1:] == ["  config   trainer.epochs: 50 -> 5"]
        result = run_cli("diff", "--json", *self.pair(proj, a, b))
        items = {
            (d["section"], d["key"]): (d["a"], d["b"])
            for d in json.loads(result.out)["differences"]
        }
        assert sorted(items) == [("config", "files[0]"), ("config", "resolved")]
        assert items[("config", "resolved")][1]["trainer"]["epochs"] == 5

    def test_the_command_path_is_a_difference(self, proj):
        a = self.with_config({}, command="vmaf-train fit")
        b = self.with_config({}, command="vmaf-train eval")
        assert self.lines(proj, a, b) == [
            '  command  command: "vmaf-train fit" -> "vmaf-train eval"'
        ]

    @pytest.mark.parametrize("config", [[1, 2], "text", {"files": {}, "resolved": {}}])
    def test_a_config_of_another_shape_is_one_line_and_exit_2(self, proj, config):
        doc = document()
        doc["run_provenance"]["config"] = config
        result = run_cli("diff", *self.pair(proj, doc, document()))
        assert result.code == 2
        assert "config" in one_line(result)

    def test_values_compare_as_json_so_true_is_not_one(self, proj):
        a = self.with_config({"flag": True, "n": 1})
        b = self.with_config({"flag": 1, "n": 1.0})
        a["n"] = b["n"] = None
        a["r"], b["r"] = {"x": True}, {"x": 1}
        assert self.lines(proj, a, b) == [
            "  config   flag: true -> 1",
            "  config   n: 1 -> 1.0",
            "  fields   r.x: true -> 1",
        ]

    def test_against_a_record_without_config_each_key_is_added(self, proj):
        a = self.with_config({"trainer": {"epochs": 5}})
        assert self.lines(proj, a, document()) == [
            '  command  command: "vmaf-train fit" -> null',
            "  config   trainer.epochs: 5 -> (absent)",
        ]

    def test_a_long_list_reads_as_the_items_that_changed_not_a_shared_prefix(self, proj):
        before = list(range(40))
        after = [*range(25), -1, *range(26, 38), 38.5, 39, 40, 41]
        a = document(fields={"scores": before})
        b = document(fields={"scores": after})
        assert self.lines(proj, a, b) == [
            "  fields   scores[25]: 25 -> -1",
            "  fields   scores[38]: 38 -> 38.5",
            "  fields   scores[40]:",
            "           + 40, 41",
        ]
        result = run_cli("diff", "--json", *self.pair(proj, a, b))
        (item,) = json.loads(result.out)["differences"]
        assert (item["a"], item["b"]) == (before, after)  # the whole values, as before

    def test_list_items_removed_and_added_inside_a_mapping_and_an_argument(self, proj):
        a = document(fields={"run": {"tags": ["base", "fp16", "small"]}})
        b = document(fields={"run": {"tags": ["base", "large", "bf16", "small", "x"]}})
        a["run_provenance"]["args"] = {"inputs": ["a.csv", "b.csv", "c.csv"]}
        b["run_provenance"]["args"] = {"inputs": ["a.csv", "c.csv"]}
        assert self.lines(proj, a, b) == [
            "  args     inputs[1]:",
            '           - "b.csv"',
            "  fields   run.tags[1]:",
            '           - "fp16"',
            '           + "large", "bf16"',
            "  fields   run.tags[3]:",
            '           + "x"',
        ]

    def test_values_read_as_json_not_as_python(self, proj):
        a = document(fields={"k": {"on": True, "none": None, "s": "1", "l": [True, None, "a b"]}})
        b = document(fields={"k": {"on": False, "none": 0, "s": 1, "l": [False, None, "a b"]}})
        assert self.lines(proj, a, b) == [
            "  fields   k.l[0]: true -> false",
            "  fields   k.none: null -> 0",
            "  fields   k.on: true -> false",
            '  fields   k.s: "1" -> 1',
        ]
        lines = self.lines(proj, document(fields={"m": {"x": 1}}), document(fields={"m": "x"}))
        assert lines == ['  fields   m: {"x": 1} -> "x"']

    def test_the_markers_alone_are_painted_and_record_text_stays_escaped(self, proj):
        a = document(argv=["fit", "--config", "c.yaml"])
        b = document(argv=["fit", "-v", "x", "\x1b[32mok"])
        painted = run_cli("diff", "--color", "always", *self.pair(proj, a, b)).out
        assert "           \x1b[1;31m-\x1b[0m --config c.yaml\n" in painted
        assert "           \x1b[32m+\x1b[0m -v x '\\x1b[32mok'\n" in painted
        assert painted.count("\x1b[") == 4  # the two markers, each opened and closed
        plain = run_cli("diff", "--color", "never", *self.pair(proj, a, b)).out
        assert "\x1b" not in plain
        assert "           - --config c.yaml\n" in plain
        on_terminal = _on_a_terminal(proj, "diff", *self.pair(proj, a, b))
        assert "\x1b[1;31m-\x1b[0m" in on_terminal


@pytest.mark.parametrize(
    "content",
    [b"plain text\n", b"\x00\x01binary", b'{"a": 1}', b"[1, 2]", b"{not json"],
    ids=["text", "binary", "json-without-block", "json-list", "broken-json"],
)
@pytest.mark.parametrize("command", ["show", "verify", "lineage", "replay", "export"])
def test_an_artifact_without_a_record_says_so_in_words(tmp_path, content, command):
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(content)
    extra = ["--format", "slsa"] if command == "export" else []
    proc = cli(command, artifact, *extra, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"provenance: no record for {artifact} (looked for model.bin.manifest.json and an "
        "embedded run_provenance block)\n"
    )


def test_a_missing_artifact_without_a_record_says_neither_exists(tmp_path):
    proc = cli("show", tmp_path / "gone.onnx", timeout=30)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"provenance: no record for {tmp_path / 'gone.onnx'}: neither it nor "
        "gone.onnx.manifest.json exists\n"
    )


def _on_a_terminal(folder, *argv, env=None):
    """The command's stdout as a terminal shows it: run with a pseudo-terminal as stdout."""
    import pty

    leader, follower = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "provenance", *map(str, argv)],
        cwd=folder,
        env={**environ, "PYTHONPATH": str(ROOT), "TERM": "xterm", **(env or {})},
        stdout=follower,
        stderr=subprocess.DEVNULL,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert proc.wait(timeout=60) in (0, 1)
    return b"".join(chunks).decode()


class TestVerifyForPeople:
    def test_colour_on_a_terminal_unless_no_color_or_never(self, proj):
        table = built_table(proj)
        painted = _on_a_terminal(proj, "verify", table)
        assert "\x1b[32munchanged\x1b[0m" in painted
        assert "\x1b[" not in _on_a_terminal(proj, "verify", table, env={"NO_COLOR": "1"})
        assert "\x1b[" not in _on_a_terminal(proj, "verify", table, "--color", "never")
        assert "\x1b[" not in _on_a_terminal(proj, "verify", table, env={"TERM": "dumb"})
        assert "\x1b[" not in run_cli("verify", table).out  # a pipe
        forced = run_cli("verify", "--color", "always", table).out
        assert "\x1b[32munchanged\x1b[0m" in forced

    def test_a_record_cannot_paint_the_terminal_even_with_colour_on(self, proj):
        table = built_table(proj)
        sidecar = sidecar_path_for(table)
        doc = json.loads(sidecar.read_text())
        doc["run_provenance"]["outputs"]["table"]["path"] = "t.tsv\x1b[31mFAKE"
        sidecar.write_text(json.dumps(doc))
        out = run_cli("verify", "--color", "always", table).out
        assert "\x1b[31mFAKE" not in out
        assert "\\x1b[31mFAKE" in out

    def test_quiet_prints_only_findings_and_a_total_across_records(self, proj, tmp_path):
        table = built_table(proj)
        other = built_table(project(tmp_path / "other"))
        other.write_text("changed\n")
        result = run_cli("verify", "--quiet", table, other, proj / "README-none.txt")
        assert result.code == 2
        lines = result.out.splitlines()
        assert not [line for line in lines if line.lstrip().startswith("unchanged")]
        assert any(line.lstrip().startswith("changed") and "t.tsv" in line for line in lines)
        assert lines[-1].startswith(
            "2 records verified (1 without a finding), 1 record unreadable: "
        )
        assert " 1 changed," in lines[-1]
        one = run_cli("verify", table).out.splitlines()
        assert "records verified" not in one[-1]  # a total only across several
        assert any(line.endswith(" files") or line.endswith(" file") for line in one)
        assert not any("(s)" in line for line in one)


_JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(alphabet=st.characters(codec=None, exclude_categories=()))
)


class TestIndentedJson:
    """``print_json``'s encoder writes what ``json.dumps(indent=2, sort_keys=True)`` writes,
    byte for byte, whatever the value holds."""

    @hypothesis.given(
        st.recursive(
            _JSON_LEAVES,
            lambda inner: (
                st.lists(inner, max_size=4)
                | st.tuples(inner, inner)
                | st.dictionaries(st.text(max_size=4), inner, max_size=4)
                | st.dictionaries(st.integers(), inner, max_size=2)
            ),
            max_leaves=30,
        )
    )
    def test_the_bytes_of_json_dumps(self, value):
        from provenance.text import indented_json

        for ascii_only in (False, True):
            expected = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=ascii_only)
            assert indented_json(value, ensure_ascii=ascii_only) == expected

    def test_a_list_of_runs_as_json_dumps_writes_it(self):
        from provenance.text import indented_json

        value = {
            "differing": ["args.lr"],
            "runs": [
                {"gates": {}, "params": {"args.lr": 0.1, "x": [1, {"a": []}]}, "status": "ok"},
                {"gates": {"g": True}, "params": {}, "e": None, "n": -0.0, "s": "\u2028é"},
            ],
        }
        assert indented_json(value, ensure_ascii=False) == json.dumps(
            value, indent=2, sort_keys=True, ensure_ascii=False
        )
