"""The shipped JSON Schema: valid itself, and strict about what it accepts."""

from __future__ import annotations

import copy

import jsonschema
import pytest

from provenance import ProvenanceError, build_run_provenance, load_schema, validate


@pytest.fixture
def document(tmp_path):
    out = tmp_path / "o.bin"
    out.write_bytes(b"123")
    block = build_run_provenance(entrypoint=__file__, outputs={"o": out}, exit_code=0)
    return {"schema": "provenance.manifest/v1", "rows": 3, "run_provenance": block}


def test_schema_is_valid_draft_2020_12():
    jsonschema.Draft202012Validator.check_schema(load_schema())


def test_a_real_block_validates(document):
    validate(document)


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d.pop("schema"), "top level"),
        (lambda d: d["run_provenance"].pop("outcome"), "top level"),
        (lambda d: d["run_provenance"]["outputs"]["o"].update(blake3=None), "run_provenance"),
        (lambda d: d["run_provenance"]["outputs"]["o"].update(sha256="XYZ"), "run_provenance"),
        (lambda d: d["run_provenance"].update(host="box"), "top level"),
        (lambda d: d["run_provenance"]["outcome"].update(status="ok"), "run_provenance"),
        (lambda d: d["run_provenance"]["argv"].append(3), "run_provenance"),
    ],
)
def test_rejections(document, mutate, where):
    broken = copy.deepcopy(document)
    mutate(broken)
    with pytest.raises(ProvenanceError, match="not a valid provenance sidecar"):
        validate(broken)


def test_a_file_entry_may_lack_digests_only_with_an_error(document):
    entry = document["run_provenance"]["outputs"]["o"]
    entry.update(blake3=None, sha256=None, error="changed while hashing")
    validate(document)
