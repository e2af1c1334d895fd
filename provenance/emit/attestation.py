"""Signed evidence of an artifact: its OpenSSF model signature (``X.sig``, made by the
``model-signing`` library) and its run's SLSA provenance as an in-toto Statement in a DSSE
envelope (``X.intoto.jsonl``), both signed with one elliptic-curve key.

The libraries come with the ``sign`` extra and are imported only here, when asked for: the
``provenance`` command starts without them. A key's bytes and its password are held only as
long as signing takes; no message says either.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance.emit.slsa import SLSA_PREDICATE, STATEMENT_TYPE, slsa_statement
from provenance.errors import ProvenanceError
from provenance.measure.hashing import HashPolicy, hash_file
from provenance.record.limits import Refused, depth_over, refusal, strict_loads
from provenance.record.outcome import SUCCEEDED
from provenance.record.sidecar import atomic_write
from provenance.records import Record, declared_entries, read_json
from provenance.text import plural

PAYLOAD_TYPE = "application/vnd.in-toto+json"
SIGNATURE_SUFFIX = ".sig"
ATTESTATION_SUFFIX = ".intoto.jsonl"
# internalParameters of a statement made for a run whose gates failed (--allow-failed).
FAILED_GATES = "attested_despite_failed_gates"
MAX_KEY_BYTES = 64 * 1024  # a PEM key is a few hundred bytes
MAX_ATTESTATION_BYTES = 16 * 1024**2
MAX_PAYLOAD_DEPTH = 32
MAX_SIGNATURES = 16
MAX_SUBJECT_FILES = 100_000  # files of one folder artifact named as subjects
CURVES = {"secp256r1": "sha256", "secp384r1": "sha384", "secp521r1": "sha512"}
EXTRA = "pip install 'provenance-sidecar[sign]'"


class MissingExtra(ProvenanceError, ImportError):
    """Signing needs the ``sign`` extra, which is not installed."""


class KeyError_(ProvenanceError, ValueError):
    """A key that cannot be used: unreadable, not elliptic-curve, or the wrong password."""


class Refusal(ProvenanceError):
    """An artifact this tool cannot vouch for: nothing is signed."""


class Mismatch(ProvenanceError):
    """An attestation that does not hold for the artifact: the message names why."""


class BadAttestation(ProvenanceError, ValueError):
    """An attestation file that is not a DSSE envelope this tool reads."""


def _crypto() -> Any:
    """cryptography's serialization and EC modules, or ``MissingExtra``."""
    try:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
    except ImportError as err:
        raise MissingExtra(f"signing needs the sign extra: {EXTRA}") from err
    return hashes, serialization, ec


def require_extra() -> None:
    """Raise ``MissingExtra`` unless everything signing imports is installed."""
    _crypto()
    try:
        import model_signing.signing  # noqa: F401 -- imported to learn that it can be
        import OpenSSL  # noqa: F401 -- model-signing imports it without declaring it
    except ImportError as err:
        raise MissingExtra(f"signing needs the sign extra: {EXTRA}") from err


def _key_bytes(path: str | os.PathLike[str]) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as err:
        raise KeyError_(f"{path}: cannot be read: {err.strerror or err}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise KeyError_(f"{path}: not a regular file")
        data = handle.read(MAX_KEY_BYTES + 1)
    if len(data) > MAX_KEY_BYTES:
        raise KeyError_(f"{path}: over {MAX_KEY_BYTES // 1024} KiB: not a PEM key")
    return data


def is_encrypted(path: str | os.PathLike[str]) -> bool:
    """Whether the PEM key at ``path`` says it is password-protected."""
    return b"ENCRYPTED" in _key_bytes(path)


def load_private_key(path: str | os.PathLike[str], password: bytes | None) -> Any:
    """The elliptic-curve private key in the PEM file ``path``."""
    _, serialization, ec = _crypto()
    data = _key_bytes(path)
    try:
        key = serialization.load_pem_private_key(data, password)
    except TypeError:
        # cryptography says which of the two it is; neither message holds the key.
        why = (
            "it is password-protected: give the password (--password-env NAME)"
            if password is None
            else "it is not password-protected, but a password was given"
        )
        raise KeyError_(f"{path}: {why}") from None
    except ValueError:
        raise KeyError_(
            f"{path}: not a PEM private key, or the password is wrong"
            if password
            else f"{path}: not a PEM private key"
        ) from None
    except Exception:  # noqa: BLE001 -- UnsupportedAlgorithm and the like: never the key's text
        raise KeyError_(f"{path}: not a private key this tool can use") from None
    _check_curve(path, key, ec.EllipticCurvePrivateKey)
    return key


def load_public_key(path: str | os.PathLike[str]) -> Any:
    """The elliptic-curve public key in the PEM file ``path``."""
    _, serialization, ec = _crypto()
    try:
        key = serialization.load_pem_public_key(_key_bytes(path))
    except (ValueError, TypeError):
        raise KeyError_(f"{path}: not a PEM public key") from None
    except Exception:  # noqa: BLE001 -- an unsupported algorithm
        raise KeyError_(f"{path}: not a public key this tool can use") from None
    _check_curve(path, key, ec.EllipticCurvePublicKey)
    return key


def _check_curve(path: str | os.PathLike[str], key: Any, kind: Any) -> None:
    if not isinstance(key, kind):
        raise KeyError_(f"{path}: not an elliptic-curve key (model signing takes only those)")
    if key.curve.name not in CURVES:
        raise KeyError_(f"{path}: curve {key.curve.name} is not one of {', '.join(sorted(CURVES))}")


def key_id(public_key: Any) -> str:
    """SHA-256 of the public key's PEM: the hint ``model-signing`` puts in its bundles too."""
    _, serialization, _ = _crypto()
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(pem).hexdigest()


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE's pre-authentication encoding: what a signature covers."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def _hash_of(key: Any) -> Any:
    hashes, _, _ = _crypto()
    return {"sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}[
        CURVES[key.curve.name]
    ]()


def envelope(statement: dict[str, Any], private_key: Any) -> dict[str, Any]:
    """``statement`` in a DSSE envelope signed by ``private_key`` (ECDSA, the curve's hash)."""
    _, _, ec = _crypto()
    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode("utf-8")
    signature = private_key.sign(pae(PAYLOAD_TYPE, payload), ec.ECDSA(_hash_of(private_key)))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [
            {
                "keyid": key_id(private_key.public_key()),
                "sig": base64.b64encode(signature).decode("ascii"),
            }
        ],
    }


# -- subjects ---------------------------------------------------------------------------------


def _files(folder: Path) -> Iterator[tuple[str, Path]]:
    """``(relative name, path)`` of each file below ``folder``, in a fixed order; a symlink or
    anything but a file or folder is refused, as the model signature refuses it."""
    stack = [("", folder)]
    while stack:
        prefix, here = stack.pop()
        with os.scandir(here) as entries:
            names = sorted(entries, key=lambda e: e.name, reverse=True)
        for entry in names:
            rel = f"{prefix}{entry.name}"
            if entry.is_symlink():
                raise Refusal(f"{folder}: holds a symlink ({rel}): not signed")
            if entry.is_dir(follow_symlinks=False):
                stack.append((rel + "/", Path(entry.path)))
            elif entry.is_file(follow_symlinks=False):
                yield rel, Path(entry.path)
            else:
                raise Refusal(f"{folder}: holds {rel}, not a file or folder")


def subjects(
    artifact: Path, shown: str, *, max_files: int = MAX_SUBJECT_FILES
) -> list[dict[str, Any]]:
    """The in-toto subjects of ``artifact`` as it is now, named from ``shown`` (its path in its
    record): the file itself, or each file of a folder, with sha256 and blake3."""
    policy = HashPolicy(sha256_max_bytes=2**62)
    if artifact.is_dir():
        found = []
        for count, (rel, path) in enumerate(_files(artifact), 1):
            if count > max_files:
                raise Mismatch(f"{artifact}: holds more than the {max_files} files attested")
            found.append((f"{shown}/{rel}", path))
        found.sort()
    else:
        found = [(shown, artifact)]
    result = []
    for name, path in found:
        digest = hash_file(path, policy)
        if digest.error or not digest.sha256 or not digest.blake3:
            raise Refusal(f"{path}: cannot be hashed: {digest.error}")
        result.append({"name": name, "digest": {"sha256": digest.sha256, "blake3": digest.blake3}})
    return result


def failed_gates(record: Record) -> list[str]:
    gates = (record.block.get("outcome") or {}).get("gates") or {}
    return sorted(
        name for name, gate in gates.items() if not (isinstance(gate, dict) and gate.get("passed"))
    )


def statement(record: Record, subject: list[dict[str, Any]], failed: list[str]) -> dict[str, Any]:
    """The run's SLSA statement (as ``export --format slsa`` makes it) about ``subject``;
    ``failed`` names the gates it was made despite."""
    made = slsa_statement(record)
    made["subject"] = subject
    if failed:
        made["predicate"]["buildDefinition"]["internalParameters"][FAILED_GATES] = failed
    return made


# -- signing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attested:
    signature: Path
    attestation: Path
    subjects: int


def output_entry(record: Record, artifact: Path) -> dict[str, Any] | None:
    """The record's output entry naming ``artifact``, or None."""
    real = os.path.realpath(artifact)
    boundary = record.boundary(outside_root=True)
    for _, entry in declared_entries(record.block["outputs"]):
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            place = record.place(entry["path"], boundary)
            if place.path is not None and str(place.path) == real:
                return entry
    return None


def vouchable(
    record: Record, artifact: Path, *, allow_failed: bool, outside_root: bool = False
) -> dict[str, Any]:
    """The artifact's output entry, if this tool can vouch for it; else ``Refusal``, why."""
    from provenance.reading.verify import QUIET, Verifier
    from provenance.records import LOST, job_state

    if record.running:
        lost = job_state(record) == LOST
        why = "lost: it wrote no final record" if lost else "still under way"
        raise Refusal(f"{record.source}: the run is {why}")
    outcome = record.block.get("outcome") or {}
    if outcome.get("status") != SUCCEEDED:
        raise Refusal(f"{record.source}: the run {outcome.get('status')}: not attested")
    failed = failed_gates(record)
    if failed and not allow_failed:
        raise Refusal(
            f"{record.source}: {'gate' if len(failed) == 1 else 'gates'} failed: "
            f"{', '.join(failed)} (--allow-failed attests it, saying so)"
        )
    entry = output_entry(record, artifact)
    if entry is None:
        raise Refusal(f"{artifact}: not an output of the run its record describes")
    verifier = Verifier(2**62, 10_000_000, None, outside_root=outside_root)
    try:
        checks = verifier.record(record, code=True)
    finally:
        verifier.progress.close()
    findings = [c for c in checks if c.status not in QUIET]
    if findings:
        first = findings[0]
        raise Refusal(
            f"{record.source}: verify finds {plural(len(findings), 'problem')}, first: "
            f"{first.status} {first.group} {first.path}"
        )
    return entry


def _model_signature(
    artifact: Path, key_path: str | os.PathLike[str], password: bytes | None
) -> bytes:
    """The bytes of ``model-signing``'s signature of ``artifact`` (a file or a folder)."""
    from model_signing import signing

    fd, tmp = tempfile.mkstemp(prefix=f".{artifact.name}.", suffix=".sig.tmp", dir=artifact.parent)
    os.close(fd)
    try:
        config = signing.Config().use_elliptic_key_signer(  # type: ignore[no-untyped-call]
            private_key=key_path,
            password=password,  # type: ignore[arg-type]  # it hands it on to cryptography: bytes
        )
        config.sign(artifact, tmp)
        return Path(tmp).read_bytes()
    except Exception as err:  # noqa: BLE001 -- the library's errors, said in one line
        raise Refusal(f"{artifact}: model signing failed: {type(err).__name__}") from None
    finally:
        os.unlink(tmp)


def attest(
    record: Record,
    artifact: Path,
    key_path: str | os.PathLike[str],
    password: bytes | None,
    *,
    allow_failed: bool = False,
    outside_root: bool = False,
) -> Attested:
    """Sign ``artifact`` and its run's statement; write ``X.sig`` and ``X.intoto.jsonl``."""
    require_extra()
    private_key = load_private_key(key_path, password)
    entry = vouchable(record, artifact, allow_failed=allow_failed, outside_root=outside_root)
    subject = subjects(artifact, entry["path"])
    made = statement(record, subject, failed_gates(record) if allow_failed else [])
    line = json.dumps(envelope(made, private_key), sort_keys=True, separators=(",", ":"))
    signature = _model_signature(artifact, key_path, password)
    sig_path = artifact.with_name(artifact.name + SIGNATURE_SUFFIX)
    att_path = artifact.with_name(artifact.name + ATTESTATION_SUFFIX)
    atomic_write(sig_path, signature, follow_symlinks=False)
    atomic_write(att_path, (line + "\n").encode("utf-8"), follow_symlinks=False)
    return Attested(sig_path, att_path, len(subject))


# -- verifying --------------------------------------------------------------------------------


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise BadAttestation(f"{what} is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadAttestation(f"{what} is not base64") from None


def read_envelope(path: Path) -> dict[str, Any]:
    """The DSSE envelope in ``path``, read as hostile input: bounded, strict, one envelope."""
    document = read_json(path, kind="DSSE envelope", limit=MAX_ATTESTATION_BYTES)
    if not isinstance(document, dict):
        raise BadAttestation(f"{path}: not a DSSE envelope (a JSON object)")
    if set(document) - {"payloadType", "payload", "signatures"}:
        raise BadAttestation(f"{path}: not a DSSE envelope: unknown fields")
    if document.get("payloadType") != PAYLOAD_TYPE:
        raise BadAttestation(f"{path}: its payloadType is not {PAYLOAD_TYPE}")
    signatures = document.get("signatures")
    if not isinstance(signatures, list) or not 1 <= len(signatures) <= MAX_SIGNATURES:
        raise BadAttestation(f"{path}: needs 1 to {MAX_SIGNATURES} signatures")
    for item in signatures:
        if not isinstance(item, dict) or not isinstance(item.get("keyid", ""), str):
            raise BadAttestation(f"{path}: a signature is malformed")
        _b64(item.get("sig"), f"{path}: a signature")
    _b64(document.get("payload"), f"{path}: the payload")
    return document


def _signed_payload(document: dict[str, Any], public_key: Any, path: Path) -> bytes:
    """The payload, once a signature by ``public_key`` over it holds; else why not."""
    from cryptography.exceptions import InvalidSignature

    _, _, ec = _crypto()
    payload = base64.b64decode(document["payload"])
    mine = key_id(public_key)
    data = pae(document["payloadType"], payload)
    for item in document["signatures"]:
        try:
            public_key.verify(base64.b64decode(item["sig"]), data, ec.ECDSA(_hash_of(public_key)))
        except InvalidSignature:
            continue
        return payload
    if any(item.get("keyid") == mine for item in document["signatures"]):
        raise Mismatch(
            f"{path}: the signature by this key does not hold: the statement was changed after "
            "it was signed"
        )
    others = ", ".join(str(item.get("keyid"))[:16] for item in document["signatures"])
    raise Mismatch(f"{path}: signed by another key (keyid {others}), not by the public key given")


def _statement_of(payload: bytes, path: Path) -> dict[str, Any]:
    why = refusal(payload, "statement", MAX_ATTESTATION_BYTES)
    if why:
        raise BadAttestation(f"{path}: {why}")
    try:
        made = strict_loads(payload.decode("utf-8"))
    except (Refused, ValueError, RecursionError, UnicodeDecodeError) as err:
        raise BadAttestation(f"{path}: its payload is not strict JSON: {err}") from None
    if depth_over(made, MAX_PAYLOAD_DEPTH):
        raise BadAttestation(f"{path}: its statement is nested too deeply")
    if not isinstance(made, dict) or made.get("_type") != STATEMENT_TYPE:
        raise BadAttestation(f"{path}: its payload is not an in-toto Statement v1")
    if made.get("predicateType") != SLSA_PREDICATE:
        raise BadAttestation(f"{path}: its predicate is not SLSA provenance v1")
    subject = made.get("subject")
    if (
        not isinstance(subject, list)
        or not subject
        or not all(
            isinstance(s, dict)
            and isinstance(s.get("name"), str)
            and isinstance(s.get("digest"), dict)
            for s in subject
        )
    ):
        raise BadAttestation(f"{path}: its subjects are malformed")
    return made


def verify(record: Record, artifact: Path, path: Path, public_key_path: str) -> int:
    """Check the attestation at ``path`` for ``artifact`` and its record: ``Mismatch`` with
    the first thing that does not hold, else the number of subjects checked."""
    require_extra()
    public_key = load_public_key(public_key_path)
    document = read_envelope(path)
    made = _statement_of(_signed_payload(document, public_key, path), path)
    entry = output_entry(record, artifact)
    if entry is None:
        raise Mismatch(f"{artifact}: not an output of the run its record describes")
    shown = entry["path"]
    named = [s["name"] for s in made["subject"]]
    if not any(n == shown or n.startswith(shown + "/") for n in named):
        raise Mismatch(
            f"{path}: the statement is for {named[0]}"
            + (f" (and {len(named) - 1} more)" if len(named) > 1 else "")
            + f", not for {shown}: an attestation of another artifact"
        )
    try:
        now = subjects(artifact, shown, max_files=len(named))
    except Refusal as err:  # what attest would not sign is, here, what no longer matches
        raise Mismatch(f"{err}".replace(": not signed", ": not what was signed")) from None
    signed = {s["name"]: s["digest"] for s in made["subject"]}
    for subject in now:
        was = signed.get(subject["name"])
        if was is None:
            raise Mismatch(f"{artifact}: {subject['name']} is not among the subjects signed")
        for algorithm, digest in subject["digest"].items():
            if was.get(algorithm) not in (None, digest):
                raise Mismatch(
                    f"{artifact}: its bytes are not those signed: {subject['name']} {algorithm} "
                    f"{str(was.get(algorithm))[:12]}… now {digest[:12]}…"
                )
        if not was.get("sha256"):
            raise Mismatch(f"{path}: {subject['name']} is signed without a sha256")
    missing = sorted(set(signed) - {s["name"] for s in now})
    if missing:
        raise Mismatch(f"{artifact}: {missing[0]} was signed but is gone")
    expected = statement(record, now, failed_gates(record))
    if made["predicate"] != expected["predicate"]:
        part = next(
            (
                k
                for k in sorted(expected["predicate"])
                if made["predicate"].get(k) != expected["predicate"][k]
            ),
            "predicate",
        )
        raise Mismatch(
            f"{path}: the statement's {part} does not match the record {record.source.name}"
        )
    return len(now)


PASSWORD_ENV = "PROVENANCE_SIGNING_PASSWORD"  # the password of the key a run signs with


def attest_outputs(sidecar: Path, outputs: list[str], key_path: str) -> list[str]:
    """Attest each of a finished run's ``outputs`` against its record at ``sidecar``: one line
    for each that could not be, saying why (never the key or its password)."""
    from provenance.records import UnreadableRecord, load

    password = os.environ.get(PASSWORD_ENV)
    problems = []
    try:
        require_extra()
        record = load(sidecar)
    except (MissingExtra, UnreadableRecord) as err:
        return [f"outputs not signed: {err}"]
    for output in dict.fromkeys(outputs):
        if not os.path.lexists(output):
            continue
        try:
            attest(
                record,
                Path(output),
                key_path,
                password.encode("utf-8") if password else None,
                outside_root=True,  # the paths are the ones this very run just measured
            )
        except (KeyError_, Refusal, Mismatch, OSError) as err:
            problems.append(f"{output}: not signed: {err}")
    return problems
