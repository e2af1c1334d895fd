"""The argparse adapter's part in the record: the config file an option names (``config=``)."""

from __future__ import annotations

import pytest

from tests.conftest import digests_of, load_sidecar, project_with, run_with_env

TOKEN = "tok-3f9a2c71e5d84b06"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    folder = project_with(tmp_path_factory.mktemp("argparse"), "argparse_config")
    (folder / "fit.json").write_text('{"epochs": 5}\n')
    return folder


def test_the_named_config_file_is_hashed_and_the_args_are_what_it_resolved(project):
    proc = run_with_env(
        project / "argparse_config.py",
        *("--config", "fit.json", "--out", "m.txt", "--api-token", TOKEN),
        cwd=project,
        env={},
    )
    assert proc.returncode == 0, proc.stderr
    block = load_sidecar(project / "m.txt.manifest.json")["run_provenance"]
    [entry] = block["config"]["files"]
    assert entry["path"] == "fit.json"
    assert {k: entry[k] for k in ("size_bytes", "sha256", "blake3")} == digests_of(
        project / "fit.json"
    )
    assert block["config"]["resolved"] == {"epochs": 5}  # the file's own content
    assert block["args"]["api_token"] == "<redacted>"
    assert "command" not in block
    assert TOKEN not in (project / "m.txt.manifest.json").read_text()


def test_without_the_option_there_is_no_config(project):
    proc = run_with_env(project / "argparse_config.py", "--out", "n.txt", cwd=project, env={})
    assert proc.returncode == 0, proc.stderr
    block = load_sidecar(project / "n.txt.manifest.json")["run_provenance"]
    assert "config" not in block


def test_a_config_file_it_cannot_read_leaves_the_args_as_the_config(project):
    (project / "fit.conf").write_text("epochs = 5\n")
    proc = run_with_env(
        project / "argparse_config.py",
        "--config",
        "fit.conf",
        "--out",
        "c.txt",
        cwd=project,
        env={},
    )
    assert proc.returncode != 0  # the script itself cannot parse it as JSON
    block = load_sidecar(project / "c.txt.manifest.json")["run_provenance"]
    assert block["config"]["files"][0]["path"] == "fit.conf"
    assert block["config"]["resolved"] == block["args"]
