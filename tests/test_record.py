"""The functional form, build_run_provenance, and the block pipeline."""

from __future__ import annotations

import argparse

from provenance import build_run_provenance, load_schema
from provenance.record.build import PIPELINE


def test_functional_form(tmp_path):
    data = tmp_path / "in.csv"
    data.write_text("a\n")
    block = build_run_provenance(
        entrypoint=__file__,
        argv=["--in", str(data), "--api-key", "K"],
        args=argparse.Namespace(inp=data, api_key="K", out=None),
        inputs={"data": data},
        outputs={"report": tmp_path / "r.json", "extra": None},
        exit_code=1,
        gates={"plcc": {"passed": False}},
    )
    assert block["schema"] == "provenance.run/v1"
    assert block["entrypoint"]["path"] == "tests/test_record.py"
    assert block["inputs"]["data"]["size_bytes"] == 2
    assert "changed_during_run" not in block["inputs"]["data"], "no stat was taken earlier"
    assert block["outputs"] == {
        "report": {"path": (tmp_path / "r.json").as_posix(), "exists": False},
        "extra": None,
    }
    assert block["args"]["api_key"] == "<redacted>"
    assert block["argv"][-1] == "<redacted>"
    assert block["outcome"]["status"] == "failed"


def test_without_exit_code_there_is_no_outcome():
    assert "outcome" not in build_run_provenance(entrypoint=__file__)


def test_every_block_field_has_a_step_and_the_schema_knows_it():
    block = build_run_provenance(
        entrypoint=__file__, shared_trainer=__file__, exit_code=0, environment=True, volatile=True
    )
    run_schema = load_schema()["$defs"]["run"]
    # command and config appear only where a framework resolved them (tests/test_capture_*.py),
    # launch only in a job of several ranks (tests/test_ranks.py), left_out only in a record
    # that had to leave something out to be readable (tests/test_limits.py), revision only in
    # a git work tree (tests/test_revision.py), seeds only where the script set one
    # (tests/test_capture_seeds.py), declaration_errors only when a declaration failed at exit
    # (tests/test_declarations.py)
    optional = {"command", "config", "declaration_errors", "launch", "left_out", "revision"}
    optional |= {"seeds", "seeds_left_out", "recorded_by"}
    assert set(block) | optional == set(run_schema["properties"])
    assert len(PIPELINE) == 13


def test_a_declared_folder_is_walked_once_at_exit(tmp_path, monkeypatch):
    """Hashing the folder and checking it for change share one walk of its entries."""
    from provenance.measure import hashing, paths
    from provenance.measure.paths import Declared, fingerprint
    from provenance.record.build import RunFacts, build_block

    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    for i in range(5):
        (folder / "sub" / f"{i}.json").write_text(str(i))
    before = fingerprint(str(folder))
    (folder / "sub" / "5.json").write_text("new")
    walks = []
    real = hashing.walk_tree

    def counted(top):
        walks.append(top)
        return real(top)

    monkeypatch.setattr(hashing, "walk_tree", counted)
    monkeypatch.setattr(paths, "walk_tree", counted)
    facts = RunFacts(
        entrypoint=__file__,
        root=None,
        argv=[],
        args={},
        inputs={},
        outputs={"corpus": Declared((str(folder),), many=False)},
        baselines={str(folder): before},
    )
    block = build_block(facts)
    assert block["outputs"]["corpus"]["written_by_run"] is True
    assert block["outputs"]["corpus"]["file_count"] == 6
    assert len(walks) == 1
