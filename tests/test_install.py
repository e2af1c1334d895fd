"""Installs as users make them: a wheel and an sdist built from the checkout, each put into a
fresh environment outside it and used from another folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import provenance
from tests.conftest import ROOT, load_sidecar, sidecar_of

DISTRIBUTION = "provenance-sidecar"
# What a checkout holds beside its sources; a build must not see it (a stale build/ or
# *.egg-info would carry old files into the artifacts and hide a packaging fault).
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", ".tox", "build", "dist", "runs", "site", "*.egg-info", ".*_cache",
    ".hypothesis", "__pycache__",
)  # fmt: skip

SCRIPT = '''\
"""Count the rows of a table."""

import argparse
from pathlib import Path
from typing import Any

from provenance import current_run, recorded_run


@recorded_run(inputs={"table": "table"}, outputs={"report": "out"})
def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("table", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = len(args.table.read_text().splitlines())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"{rows}\\n")
    current_run().gate("rows", rows > 0, rows=rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
'''

# Run inside an installed environment: what it imports and what the installer recorded.
PROBE = """\
import importlib.metadata, json, provenance
dist = importlib.metadata.distribution("provenance-sidecar")
print(json.dumps({
    "module": provenance.__file__,
    "version": provenance.__version__,
    "metadata_version": dist.version,
    "location": str(dist.locate_file("")),
    "files": sorted(str(f) for f in dist.files or ()),
}))
"""


@dataclass(frozen=True)
class Installed:
    venv: Path
    workdir: Path  # a folder that is neither the checkout nor the environment
    probe: dict[str, Any]  # what PROBE printed there

    def run(self, program: str, *argv: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.venv / "bin" / program), *map(str, argv)],
            cwd=self.workdir,
            env=_clean_environment(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def _clean_environment() -> dict[str, str]:
    """This process's environment without what would let the checkout or .venv leak in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"}
    }
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _check(argv: list[object]) -> None:
    proc = subprocess.run(
        [str(a) for a in argv],
        env=_clean_environment(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"{argv} failed:\n{proc.stdout}\n{proc.stderr}"


def _install(artifact: Path, home: Path) -> Installed:
    """A fresh environment holding ``artifact`` and its dependencies, in one pip call.

    The environment gets no pip of its own: this one's installs into it, which saves seconds.
    """
    venv = home / "venv"
    _check([sys.executable, "-m", "venv", "--without-pip", venv])
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python"]
    _check([*pip, "install", "--quiet", "--disable-pip-version-check", artifact])
    workdir = home / "elsewhere"
    workdir.mkdir()
    installed = Installed(venv, workdir, {})
    proc = installed.run("python", "-c", PROBE)
    assert proc.returncode == 0, proc.stderr
    installed.probe.update(json.loads(proc.stdout))
    return installed


@pytest.fixture(scope="module")
def installs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Installed]:
    """The checkout built once into a wheel and an sdist, each installed into its own
    environment (both at once: the builds and installs are most of this module's time)."""
    top = tmp_path_factory.mktemp("install")
    assert not top.is_relative_to(ROOT), "the environments must live outside the checkout"
    source = top / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    dist = top / "dist"
    build = [sys.executable, "-m", "build", "--no-isolation"]
    _check([*build, "--sdist", "--wheel", "--outdir", dist, source])
    artifacts = {"wheel": _one(dist, "*.whl"), "sdist": _one(dist, "*.tar.gz")}
    homes = {kind: top / kind for kind in artifacts}
    for home in homes.values():
        home.mkdir()
    with ThreadPoolExecutor(max_workers=len(artifacts)) as pool:
        futures = {k: pool.submit(_install, artifacts[k], homes[k]) for k in artifacts}
        return {kind: future.result() for kind, future in futures.items()}


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {folder}, found {found}"
    return found[0]


@pytest.fixture(params=["wheel", "sdist"])
def installed(request: pytest.FixtureRequest, installs: dict[str, Installed]) -> Installed:
    return installs[request.param]


class TestInstalledPackage:
    def test_imported_from_the_environment_not_the_checkout(self, installed):
        module = Path(str(installed.probe["module"]))
        assert module.is_relative_to(installed.venv)

    def test_every_subpackage_the_schema_and_py_typed_are_installed(self, installed):
        probe = installed.probe
        files = {Path(str(f)) for f in probe["files"]}
        location = Path(str(probe["location"]))
        assert all((location / f).is_file() for f in files if f.parts[0] != "..")
        package = ROOT / "provenance"
        expected = {
            Path("provenance", "py.typed"),
            *(p.relative_to(ROOT) for p in package.glob("commands/*.py")),
            *(p.relative_to(ROOT) for p in package.glob("capture/*.py")),
            *(p.relative_to(ROOT) for p in package.glob("schemas/*.json")),
            # the report's templates and its bundled layout library, with its license
            *(p.relative_to(ROOT) for p in package.glob("emit/report/*") if p.is_file()),
        }
        assert Path("provenance/emit/report/dagre.LICENSE") in expected
        assert len(expected) > 3
        assert expected <= files

    def test_only_provenance_goes_into_site_packages(self, installed):
        files = {Path(str(f)) for f in installed.probe["files"]}
        top_level = {
            f.parts[0]
            for f in files
            if f.parts[0] != ".." and not f.parts[0].endswith(".dist-info")
        }
        assert top_level == {"provenance"}, "ai/ and tests/ belong to the checkout, not the wheel"
        # vmaf-train is the pipeline's own distribution's: here it could only fail to import ai
        assert not (installed.venv / "bin" / "vmaf-train").exists()
        assert (installed.venv / "bin" / "provenance").is_file()

    def test_version_agrees_with_the_metadata(self, installed):
        probe = installed.probe
        assert probe["version"] == probe["metadata_version"] == provenance.__version__
        proc = installed.run("provenance", "--version")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"provenance {provenance.__version__}"


class TestInstalledCommand:
    def test_help_lists_the_subcommands(self, installed):
        proc = installed.run("provenance", "--help")
        assert proc.returncode == 0, proc.stderr
        for command in ("show", "verify", "diff", "lineage", "replay", "schema", "validate"):
            assert command in proc.stdout

    def test_schema_is_the_shipped_one(self, installed):
        proc = installed.run("provenance", "schema")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == provenance.load_schema()

    def test_a_decorated_script_gets_a_sidecar_that_validates_and_shows(self, installed):
        project = installed.workdir.parent / "project"
        project.mkdir(exist_ok=True)
        (project / "pyproject.toml").write_text('[project]\nname = "rows"\nversion = "0"\n')
        (project / "count_rows.py").write_text(SCRIPT)
        table = project / "table.csv"
        table.write_text("a,1\nb,2\n")
        report = project / "out" / "rows.txt"
        proc = installed.run("python", project / "count_rows.py", table, "--out", report)
        assert proc.returncode == 0, proc.stderr

        block = load_sidecar(sidecar_of(report))["run_provenance"]
        assert block["entrypoint"]["path"] == "count_rows.py"
        assert list(block["code"]) == ["count_rows.py"], "the installed package is not project code"
        assert block["outcome"]["status"] == "succeeded"

        checked = installed.run("provenance", "validate", report)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert checked.stdout.strip().endswith(": valid")
        shown = installed.run("provenance", "show", report)
        assert shown.returncode == 0, shown.stderr
        assert "count_rows.py" in shown.stdout
        assert "out/rows.txt" in shown.stdout


def test_the_pipeline_distribution_lists_every_ai_package() -> None:
    """A folder of ai/ missing from pipeline/pyproject.toml would be left out of its install."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pipeline" / "pyproject.toml").read_text())["tool"]["setuptools"][
            "packages"
        ]
    )
    found = {
        ".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "ai").rglob("__init__.py")
    }
    assert listed == found
