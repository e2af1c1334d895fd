"""Signed provenance, checked by the ecosystem's own verifiers: model-signing's CLI for the
model signature, securesystemslib's DSSE verifier and in-toto's Statement for the attestation."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import blake3
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import ROOT, project_with, run_python, run_with_env, sidecar_of

PASSWORD = "correct-horse-battery-staple-7Q"
MODEL_SIGNING = Path(sys.executable).with_name("model_signing")


def write_keys(folder: Path, name: str, password: str | None = None) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    encryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    private = folder / f"{name}.pem"
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    public = folder / f"{name}.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def provenance(*argv: object, cwd: Path, env: dict[str, str] | None = None):
    if env is None:
        return run_python("-m", "provenance", *argv, cwd=cwd)
    return subprocess.run(
        [sys.executable, "-m", "provenance", *map(str, argv)],
        cwd=cwd,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def export(project: Path, *argv: object, env: dict[str, str] | None = None):
    proc = run_with_env(project / "onnx_export.py", *argv, cwd=project, env=env or {})
    assert proc.returncode in (0, 1), proc.stderr
    return proc


def model_signing_verify(artifact: Path, public: Path) -> subprocess.CompletedProcess[str]:
    """The model-signing project's own CLI, as a user runs it."""
    return subprocess.run(
        [
            str(MODEL_SIGNING),
            "verify",
            "key",
            str(artifact),
            "--signature",
            f"{artifact}.sig",
            "--public_key",
            str(public),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def dsse_verify(attestation: Path, public: Path) -> dict:
    """securesystemslib's DSSE verifier: the statement, once a signature by ``public`` holds."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import SSlibKey

    pem = public.read_bytes()
    key = SSlibKey.from_crypto(
        serialization.load_pem_public_key(pem), keyid=hashlib.sha256(pem).hexdigest()
    )
    lines = attestation.read_text().splitlines()
    assert len(lines) == 1
    envelope = Envelope.from_dict(json.loads(lines[0]))
    envelope.verify([key], 1)  # raises VerificationError otherwise
    assert envelope.payload_type == "application/vnd.in-toto+json"
    return json.loads(envelope.payload)


def digests(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    return {"sha256": hashlib.sha256(data).hexdigest(), "blake3": blake3.blake3(data).hexdigest()}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    folder = project_with(tmp_path_factory.mktemp("signing") / "proj", "onnx_export")
    (folder / "data.txt").write_text("training data\n")
    return folder


@pytest.fixture(scope="module")
def keys(project: Path) -> dict[str, tuple[Path, Path]]:
    keys = project / "keys"
    keys.mkdir()
    return {
        "plain": write_keys(keys, "signing"),
        "locked": write_keys(keys, "locked", PASSWORD),
        "other": write_keys(keys, "other"),
    }


@pytest.fixture(scope="module")
def signed(project: Path, keys) -> Path:
    """A real ONNX model from a real recorded run, attested with the plain key."""
    export(project, "--data", "data.txt", "--out", "models/a.onnx")
    proc = provenance("attest", "models/a.onnx", "--key", keys["plain"][0], cwd=project)
    assert proc.returncode == 0, proc.stderr
    return project / "models" / "a.onnx"


@pytest.fixture(scope="module")
def signed_folder(project: Path, keys) -> Path:
    export(project, "--data", "data.txt", "--out", "models/folder", "--folder")
    proc = provenance("attest", "models/folder", "--key", keys["plain"][0], cwd=project)
    assert proc.returncode == 0, proc.stderr
    return project / "models" / "folder"


class TestAttest:
    def test_the_model_signing_cli_accepts_the_signature_of_a_file(self, signed, keys):
        proc = model_signing_verify(signed, keys["plain"][1])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "Verification succeeded" in proc.stdout
        assert model_signing_verify(signed, keys["other"][1]).returncode != 0

    def test_the_model_signing_cli_accepts_the_signature_of_a_folder(self, signed_folder, keys):
        assert sorted(p.name for p in signed_folder.iterdir()) == ["model.onnx", "model.onnx.data"]
        proc = model_signing_verify(signed_folder, keys["plain"][1])
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def test_securesystemslib_verifies_the_envelope_and_in_toto_reads_the_statement(
        self, signed, keys
    ):
        from google.protobuf import json_format
        from in_toto_attestation.v1 import statement_pb2
        from in_toto_attestation.v1.statement import Statement

        statement = dsse_verify(Path(f"{signed}.intoto.jsonl"), keys["plain"][1])
        parsed = json_format.ParseDict(statement, statement_pb2.Statement())
        Statement.copy_from_pb(parsed).validate()
        assert statement["subject"] == [{"name": "models/a.onnx", "digest": digests(signed)}]
        assert statement["predicateType"] == "https://slsa.dev/provenance/v1"

    def test_the_predicate_is_what_export_slsa_says_of_the_record(self, signed, keys, project):
        statement = dsse_verify(Path(f"{signed}.intoto.jsonl"), keys["plain"][1])
        proc = provenance("export", "models/a.onnx", "--format", "slsa", cwd=project)
        assert proc.returncode == 0, proc.stderr
        assert statement["predicate"] == json.loads(proc.stdout)["predicate"]

    def test_a_folder_has_each_of_its_files_as_a_subject(self, signed_folder, keys):
        statement = dsse_verify(Path(f"{signed_folder}.intoto.jsonl"), keys["plain"][1])
        assert statement["subject"] == [
            {"name": f"models/folder/{name}", "digest": digests(signed_folder / name)}
            for name in ("model.onnx", "model.onnx.data")
        ]

    def test_attesting_again_writes_the_same_statement(self, signed, keys, project):
        before = dsse_verify(Path(f"{signed}.intoto.jsonl"), keys["plain"][1])
        proc = provenance("attest", "models/a.onnx", "--key", keys["plain"][0], cwd=project)
        assert proc.returncode == 0, proc.stderr
        assert dsse_verify(Path(f"{signed}.intoto.jsonl"), keys["plain"][1]) == before


class TestVerify:
    def test_an_untouched_artifact_verifies(self, signed, keys, project):
        proc = verify_attestation(
            project, "models/a.onnx", Path("models/a.onnx.intoto.jsonl"), keys["plain"][1]
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "signed by the key given, 1 subject" in proc.stdout
        assert "unchanged output model" in proc.stdout

    def test_json_stays_one_document_with_the_verdict_on_stderr(self, signed, keys, project):
        proc = verify_attestation(
            project, "models/a.onnx", Path("models/a.onnx.intoto.jsonl"), keys["plain"][1], "--json"
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)[0]["checks"]
        assert "signed by the key given" in proc.stderr

    def test_a_folder_verifies(self, signed_folder, keys, project):
        proc = verify_attestation(
            project, "models/folder", Path("models/folder.intoto.jsonl"), keys["plain"][1]
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "2 subjects" in proc.stdout


def verify_attestation(project: Path, artifact: str, attestation: Path, public: Path, *extra: str):
    return provenance(
        "verify",
        artifact,
        *extra,
        "--attestation",
        attestation,
        "--public-key",
        public,
        cwd=project,
    )


@pytest.fixture(scope="module")
def attested(tmp_path_factory, keys) -> Path:
    """Two real models, each attested: made once, then copied for each test to tamper with
    (the records name everything relative to the project, so a copy verifies as well)."""
    project = project_with(tmp_path_factory.mktemp("tampering") / "proj", "onnx_export")
    (project / "data.txt").write_text("training data\n")
    (project / "other.txt").write_text("other data\n")
    export(project, "--data", "data.txt", "--out", "a.onnx")
    export(project, "--data", "other.txt", "--out", "b.onnx")
    for name in ("a.onnx", "b.onnx"):
        proc = provenance("attest", name, "--key", keys["plain"][0], cwd=project)
        assert proc.returncode == 0, proc.stderr
    return project


class TestTampering:
    """Each way an attestation can stop holding fails, exit 1, with its own one-line reason."""

    @pytest.fixture
    def work(self, attested, tmp_path) -> Path:
        copy = tmp_path / "proj"
        shutil.copytree(attested, copy, symlinks=True)
        return copy

    def failure(self, proc) -> str:
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        lines = [line for line in proc.stdout.splitlines() if "attestation:" in line]
        assert len(lines) == 1, proc.stdout
        return lines[0]

    def test_the_untampered_pair_verifies(self, work, keys):
        for name in ("a.onnx", "b.onnx"):
            proc = verify_attestation(work, name, work / f"{name}.intoto.jsonl", keys["plain"][1])
            assert proc.returncode == 0, proc.stdout + proc.stderr

    def test_an_envelope_signed_by_another_key(self, work, keys):
        proc = provenance("attest", "a.onnx", "--key", keys["other"][0], cwd=work)
        assert proc.returncode == 0, proc.stderr
        line = self.failure(
            verify_attestation(work, "a.onnx", work / "a.onnx.intoto.jsonl", keys["plain"][1])
        )
        assert "signed by another key" in line
        from securesystemslib.exceptions import VerificationError

        with pytest.raises(VerificationError):
            dsse_verify(work / "a.onnx.intoto.jsonl", keys["plain"][1])

    def test_a_statement_edited_after_signing(self, work, keys):
        path = work / "a.onnx.intoto.jsonl"
        envelope = json.loads(path.read_text())
        statement = json.loads(base64.b64decode(envelope["payload"]))
        statement["predicate"]["buildDefinition"]["externalParameters"]["argv"].append("--lr=9")
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
        path.write_text(json.dumps(envelope) + "\n")
        line = self.failure(verify_attestation(work, "a.onnx", path, keys["plain"][1]))
        assert "changed after it was signed" in line
        from securesystemslib.exceptions import VerificationError

        with pytest.raises(VerificationError):
            dsse_verify(path, keys["plain"][1])

    def test_a_swapped_artifact(self, work, keys):
        shutil.copy(work / "b.onnx", work / "a.onnx")
        line = self.failure(
            verify_attestation(work, "a.onnx", work / "a.onnx.intoto.jsonl", keys["plain"][1])
        )
        assert "its bytes are not those signed: a.onnx sha256" in line
        assert model_signing_verify(work / "a.onnx", keys["plain"][1]).returncode != 0

    def test_a_statement_replayed_for_another_artifact(self, work, keys):
        line = self.failure(
            verify_attestation(work, "a.onnx", work / "b.onnx.intoto.jsonl", keys["plain"][1])
        )
        assert "the statement is for b.onnx, not for a.onnx" in line

    def test_a_record_changed_after_signing(self, work, keys):
        sidecar = sidecar_of(work / "a.onnx")
        document = json.loads(sidecar.read_text())
        document["run_provenance"]["argv"].append("--lr=9")
        sidecar.write_text(json.dumps(document))
        line = self.failure(
            verify_attestation(work, "a.onnx", work / "a.onnx.intoto.jsonl", keys["plain"][1])
        )
        assert "does not match the record a.onnx.manifest.json" in line

    def test_a_record_that_verify_fails_fails_after_the_attestation_holds(self, work, keys):
        (work / "data.txt").write_text("other training data\n")
        proc = verify_attestation(work, "a.onnx", work / "a.onnx.intoto.jsonl", keys["plain"][1])
        assert proc.returncode == 1
        assert "signed by the key given" in proc.stdout
        assert "changed   input  data" in proc.stdout

    @pytest.mark.parametrize(
        ("content", "reason"),
        [
            (b"not json\n", "not JSON"),
            (b"[]\n", "not a DSSE envelope"),
            (b'{"payloadType": "text/plain", "payload": "", "signatures": []}\n', "payloadType"),
            (
                b'{"payloadType": "application/vnd.in-toto+json", "payload": "!!", '
                b'"signatures": [{"keyid": "", "sig": "AA=="}]}\n',
                "not base64",
            ),
            (b'{"a": ' * 5000 + b"1" + b"}" * 5000, "nested"),
            (b" " * (17 * 1024**2), "over"),
        ],
    )
    def test_a_hostile_attestation_file_is_one_line_and_exit_2(self, work, keys, content, reason):
        path = work / "hostile.intoto.jsonl"
        path.write_bytes(content)
        proc = verify_attestation(work, "a.onnx", path, keys["plain"][1])
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.splitlines()) == 1
        assert reason in proc.stderr


class TestRefusals:
    """What attest cannot vouch for is not signed: nothing is written, and it says why."""

    def attest(self, project: Path, artifact: str, key: Path, *extra: str):
        proc = provenance("attest", artifact, "--key", key, *extra, cwd=project)
        assert "Traceback" not in proc.stderr
        return proc

    @pytest.fixture
    def work(self, tmp_path) -> Path:
        project = project_with(tmp_path / "proj", "onnx_export")
        (project / "data.txt").write_text("training data\n")
        return project

    def test_a_failed_gate_unless_allowed_and_then_the_statement_says_it(self, work, keys):
        export(work, "--data", "data.txt", "--out", "a.onnx", "--gate", "fail")
        proc = self.attest(work, "a.onnx", keys["plain"][0])
        assert proc.returncode == 1
        assert "gate failed: parity" in proc.stderr
        assert not (work / "a.onnx.sig").exists()
        assert not (work / "a.onnx.intoto.jsonl").exists()
        proc = self.attest(work, "a.onnx", keys["plain"][0], "--allow-failed")
        assert proc.returncode == 0, proc.stderr
        statement = dsse_verify(work / "a.onnx.intoto.jsonl", keys["plain"][1])
        internal = statement["predicate"]["buildDefinition"]["internalParameters"]
        assert internal["attested_despite_failed_gates"] == ["parity"]
        proc = verify_attestation(work, "a.onnx", work / "a.onnx.intoto.jsonl", keys["plain"][1])
        assert proc.returncode == 0, proc.stdout + proc.stderr

    def test_a_passed_gate_is_signed_without_a_word(self, work, keys):
        export(work, "--data", "data.txt", "--out", "a.onnx", "--gate", "pass")
        assert self.attest(work, "a.onnx", keys["plain"][0]).returncode == 0
        statement = dsse_verify(work / "a.onnx.intoto.jsonl", keys["plain"][1])
        internal = statement["predicate"]["buildDefinition"]["internalParameters"]
        assert "attested_despite_failed_gates" not in internal

    def test_a_failed_run(self, work, keys):
        export(work, "--data", "data.txt", "--out", "a.onnx", "--fail")
        proc = self.attest(work, "a.onnx", keys["plain"][0], "--allow-failed")
        assert proc.returncode == 1
        assert "the run failed" in proc.stderr

    def test_a_record_verify_fails(self, work, keys):
        export(work, "--data", "data.txt", "--out", "a.onnx")
        (work / "data.txt").write_text("changed\n")
        proc = self.attest(work, "a.onnx", keys["plain"][0])
        assert proc.returncode == 1
        assert "verify finds 1 problem, first: changed input data.txt" in proc.stderr
        assert not (work / "a.onnx.sig").exists()

    def test_an_artifact_that_is_not_the_runs_output(self, work, keys):
        export(work, "--data", "data.txt", "--out", "a.onnx")
        shutil.copy(sidecar_of(work / "a.onnx"), sidecar_of(work / "data.txt"))
        proc = self.attest(work, "data.txt", keys["plain"][0])
        assert proc.returncode == 1
        assert "not an output of the run" in proc.stderr

    def test_a_run_under_way_and_then_lost(self, tmp_path, keys):
        """A real run, held while it runs, then killed with SIGKILL."""
        from tests.test_lost_runs import SIZE, finish, holds, start, wait_until

        out, ready = tmp_path / "model.bin", tmp_path / "ready"
        proc = start("--out", out, "--tag", "a", "--size", SIZE, "--ready", ready, "--hold", 600)
        try:
            wait_until(ready.exists, proc, "it was under way")
            wait_until(lambda: holds(out, "a"), proc, "it wrote its output")
            live = self.attest(tmp_path, str(out), keys["plain"][0])
            assert live.returncode == 1, live.stderr
            assert "the run is still under way" in live.stderr
        finally:
            proc.send_signal(signal.SIGKILL)
            finish(proc)
        lost = self.attest(tmp_path, str(out), keys["plain"][0])
        assert lost.returncode == 1, lost.stderr
        assert "the run is lost: it wrote no final record" in lost.stderr
        assert not Path(f"{out}.sig").exists()

    def test_keys_it_cannot_use_are_one_line_and_exit_2(self, work, keys, tmp_path):
        export(work, "--data", "data.txt", "--out", "a.onnx")
        from cryptography.hazmat.primitives.asymmetric import ed25519

        ed = tmp_path / "ed.pem"
        ed.write_bytes(
            ed25519.Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        junk = tmp_path / "junk.pem"
        junk.write_text("hello\n")
        for key, reason in (
            (ed, "not an elliptic-curve key"),
            (junk, "not a PEM private key"),
            (tmp_path / "absent.pem", "cannot be read"),
            (keys["locked"][0], "password-protected"),
        ):
            proc = self.attest(work, "a.onnx", key)
            assert proc.returncode == 2, (key, proc.stderr)
            assert len(proc.stderr.splitlines()) == 1
            assert reason in proc.stderr


class TestPasswords:
    def test_a_password_protected_key_signs_with_the_password_from_the_environment(
        self, tmp_path, keys
    ):
        work = project_with(tmp_path / "proj", "onnx_export")
        (work / "data.txt").write_text("training data\n")
        export(work, "--data", "data.txt", "--out", "a.onnx")
        locked, public = keys["locked"]
        proc = provenance(
            "attest",
            "a.onnx",
            "--key",
            locked,
            "--password-env",
            "SIGNING_PW",
            cwd=work,
            env={"SIGNING_PW": "wrong"},
        )
        assert proc.returncode == 2
        assert "the password is wrong" in proc.stderr
        assert "wrong" not in proc.stderr.replace("is wrong", "")
        proc = provenance(
            "attest", "a.onnx", "--key", locked, "--password-env", "UNSET_PW", cwd=work
        )
        assert proc.returncode == 2
        assert "UNSET_PW: that environment variable is not set" in proc.stderr
        proc = provenance(
            "attest",
            "a.onnx",
            "--key",
            locked,
            "--password-env",
            "SIGNING_PW",
            cwd=work,
            env={"SIGNING_PW": PASSWORD},
        )
        assert proc.returncode == 0, proc.stderr
        assert model_signing_verify(work / "a.onnx", public).returncode == 0
        dsse_verify(work / "a.onnx.intoto.jsonl", public)
        assert PASSWORD not in proc.stdout + proc.stderr


def secret_texts(key: Path) -> list[str]:
    """What of a key must never be written anywhere: its password and its PEM body's lines."""
    body = [line for line in key.read_text().splitlines() if not line.startswith("-----")]
    return [PASSWORD, key.read_text(), *(line for line in body if len(line) > 20)]


class TestSignAtTheEndOfARun:
    @pytest.fixture
    def work(self, tmp_path) -> Path:
        project = project_with(tmp_path / "proj", "onnx_export")
        (project / "data.txt").write_text("training data\n")
        return project

    def test_the_environment_key_signs_each_output_and_enters_nothing(self, work, keys):
        locked, public = keys["locked"]
        env = {"PROVENANCE_SIGNING_KEY": str(locked), "PROVENANCE_SIGNING_PASSWORD": PASSWORD}
        proc = export(work, "--data", "data.txt", "--out", "a.onnx", env=env)
        assert proc.returncode == 0, proc.stderr
        assert model_signing_verify(work / "a.onnx", public).returncode == 0
        dsse_verify(work / "a.onnx.intoto.jsonl", public)
        check = verify_attestation(work, "a.onnx", work / "a.onnx.intoto.jsonl", public)
        assert check.returncode == 0, check.stdout + check.stderr
        exports = [
            provenance("export", "a.onnx", "--format", fmt, cwd=work).stdout
            for fmt in ("slsa", "openlineage", "prov")
        ]
        shown = provenance("show", "a.onnx", cwd=work).stdout
        written = [p.read_text(errors="replace") for p in work.iterdir() if p.is_file()]
        everything = "\n".join([proc.stdout, proc.stderr, shown, *exports, *written])
        for secret in secret_texts(locked):
            assert secret not in everything

    def test_the_record_is_the_same_signed_or_not(self, work, keys):
        export(work, "--data", "data.txt", "--out", "a.onnx")
        unsigned = sidecar_of(work / "a.onnx").read_bytes()
        env = {"PROVENANCE_SIGNING_KEY": str(keys["plain"][0])}
        export(work, "--data", "data.txt", "--out", "a.onnx", env=env)
        assert (work / "a.onnx.sig").exists()
        assert sidecar_of(work / "a.onnx").read_bytes() == unsigned

    def test_the_decorator_argument_signs_a_folder(self, work, keys):
        env = {"ONNX_EXPORT_SIGN_WITH": str(keys["plain"][0])}
        proc = export(work, "--data", "data.txt", "--out", "model", "--folder", env=env)
        assert proc.returncode == 0, proc.stderr
        assert model_signing_verify(work / "model", keys["plain"][1]).returncode == 0

    def test_a_failed_run_is_not_signed_and_keeps_its_exit_code(self, work, keys):
        env = {"PROVENANCE_SIGNING_KEY": str(keys["plain"][0])}
        proc = export(work, "--data", "data.txt", "--out", "a.onnx", "--fail", env=env)
        assert proc.returncode == 1
        assert not (work / "a.onnx.sig").exists()

    def test_a_key_that_cannot_sign_is_said_and_the_run_still_exits_0(self, work, keys):
        env = {"PROVENANCE_SIGNING_KEY": str(keys["locked"][0])}  # no password given
        proc = export(work, "--data", "data.txt", "--out", "a.onnx", env=env)
        assert proc.returncode == 0
        assert "a.onnx: not signed:" in proc.stderr
        assert "password-protected" in proc.stderr
        assert not (work / "a.onnx.sig").exists()


class TestWithoutTheExtra:
    """The command starts without the sign extra, and says in one line what attest needs."""

    BLOCK = (
        "import sys\n"
        "for name in ('model_signing', 'cryptography', 'OpenSSL', 'prov'):\n"
        "    sys.modules[name] = None\n"
        "from provenance.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )

    def run(self, project: Path, *argv: object):
        return run_python("-c", self.BLOCK, *argv, cwd=project)

    def test_attest_says_which_extra_and_exits_2(self, signed, keys, project):
        proc = self.run(project, "attest", "models/a.onnx", "--key", keys["plain"][0])
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines() == [
            "provenance: attest: signing needs the sign extra: "
            "pip install 'provenance-sidecar[sign]'"
        ]

    def test_the_other_commands_still_work(self, signed, project):
        assert self.run(project, "show", "models/a.onnx").returncode == 0
        assert self.run(project, "verify", "models/a.onnx").returncode == 0
        assert self.run(project, "--help").returncode == 0


class TestAFolderChangedUnderItsSignature:
    @pytest.mark.parametrize("intruder", ["symlink", "fifo"])
    def test_a_link_or_pipe_in_a_signed_folder_is_a_finding_not_an_error(
        self, tmp_path, keys, intruder
    ):
        project = project_with(tmp_path / "proj", "onnx_export")
        (project / "data.txt").write_text("training data\n")
        export(project, "--data", "data.txt", "--out", "models/folder", "--folder")
        proc = provenance("attest", "models/folder", "--key", keys["plain"][0], cwd=project)
        assert proc.returncode == 0, proc.stderr
        folder = project / "models" / "folder"
        if intruder == "symlink":
            (folder / "evil").symlink_to("/etc/passwd")
        else:
            os.mkfifo(folder / "pipe")
        proc = verify_attestation(
            project, "models/folder", folder.with_name("folder.intoto.jsonl"), keys["plain"][1]
        )
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "internal error" not in proc.stderr
        (line,) = [x for x in proc.stdout.splitlines() if "attestation:" in x]
        assert line.startswith("changed attestation: ")
        assert "not signed" not in line
