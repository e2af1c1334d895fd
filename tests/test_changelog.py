"""The version the package says it is and the CHANGELOG tell the same story."""

from __future__ import annotations

import re

import provenance
from tests.conftest import ROOT, run_python

CHANGELOG = (ROOT / "CHANGELOG.md").read_text("utf-8")
RELEASES = dict(re.findall(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", CHANGELOG, re.M))


def test_a_release_has_its_dated_section_and_work_since_is_a_dev_version():
    version = provenance.__version__
    release = re.fullmatch(r"(\d+\.\d+\.\d+)(\.dev\d+)?", version)
    assert release, f"{version} is neither a release nor a dev version"
    base, dev = release.groups()
    if dev:  # the work towards `base`: not released yet, described under [Unreleased]
        assert base not in RELEASES
        assert "## [Unreleased]" in CHANGELOG
    else:
        assert base in RELEASES, f"{version} is released but CHANGELOG.md has no section for it"


def test_the_command_says_the_same_version():
    done = run_python("-m", "provenance", "--version")
    assert done.stdout.strip() == f"provenance {provenance.__version__}"
