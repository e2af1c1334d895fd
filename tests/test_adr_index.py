"""The decision index (docs/adr/index.md) does not drift from what the docs and the code cite.

Every ``ADR-NNNN`` or ``Research-NNNN`` named in the docs or the code has a row in the index; each
row's page exists, and every code path a row names exists. The check is run on the repository and,
to show it bites, on copies with a citation or a path made wrong.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INDEX = Path("docs/adr/index.md")
CITATION = re.compile(r"\b(?:ADR|Research)-\d{4}\b")
ROW = re.compile(
    r"^\|\s*((?:ADR|Research)-\d{4})\s*\|[^|]*\|\s*\[[^\]]*\]\(([^)#]+)[^)]*\)\s*\|(.*)\|$"
)
CODE = re.compile(r"`([^`]+)`")
# Where a citation counts: the docs, the code, the README (tests may name anything).
SCANNED = ("docs", "ai", "provenance", "pipeline", "README.md")


def cited(root: Path) -> dict[str, list[str]]:
    """Each record cited outside the index, with the files that cite it."""
    found: dict[str, list[str]] = {}
    for top in SCANNED:
        base = root / top
        files = [base] if base.is_file() else sorted(base.rglob("*"))
        for path in files:
            if path.suffix not in (".md", ".py") or path == root / INDEX:
                continue
            for name in set(CITATION.findall(path.read_text("utf-8"))):
                found.setdefault(name, []).append(path.relative_to(root).as_posix())
    return found


def check(root: Path) -> list[str]:
    """What is wrong with the index under ``root``, one line each (nothing when it is sound)."""
    problems: list[str] = []
    rows: dict[str, tuple[str, list[str]]] = {}
    for line in (root / INDEX).read_text("utf-8").splitlines():
        match = ROW.match(line)
        if match is None:
            continue
        name, page, code = match.groups()
        if name in rows:
            problems.append(f"{name}: two rows in the index")
        rows[name] = (page, CODE.findall(code))
    for name, where in sorted(cited(root).items()):
        if name not in rows:
            problems.append(f"{name}: cited in {', '.join(sorted(where))} but not in the index")
    for name, (page, paths) in sorted(rows.items()):
        if not (root / INDEX.parent / page).is_file():
            problems.append(f"{name}: its page {page} does not exist")
        if not paths:
            problems.append(f"{name}: its row names no code path")
        for path in paths:
            if not (root / path).exists():
                problems.append(f"{name}: its row names {path}, which does not exist")
    return problems


def test_the_index_has_a_row_for_every_cited_record_and_every_path_exists():
    assert check(ROOT) == []
    found = cited(ROOT)
    for name in ("ADR-0661", "ADR-0668", "ADR-0669", "ADR-0670", "Research-0661"):
        assert name in found  # the records the docs cite are the ones the index must hold


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The parts of the repository the check reads, copied, to be made wrong."""
    for top in SCANNED:
        source = ROOT / top
        if source.is_file():
            shutil.copy(source, tmp_path / top)
        else:
            shutil.copytree(source, tmp_path / top, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_a_record_cited_in_the_docs_but_missing_from_the_index_is_drift(copy):
    page = copy / "docs/pipeline.md"
    page.write_text(page.read_text("utf-8") + "\nSee ADR-0999.\n", "utf-8")
    assert check(copy) == ["ADR-0999: cited in docs/pipeline.md but not in the index"]


def test_a_record_cited_in_the_code_but_missing_from_the_index_is_drift(copy):
    script = copy / "ai/scripts/merge_corpora.py"
    script.write_text(script.read_text("utf-8") + "# Research-0700\n", "utf-8")
    assert check(copy) == [
        "Research-0700: cited in ai/scripts/merge_corpora.py but not in the index"
    ]


def test_an_index_row_naming_a_path_that_does_not_exist_is_drift(copy):
    (copy / "ai/scripts/merge_corpora.py").unlink()
    assert check(copy) == [
        "ADR-0669: its row names ai/scripts/merge_corpora.py, which does not exist"
    ]


def test_an_index_row_whose_page_is_gone_is_drift(copy):
    (copy / "docs/adr/0002-hashing-at-scale.md").unlink()
    assert check(copy) == ["ADR-0002: its page 0002-hashing-at-scale.md does not exist"]
