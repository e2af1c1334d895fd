"""The shipped JSON Schema: valid itself, and strict about what it accepts."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from provenance import ProvenanceError, build_run_provenance, load_schema, validate
from tests import handmade


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


class TestWhichErrorIsReported:
    """The error a command reports for an invalid record is the first in document order, the
    same under every hash seed: jsonschema checks ``additionalProperties`` entries from a set."""

    NAMES = ("m", "c", "x", "a", "q", "f")

    @staticmethod
    def _broken(names: list[str], entry: object) -> dict[str, object]:
        doc = handmade.document()
        doc["run_provenance"]["outputs"] = {name: copy.deepcopy(entry) for name in names}
        return doc

    @pytest.mark.parametrize("turn", range(len(NAMES)))
    def test_the_first_bad_entry_in_the_document_is_named(self, turn):
        names = [*self.NAMES[turn:], *self.NAMES[:turn]]
        doc = self._broken(names, {"path": "o", "exists": "yes"})
        with pytest.raises(ProvenanceError, match=f"at run_provenance/outputs/{names[0]}: "):
            validate(doc)


def _bad_enum(block: dict[str, Any]) -> str:
    entry = handmade.file_entry(Path(__file__), "o.bin")
    block["outputs"] = {"b": {**entry, "kind": "nonsense"}, "a": {**entry, "kind": "nonsense"}}
    return "run_provenance/outputs/b"


def _missing_required(block: dict[str, Any]) -> str:
    entry = handmade.file_entry(Path(__file__), "i.bin")
    del entry["exists"]
    block["inputs"] = {"zeta": dict(entry), "alpha": dict(entry), "mid": dict(entry)}
    return "run_provenance/inputs/zeta"


def _wrong_types(block: dict[str, Any]) -> str:
    block["code"] = {"z.py": 5, "y.py": True, "b.py": None}
    return "run_provenance/code/z.py"


def _additional_properties(block: dict[str, Any]) -> str:
    entry = handmade.file_entry(Path(__file__), "o.bin")
    block["outputs"] = {"y": {**entry, "note": 1}, "x": {**entry, "remark": 2}}
    return "run_provenance/outputs/y"


@pytest.mark.parametrize(
    "breaks", [_bad_enum, _missing_required, _wrong_types, _additional_properties]
)
def test_commands_report_the_same_error_under_every_hash_seed(tmp_path, breaks):
    folder = handmade.project(tmp_path / "p")
    doc = handmade.document()
    where = breaks(doc["run_provenance"])
    record = folder / "o.bin.manifest.json"
    record.write_text(json.dumps(doc, indent=2) + "\n")  # in this order: not sorted
    for argv in (["show", record], ["verify", record], ["validate", record], ["runs", folder]):
        seen = set()
        for seed in ("0", "1", "2", "3"):
            cache = tmp_path / f"cache-{argv[0]}-{seed}" / "digests.sqlite3"
            env = {"PYTHONHASHSEED": seed, "PROVENANCE_DIGEST_CACHE": str(cache)}
            done = handmade.cli_in(folder, *argv, env=env)
            assert f"not a valid provenance sidecar at {where}: " in done.stdout + done.stderr
            seen.add((done.returncode, done.stdout, done.stderr))
        assert len(seen) == 1, (argv, seen)
