"""A record as an in-toto Statement v1 whose predicate is SLSA Provenance v1 (what ``export
--format slsa`` prints and ``attest`` signs), and what every export of a record starts from:
its block with secrets hidden, and a run id the same record always gives."""

from __future__ import annotations

import base64
import uuid
from typing import Any

from provenance import __version__
from provenance.record.redact import SecretMatcher, redact_block, redact_text
from provenance.record.sidecar import canonical_bytes
from provenance.records import Record, declared_entries

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
SLSA_PREDICATE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:provenance:build-type:recorded-run:v1"
BUILDER_ID = "urn:provenance:builder:recorded-run"
PRODUCER = f"urn:provenance:producer:{__version__}"
RUN_NAMESPACE = uuid.UUID("5c1c3c2e-8f0e-4c61-9a53-3d4f4b1e6a10")  # this tool's runId namespace
TREE_DIGEST = "provenanceTreeV1"  # a folder's provenance.tree/v1 digest, not a digest of bytes


def _redacted(value: Any) -> Any:
    """``value`` with every string in it passed through ``redact_text`` (shapes)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


def redacted_block(record: Record) -> dict[str, Any]:
    """The record's block with secrets hidden as a new record's are (by option and key name,
    shape and value): an older record may hold some."""
    return redact_block(record.block, SecretMatcher())


def run_id(record: Record) -> str:
    """A stable UUID for the run: the same record always gives the same one."""
    return str(uuid.uuid5(RUN_NAMESPACE, canonical_bytes(record.document).decode("utf-8")))


def _digests(entry: dict[str, Any]) -> dict[str, str]:
    if entry.get("kind") == "directory":
        return {TREE_DIGEST: entry["blake3"]} if entry.get("blake3") else {}
    return {k: entry[k] for k in ("sha256", "blake3") if entry.get(k)}


def _descriptor(name: str, entry: dict[str, Any], role: str) -> dict[str, Any] | None:
    if not isinstance(entry, dict) or not entry.get("exists") or entry.get("embedded_here"):
        return None
    digest = _digests(entry)
    if not digest:
        return None
    return {
        "name": entry["path"],
        "digest": digest,
        "annotations": {"role": role, "declared_as": name, "kind": entry.get("kind")},
    }


def slsa_statement(record: Record) -> dict[str, Any]:
    block = redacted_block(record)
    subjects = []
    for name, entry in declared_entries(block["outputs"]):
        described = _descriptor(name, entry, "output")
        if described is not None:
            described.pop("annotations")
            subjects.append(described)
    dependencies = []
    for key in ("entrypoint", "shared_trainer"):
        code = block.get(key)
        if isinstance(code, dict):
            digest = {k: code[k] for k in ("sha256", "blake3") if code.get(k)}
            dependencies.append(
                {"name": code["path"], "digest": digest, "annotations": {"role": key}}
            )
    named = {d["name"] for d in dependencies}
    for path, sha256 in sorted(block["code"].items()):
        if path in named:
            continue  # the entrypoint is also among the imported files
        dependencies.append(
            {"name": path, "digest": {"sha256": sha256}, "annotations": {"role": "code"}}
        )
    for name, entry in declared_entries(block["inputs"]):
        described = _descriptor(name, entry, "input")
        if described is not None:
            dependencies.append(described)
    outcome = _redacted(block.get("outcome"))
    byproducts = []
    if outcome is not None:
        byproducts.append(
            {
                "name": "outcome",
                "mediaType": "application/json",
                "content": base64.b64encode(canonical_bytes(outcome)).decode("ascii"),
            }
        )
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": SLSA_PREDICATE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "entrypoint": block["entrypoint"]["path"],
                    "argv": _redacted(block["argv"]),
                    "args": _redacted(block["args"]),
                },
                "internalParameters": {"hash_policy": block["hash_policy"]},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": BUILDER_ID, "version": {"provenance": __version__}},
                "metadata": {"invocationId": run_id(record)},
                "byproducts": byproducts,
            },
        },
    }
