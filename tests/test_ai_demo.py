"""The demo pipeline: every sidecar valid, byte-identical when run again, lineage intact."""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path

from ai.demo import steps
from provenance import validate
from tests.conftest import DEMO_TIMEOUT, block_of, run_python


def sidecars(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.manifest*.json"))}


def artifacts(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file()
        and not {"sample", "keys"} & set(p.relative_to(out).parts)
        and not p.name.endswith(UNSIGNED)
    }


# The demo signs with a key it makes each time, and ECDSA signatures differ even under one key:
# the keys and signatures are the files a second demo does not write byte for byte.
UNSIGNED = (".sig", ".intoto.jsonl")


def assert_same(before: dict[str, bytes], after: dict[str, bytes]) -> None:
    """Equal file sets and bytes; on a difference, the diff of each file that differs."""
    assert sorted(before) == sorted(after)
    differing = [name for name in before if before[name] != after[name]]
    report = []
    for name in differing:
        old, new = (
            before[name].decode("utf-8", "replace").splitlines(),
            after[name].decode("utf-8", "replace").splitlines(),
        )
        report += [name, *difflib.unified_diff(old, new, lineterm="", n=1)][:60]
    assert not differing, "\n".join(report)


def test_every_step_left_a_valid_sidecar_of_a_successful_run(demo):
    chain = steps(str(demo))
    for step in chain:
        document = json.loads(Path(step.sidecar_path).read_text())
        validate(document)
        assert document["run_provenance"]["outcome"]["status"] == "succeeded", step.script
    assert len(sidecars(demo)) == len(chain)  # nothing failed, so no side records


def test_running_the_demo_again_gives_byte_identical_files(demo):
    before_sidecars, before_artifacts = sidecars(demo), artifacts(demo)
    proc = run_python("-m", "ai.demo", "--out", demo, timeout=DEMO_TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert_same(before_sidecars, sidecars(demo))
    assert_same(before_artifacts, artifacts(demo))
    lines = proc.stdout.splitlines()
    chain = steps(str(demo))
    assert lines[0].split() == ["script", "artifact", "sidecar", "outcome", "gates"]
    for step, line in zip(chain, lines[1:], strict=False):
        assert line.split()[:4] == [step.script, step.artifact, Path(step.sidecar_path).name,
                                    "succeeded"]  # fmt: skip
    assert f"{len(chain)} runs, every sidecar valid" in proc.stdout


def test_the_demo_refuses_an_out_folder_it_cannot_quote():
    proc = run_python("-m", "ai.demo", "--out", "has space")
    assert proc.returncode == 2
    assert "--out must not contain whitespace" in proc.stderr


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_model_leads_back_to_the_raw_sample(demo):
    """Follow the evidence: model -> tables -> aggregated corpus -> the sample's MOS shard."""
    model = block_of(demo / "models/konvid_seed0.npz")
    table = demo / "tables/k150k_enriched.parquet"
    assert model["inputs"]["table"]["sha256"] == sha256(table)
    enriched = block_of(table)
    assert enriched["outputs"]["table"]["sha256"] == sha256(table)
    extracted_path = demo / "tables/k150k.parquet"
    assert enriched["inputs"]["table"]["sha256"] == sha256(extracted_path)
    extracted = block_of(extracted_path)
    corpus = demo / "corpora/mos_aggregated.jsonl"
    assert extracted["inputs"]["scores"]["sha256"] == sha256(corpus)
    aggregated = block_of(corpus)
    assert aggregated["outputs"]["output"]["sha256"] == sha256(corpus)
    shards = {Path(e["path"]).name: e for e in aggregated["inputs"]["corpora"]}
    shard = shards["konvid-150k.jsonl"]
    assert shard["sha256"] == sha256(demo / "sample/mos/konvid-150k.jsonl")
    generated = block_of(demo / "sample")
    assert shard["path"].startswith(generated["outputs"]["sample"]["path"] + "/")
    assert generated["outputs"]["sample"]["kind"] == "directory"
    export = block_of(demo / "models/konvid_mos_head.onnx")
    assert export["inputs"]["checkpoint"]["sha256"] == model["outputs"]["model"]["sha256"]
