"""The registry validation report (ADR-0661): every check's verdict, hostile registries too."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from ai.common.files import InputError
from ai.release.registry import read_registry
from tests.conftest import block_of, load_sidecar, run_script, sidecar_of

STATIC = "konvid_mos_head.int8_static"
STATIC_ID = "konvid_mos_head_int8_static"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_demo_registries_pass_every_check_and_the_report_says_so(demo):
    for registry, report_name in (("registry.json", "registry.json"),
                                  ("int8_registry.json", "int8_registry.json")):  # fmt: skip
        path = demo / "models" / registry
        report_path = demo / "reports/registry" / report_name
        report = json.loads(report_path.read_text())
        entries = json.loads(path.read_text())["models"]
        assert report["verdict"] == "PASS"
        assert [m["id"] for m in report["models"]] == [e["id"] for e in entries]
        for model in report["models"]:
            assert {c["verdict"] for c in model["checks"].values()} == {"pass"}
        block = block_of(report_path)
        assert block["inputs"]["registry"]["sha256"] == sha256(path)
        read = {Path(f["path"]).name: f["sha256"] for f in block["inputs"]["files"]}
        for entry in entries:
            assert read[entry["onnx"]] == sha256(demo / "models" / entry["onnx"]) == entry["sha256"]
            assert entry["sidecar"] in read
        assert block["outcome"]["gates"]["registry"]["passed"] is True


@pytest.fixture(scope="module")
def hostile(demo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One registry with one good entry and every kind of bad one, validated once."""
    top = tmp_path_factory.mktemp("hostile")
    folder = top / "models"
    folder.mkdir()
    for name in (f"{STATIC}.onnx", f"{STATIC}.json"):
        (folder / name).write_bytes((demo / "models" / name).read_bytes())
    outside = top / "outside.onnx"
    outside.write_bytes(b"not yours")
    (folder / "link.onnx").symlink_to(outside)
    (folder / "subdir").mkdir()
    (folder / "nan.json").write_text('{"id": NaN}')
    with (folder / "huge.json").open("wb") as handle:
        handle.truncate(5 * 2**20)  # sparse: large to the reader, cheap to the disk
    good = {"id": STATIC_ID, "kind": "mos_head", "onnx": f"{STATIC}.onnx",
            "sha256": sha256(folder / f"{STATIC}.onnx"), "sidecar": f"{STATIC}.json"}  # fmt: skip
    models = [
        good,
        good,  # the same id twice
        {**good, "id": "wrong_digest", "sha256": "0" * 64},
        {**good, "id": "missing", "onnx": "missing.onnx"},
        {**good, "id": "escapes", "onnx": "../outside.onnx"},
        {**good, "id": "absolute", "onnx": "/etc/hostname"},
        {**good, "id": "linked", "onnx": "link.onnx"},
        {**good, "id": "no_sidecar", "sidecar": "nope.json"},
        "just a string",
        {**good, "id": "\x1b[31mred\n"},
        {**good, "id": "a_folder", "onnx": "subdir"},
        {**good, "id": "nan_sidecar", "sidecar": "nan.json"},
        {**good, "id": "huge_sidecar", "sidecar": "huge.json"},
    ]
    registry = folder / "registry.json"
    registry.write_text(json.dumps({"schema_version": 1, "models": models}))
    report = top / "report.json"
    proc = run_script("validate_model_registry", "--registry", registry, "--out-json", report)
    return {"proc": proc, "report": report, "top": top, "folder": folder}


def verdicts(report: dict, index: int) -> dict[str, str]:
    return {name: c["verdict"] for name, c in report["models"][index]["checks"].items()}


def detail(report: dict, index: int, check: str) -> str:
    return str(report["models"][index]["checks"][check]["detail"])


def test_a_bad_registry_is_exit_1_with_each_checks_verdict_in_the_report(hostile):
    proc = hostile["proc"]
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads(Path(hostile["report"]).read_text())
    assert report["verdict"] == "FAIL"
    assert report["checks"]["unique_ids"]["verdict"] == "fail"
    assert STATIC_ID in report["checks"]["unique_ids"]["detail"]
    assert report["checks"]["schema_version"]["verdict"] == "pass"
    assert set(verdicts(report, 0).values()) == {"pass"}
    assert verdicts(report, 2)["sha256"] == "fail"
    assert verdicts(report, 3) == {"id": "pass", "onnx": "fail", "sha256": "skipped",
                                   "sidecar": "pass", "sidecar_matches": "fail"}  # fmt: skip
    assert "no such file" in detail(report, 3, "onnx")
    assert "escapes the registry's folder" in detail(report, 4, "onnx")
    assert "absolute path" in detail(report, 5, "onnx")
    assert "through a symlink" in detail(report, 6, "onnx")
    assert verdicts(report, 7)["sidecar"] == "fail"
    assert report["models"][8]["checks"] == {
        "entry": {"verdict": "fail", "detail": "not an object: 'just a string'"}
    }
    assert verdicts(report, 9)["id"] == "fail"
    assert "not a regular file" in detail(report, 10, "onnx")
    assert "not strict JSON" in detail(report, 11, "sidecar")
    assert "over 4 MiB" in detail(report, 12, "sidecar")
    assert report["summary"] == {"models": 13, "passed": 2, "failed": 11,
                                 "failed_registry_checks": ["unique_ids"]}  # fmt: skip
    # The report quotes the registry, never the machine's paths to it.
    findings = json.dumps({k: v for k, v in report.items() if k != "run_provenance"})
    assert str(hostile["top"]) not in findings


def test_the_bad_registry_record_holds_the_failed_gate_and_only_the_files_inside(hostile):
    record = load_sidecar(sidecar_of(Path(hostile["report"])))
    block = record["run_provenance"]
    assert (block["outcome"]["exit_code"], block["outcome"]["gates"]["registry"]["passed"]) == (
        1,
        False,
    )
    read = {Path(f["path"]).name for f in block["inputs"]["files"]}
    assert read == {f"{STATIC}.onnx", f"{STATIC}.json"}
    assert record["summary"]["failed"] == 11


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"schema_version": 1, "models": [', "not JSON"),
        (b"[]", "expected a JSON object"),
        (None, "over 8 MiB: not a model registry"),
    ],
)
def test_an_unreadable_registry_is_exit_2_one_line_and_no_report(tmp_path, content, says):
    registry = tmp_path / "registry.json"
    if content is None:
        with registry.open("wb") as handle:
            handle.truncate(9 * 2**20)
    else:
        registry.write_bytes(content)
    report = tmp_path / "report.json"
    proc = run_script("validate_model_registry", "--registry", registry, "--out-json", report)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert says in proc.stderr
    assert not report.exists()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b'{"models": [], "models": []}', "duplicate key"),
        (b'{"schema_version": Infinity}', "not strict JSON"),
        (b"[" * 200 + b"]" * 200, "nested"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_hostile_registry_json_is_an_input_error(tmp_path, content, says):
    registry = tmp_path / "registry.json"
    registry.write_bytes(content)
    with pytest.raises(InputError, match=says):
        read_registry(registry)


def test_a_registry_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "registry.json"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        read_registry(fifo)
