"""``export --format prov``: W3C PROV-JSON that the prov library reads back."""

from __future__ import annotations

import pytest

from tests.conftest import project_with, run_python, run_with_env


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = project_with(tmp_path_factory.mktemp("prov") / "proj", "onnx_export")
    (folder / "data with space.txt").write_text("training data\n")
    proc = run_with_env(
        folder / "onnx_export.py",
        "--data",
        "data with space.txt",
        "--out",
        "a.onnx",
        cwd=folder,
        env={},
    )
    assert proc.returncode == 0, proc.stderr
    return folder


def exported(project):
    proc = run_python("-m", "provenance", "export", "a.onnx", "--format", "prov", cwd=project)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_prov_reads_back_the_run_its_inputs_outputs_and_entrypoint(project):
    from prov.model import ProvActivity, ProvDocument, ProvEntity, ProvGeneration, ProvUsage

    document = ProvDocument.deserialize(content=exported(project), format="json")
    records = document.get_records()
    labels = {
        str(r.get_attribute("prov:label").pop()) for r in records if isinstance(r, ProvEntity)
    }
    assert labels == {"a.onnx", "data with space.txt"}
    assert len([r for r in records if isinstance(r, ProvActivity)]) == 1
    (generated,) = [r for r in records if isinstance(r, ProvGeneration)]
    (used,) = [r for r in records if isinstance(r, ProvUsage)]
    assert str(generated.args[0]).endswith("a.onnx")
    assert str(used.args[1]).endswith("data%20with%20space.txt")


def test_the_same_record_exports_to_the_same_bytes(project):
    assert exported(project) == exported(project)


def test_without_the_prov_library_it_says_which_extra(project):
    block = (
        "import sys\nsys.modules['prov'] = None\nfrom provenance.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    proc = run_python("-c", block, "export", "a.onnx", "--format", "prov", cwd=project)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "provenance: export --format prov needs the sign extra: "
        "pip install 'provenance-sidecar[sign]'"
    ]
