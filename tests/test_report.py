"""provenance report --html: the site of real recorded runs, as a browser shows it.

The pages are loaded from disk by headless Chromium (Debian's ``chromium``), which runs their
scripts: --dump-dom gives the DOM after the filter and the graph's layout ran.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from provenance.emit.report import MARKER, MARKER_TEXT
from tests.conftest import ROOT, default_signals, project_with
from tests.handmade import cli_in, run_in
from tests.test_lost_runs import finish, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)
HOSTILE_NAME = "models/<img src=x onerror=alert(1)>.txt"
HOSTILE_NOTE = (
    '</script><script>document.title="PWNED"</script><svg onload=alert(1)>'
    "<a href=javascript:alert(1)>x</a></style><style>body{display:none}</style>"
)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose real runs are a prep stage, two trainings, a failed one and one whose
    argv, recorded value and output path hold markup."""
    folder = project_with(tmp_path_factory.mktemp("report") / "proj", "report_stage")
    for name in ("prep.py", "train.py"):
        shutil.copy(folder / "report_stage.py", folder / name)
    (folder / "report_stage.py").unlink()
    (folder / "raw.csv").write_text("a,b\n1,2\n")
    runs = [
        ("prep.py", "--data", "raw.csv", "--out", "data/table.csv"),
        ("train.py", "--data", "data/table.csv", "--out", "models/m3.txt", "--epochs", "3"),
        ("train.py", "--data", "data/table.csv", "--out", "models/m5.txt", "--epochs", "5"),
        ("train.py", "--data", "data/table.csv", "--out", "models/bad.txt", "--fail"),
        ("train.py", "--data", "data/table.csv", "--out", HOSTILE_NAME, "--note", HOSTILE_NOTE),
    ]
    for argv in runs:
        proc = run_in(folder, *argv)
        assert proc.returncode == (1 if "--fail" in argv else 0), proc.stderr
    return folder


@pytest.fixture
def own_copy(pipeline: Path, tmp_path: Path) -> Path:
    """The pipeline's project copied for one test to change (without a site written in it)."""
    copy = tmp_path / "proj"
    shutil.copytree(pipeline, copy, ignore=shutil.ignore_patterns("site"))
    return copy


@pytest.fixture(scope="module")
def site(pipeline: Path) -> Path:
    proc = cli_in(pipeline, "report", ".", "--html", "site")
    assert proc.returncode == 0, proc.stderr
    assert "5 runs" in proc.stdout
    return pipeline / "site"


class _Dom(HTMLParser):
    """The elements of a page (tag and attributes), and its text."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def having(self, tag: str, **wanted: str) -> list[dict[str, str | None]]:
        return [
            attrs
            for name, attrs in self.elements
            if name == tag and all(wanted[k] in (attrs.get(k) or "").split() for k in wanted)
        ]


def parse(html: str) -> _Dom:
    dom = _Dom()
    dom.feed(html)
    return dom


def browse(
    page: Path, tmp_path: Path, fragment: str = "", *, screenshot: Path | None = None
) -> str:
    """The DOM of ``page`` once Chromium loaded it and ran its scripts, from ``file://``."""
    assert CHROMIUM is not None
    argv = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'chromium'}",
    ]
    url = page.resolve().as_uri() + fragment
    if screenshot is not None:
        argv += [f"--screenshot={screenshot}", "--window-size=1400,1100"]
    else:
        argv.append("--dump-dom")
    proc = subprocess.run(
        [*argv, url], capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _no_injection(dom: _Dom) -> None:
    """Nothing a record said became an element, a handler or a script link."""
    assert dom.having("img") == []
    sources = [a.get("src") for a in dom.having("script")]
    assert set(sources) <= {None, "assets/dagre.min.js"}
    assert len(dom.having("script")) == 3  # the graph's JSON, dagre, the page's own
    assert len(dom.having("style")) == 1
    assert len(dom.having("svg")) <= 1
    for tag, attrs in dom.elements:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        href = (attrs.get("href") or "").strip().lower()
        assert not href.startswith("javascript:"), (tag, attrs)


@needs_chromium
class TestInTheBrowser:
    def test_the_table_lists_every_run_and_the_graph_every_run_and_artifact(self, site, tmp_path):
        dom = parse(browse(site / "index.html", tmp_path))
        rows = dom.having("tr", **{"class": "run-row"})
        assert len(rows) == 5
        assert not any("hidden" in row for row in rows)
        runs = dom.having("g", **{"data-kind": "run"})
        artifacts = dom.having("g", **{"data-kind": "artifact"})
        assert len(runs) == 5
        # raw.csv, data/table.csv and the four models the trainings were told to write
        assert len(artifacts) == 6
        failed = dom.having("g", **{"class": "failed"})
        assert len(failed) == 1
        # every node is a link to a page of the site that exists
        links = [a["href"] for a in dom.having("a") if (a.get("href") or "").startswith("art")]
        assert len(links) >= 11 + 5  # the graph's nodes and the table's rows
        assert all((site / str(link)).is_file() for link in links)
        # an edge per read and per write, and the trainings' input made by prep
        assert len(dom.having("path", **{"class": "edge"})) == 10

    def test_the_filter_from_the_address_narrows_the_table(self, site, tmp_path):
        dom = parse(browse(site / "index.html", tmp_path, "#filter=failed"))
        rows = dom.having("tr", **{"class": "run-row"})
        assert len(rows) == 5
        shown = [row for row in rows if "hidden" not in row]
        assert len(shown) == 1
        text = "".join(dom.text)
        assert "1 of 5 shown" in text
        several = parse(browse(site / "index.html", tmp_path, "#filter=train.py%20succeeded"))
        shown = [r for r in several.having("tr", **{"class": "run-row"}) if "hidden" not in r]
        assert len(shown) == 3

    def test_the_hostile_record_stays_text(self, site, tmp_path):
        dom = parse(browse(site / "index.html", tmp_path))
        _no_injection(dom)
        text = "".join(dom.text)
        assert HOSTILE_NAME in text
        assert "onload=alert(1)" in text
        assert "PWNED" in text  # as text of the table, never run as script
        pages = sorted((site / "artifacts").glob("*.html"))
        hostile = [p for p in pages if "onerror" in p.read_text()]
        assert len(hostile) == 1
        page = parse(browse(hostile[0], tmp_path))
        _no_injection_on_artifact_page(page)
        assert HOSTILE_NAME in "".join(page.text)

    def test_a_screenshot_of_the_index(self, site, tmp_path):
        shot = tmp_path / "index.png"
        browse(site / "index.html", tmp_path, screenshot=shot)
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        keep = os.environ.get("PROVENANCE_REPORT_SCREENSHOT")
        if keep:
            shutil.copy(shot, keep)


def _no_injection_on_artifact_page(dom: _Dom) -> None:
    assert dom.having("img") == []
    assert dom.having("script") == []
    assert dom.having("svg") == []
    assert len(dom.having("style")) == 1
    for tag, attrs in dom.elements:
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        assert not (attrs.get("href") or "").lower().startswith("javascript:"), (tag, attrs)


class TestPages:
    def test_an_artifact_page_says_show_verify_gates_and_the_diff(self, site, pipeline):
        pages = {p: p.read_text() for p in (site / "artifacts").glob("*.html")}
        (m5,) = [t for t in pages.values() if "<title>models/m5.txt</title>" in t]
        dom = parse(m5)
        text = "".join(dom.text)
        show = cli_in(pipeline, "show", "models/m5.txt", "--color", "never")
        assert show.returncode == 0, show.stderr
        assert show.stdout.strip().splitlines()[1] in text  # the entrypoint line, as show says it
        assert "no finding" in text
        assert "score" in text
        assert "threshold=0.0, value=1.0" in text
        assert "epochs" in text  # the argument that changed since m3's run
        assert "Compared with" in text
        (first,) = [t for t in pages.values() if "<title>data/table.csv</title>" in t]
        assert "nothing to compare with" in first

    def test_a_changed_artifact_is_a_finding_on_its_page(self, own_copy):
        copy = own_copy
        (copy / "models/m3.txt").write_text("tampered\n")
        proc = cli_in(copy, "report", ".", "--html", "site")
        assert proc.returncode == 0, proc.stderr
        (m3,) = [
            p.read_text()
            for p in (copy / "site/artifacts").glob("*.html")
            if "<title>models/m3.txt</title>" in p.read_text()
        ]
        assert "1 finding" in m3
        assert ">changed<" in m3

    def test_every_record_value_is_escaped_in_the_files(self, site):
        for page in [site / "index.html", *(site / "artifacts").glob("*.html")]:
            html = page.read_text()
            assert "<img" not in html
            assert "<svg" not in html  # the graph is drawn by script, never written as markup
            assert html.count("<script") in (0, 3)
            assert "</style><style>" not in html

    def test_the_same_records_give_the_same_site(self, pipeline, tmp_path):
        out = [tmp_path / "one", tmp_path / "two"]
        for dest in out:
            proc = cli_in(pipeline, "report", ".", "--html", dest)
            assert proc.returncode == 0, proc.stderr
        files = sorted(p.relative_to(out[0]) for p in out[0].rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(out[1]) for p in out[1].rglob("*") if p.is_file())
        assert all((out[0] / f).read_bytes() == (out[1] / f).read_bytes() for f in files)


class TestTheSiteFolder:
    def test_a_new_site_replaces_the_old_one_whole(self, pipeline, tmp_path):
        dest = tmp_path / "site"
        assert cli_in(pipeline, "report", "models/m3.txt", "--html", dest).returncode == 0
        old = {p.name for p in (dest / "artifacts").iterdir()}
        assert len(old) == 1
        assert cli_in(pipeline, "report", "models/m5.txt", "--html", dest).returncode == 0
        new = {p.name for p in (dest / "artifacts").iterdir()}
        assert len(new) == 1
        assert new != old
        assert (dest / MARKER).is_file()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no staging left

    def test_a_folder_that_is_not_a_report_is_never_replaced(self, pipeline, tmp_path):
        dest = tmp_path / "results"
        dest.mkdir()
        (dest / "evidence.txt").write_text("keep me\n")
        proc = cli_in(pipeline, "report", ".", "--html", dest)
        assert proc.returncode == 2
        assert proc.stderr.count("\n") == 1
        assert "not replaced" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert sorted(p.name for p in dest.iterdir()) == ["evidence.txt"]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]

    def test_a_missing_path_is_a_usage_error(self, pipeline, tmp_path):
        proc = cli_in(pipeline, "report", "nowhere", "--html", tmp_path / "site")
        assert proc.returncode == 2
        assert proc.stderr.startswith("provenance: nowhere")
        assert "Traceback" not in proc.stderr
        assert not (tmp_path / "site").exists()

    def test_an_unreadable_record_is_skipped_with_a_line(self, own_copy):
        copy = own_copy
        (copy / "models/m3.txt.manifest.json").write_text("{not json")
        proc = cli_in(copy, "report", ".", "--html", "site")
        assert proc.returncode == 0, proc.stderr
        assert "4 runs" in proc.stdout
        assert "skipped" in proc.stderr
        assert "m3.txt.manifest.json" in proc.stderr
        assert "could not be read" in (copy / "site/index.html").read_text()


class TestTextARecordCannotBreak:
    def test_a_name_that_is_not_utf8_and_bidi_controls_are_shown_escaped(self, own_copy):
        """A file name of non-UTF-8 bytes is recorded as lone surrogates, as an honest run
        writes it: the site is still written, and it shows the escape the command shows; a
        bidi control cannot reorder what a page shows."""
        copy = own_copy
        odd = os.fsencode(str(copy / "models")) + b"/m\xff.txt"
        proc = subprocess.run(
            [os.fsencode(sys.executable), b"train.py", b"--data", b"data/table.csv",
             b"--out", odd, b"--note", "plcc \u202eLIAF\u202c".encode()],
            cwd=copy, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
            check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        report = cli_in(copy, "report", ".", "--html", "site")
        assert report.returncode == 0, report.stderr
        pages = [p.read_text("utf-8") for p in (copy / "site").rglob("*.html")]
        assert any("m\\udcff.txt" in page for page in pages)
        assert not any("\u202e" in page for page in pages)
        assert any("plcc \\u202eLIAF\\u202c" in page for page in pages)

    @pytest.mark.parametrize("marker", ["empty", "symlink", "other-text"])
    def test_only_the_reports_own_marker_makes_a_folder_replaceable(
        self, pipeline, tmp_path, marker
    ):
        dest = tmp_path / "results"
        dest.mkdir()
        (dest / "evidence.txt").write_text("keep me\n")
        if marker == "empty":
            (dest / MARKER).write_bytes(b"")
        elif marker == "symlink":
            real = tmp_path / "real-marker"
            real.write_bytes(MARKER_TEXT)
            (dest / MARKER).symlink_to(real)
        else:
            (dest / MARKER).write_bytes(b"x" * len(MARKER_TEXT))
        proc = cli_in(pipeline, "report", ".", "--html", dest)
        assert proc.returncode == 2
        assert "not replaced" in proc.stderr
        assert (dest / "evidence.txt").read_text() == "keep me\n"


class _Rows(HTMLParser):
    """The cells of the runs table, as text, one list a row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr" and ("class", "run-row") in attrs:
            self.rows.append([])
        elif tag == "td" and self.rows:
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def table_rows(site: Path) -> list[list[str]]:
    """script, artifact, outcome, gates, arguments: each row of the site's runs table."""
    rows = _Rows()
    rows.feed((site / "index.html").read_text())
    return rows.rows


def listed(folder: Path, *paths: str) -> list[dict[str, object]]:
    proc = cli_in(folder, "runs", *paths, "--json")
    assert proc.returncode == 0, proc.stderr
    found: list[dict[str, object]] = json.loads(proc.stdout)["runs"]
    return found


def as_runs_lists(runs: list[dict[str, object]]) -> list[tuple[str, str, str]]:
    return sorted(
        (str(r["artifact"]), str(r["command"] or r["script"]), str(r["status"])) for r in runs
    )


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A project with every kind of run ``runs`` lists: succeeded, failed, failed by a gate,
    a failed rerun kept beside the sidecar (``X.manifest.failed.json``), one killed with
    SIGKILL (lost) and one still under way while the module's tests run."""
    folder = project_with(tmp_path_factory.mktemp("outcomes") / "proj", "report_stage", "outcomes")
    (folder / "raw.csv").write_text("a,b\n1,2\n")
    for argv, code in [
        (("--out", "ok/table.csv"), 0),
        (("--out", "ok/table.csv", "--fail"), 1),  # wrote nothing: kept beside
        (("--out", "bad/table.csv", "--fail"), 1),
        (("--out", "gate/table.csv", "--min-score", "9"), 0),
    ]:
        proc = run_in(folder, "report_stage.py", "--data", "raw.csv", *argv)
        assert proc.returncode == code, proc.stderr
    assert (folder / "ok/table.csv.manifest.failed.json").is_file()

    def started(name: str) -> subprocess.Popen[str]:
        (folder / name).mkdir()
        proc = subprocess.Popen(
            [sys.executable, "outcomes.py", "--mode", "wait", "--out", f"{name}/r.txt",
             "--ready", f"{name}/ready"],
            cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)}, text=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=default_signals,
        )  # fmt: skip
        wait_until(lambda: (folder / name / "ready").exists(), proc, "it was under way")
        return proc

    lost = started("lost")
    lost.send_signal(signal.SIGKILL)
    finish(lost)
    live = started("live")
    try:
        yield folder
    finally:
        live.send_signal(signal.SIGKILL)
        finish(live)


class TestTheSameRunsAsTheRunsCommand:
    def test_the_rows_are_the_runs_that_runs_lists(self, outcomes, tmp_path):
        runs = listed(outcomes, ".")
        statuses = sorted(str(r["status"]) for r in runs)
        # ok's run, its failed rerun, bad's, gate's (succeeded, its gate failed), lost, live
        assert statuses == ["failed", "failed", "lost", "running", "succeeded", "succeeded"]
        assert [r["gates"] for r in runs if r["artifact"] == "gate/table.csv"] == [{"score": False}]
        site = tmp_path / "site"
        proc = cli_in(outcomes, "report", ".", "--html", site)
        assert proc.returncode == 0, proc.stderr
        assert f"{len(runs)} runs" in proc.stdout
        rows = table_rows(site)
        assert sorted((row[1], row[0], row[2]) for row in rows) == as_runs_lists(runs)
        marked = sorted(
            (n["status"], n["failed"]) for n in graph_of(site)["nodes"] if "status" in n
        )
        assert marked == [
            ("failed", True), ("failed", True), ("lost", True), ("running", False),
            ("succeeded", False), ("succeeded", False),
        ]  # fmt: skip

    def test_a_lost_and_a_running_run_have_a_page_from_their_running_record(
        self, outcomes, tmp_path
    ):
        site = tmp_path / "site"
        assert cli_in(outcomes, "report", ".", "--html", site).returncode == 0
        pages = {p.read_text() for p in (site / "artifacts").glob("*.html")}
        for name, status in [("lost", "lost"), ("live", "running")]:
            (page,) = [p for p in pages if f"<title>{name}/r.txt</title>" in p]
            assert f'<span class="{status}">{status}</span>' in page
            assert ".manifest.running." in page  # its record, as far as there is one

    def test_the_same_paths_give_the_same_runs(self, outcomes, tmp_path):
        """Folders and artifacts, alone and together, overlapping: the same runs as ``runs``."""
        (lost,) = (outcomes / "lost").glob("r.txt.manifest.running.*.json")
        for paths in [
            ("ok",),
            ("ok", "."),
            (f"lost/{lost.name}", "ok/table.csv"),
            ("live", "bad/table.csv.manifest.json"),
        ]:
            site = tmp_path / f"site{len(list(tmp_path.iterdir()))}"
            proc = cli_in(outcomes, "report", *paths, "--html", site)
            assert proc.returncode == 0, proc.stderr
            # the site shows paths from its first folder, runs from the working folder
            base = outcomes / (paths[0] if (outcomes / paths[0]).is_dir() else ".")
            rows = [(os.path.normpath(base / r[1]), r[0], r[2]) for r in table_rows(site)]
            runs = [
                (os.path.normpath(outcomes / a), s, st)
                for a, s, st in as_runs_lists(listed(outcomes, *paths))
            ]
            assert sorted(rows) == runs, paths


class TestLinkedRecords:
    """Two paths to one record: the real one is kept where it is found, a link only alone."""

    @pytest.fixture
    def linked(self, own_copy: Path) -> Path:
        copy = own_copy
        for alias in ("aaa", "zzz"):  # sorted before and after the real record
            (copy / "models" / f"{alias}.manifest.json").symlink_to("m3.txt.manifest.json")
        return copy

    def artifacts(self, folder: Path, *paths: str) -> list[str]:
        site = folder / f"site{len(list(folder.glob('site*')))}"
        proc = cli_in(folder, "report", *paths, "--html", site)
        assert proc.returncode == 0, proc.stderr
        return sorted(row[1] for row in table_rows(site))

    def test_a_link_to_a_record_found_as_itself_is_left_out(self, linked):
        models = self.artifacts(linked, "models")
        assert "m3.txt" in models
        assert not {"aaa", "zzz"} & set(models)
        assert len(models) == 4  # m3, m5, bad and the hostile one: each once
        everything = self.artifacts(linked, ".")
        assert "models/m3.txt" in everything
        assert not {"models/aaa", "models/zzz"} & set(everything)
        given = self.artifacts(linked, "models/aaa.manifest.json", "models/m3.txt")
        assert given == ["models/m3.txt"]

    def test_a_link_alone_is_the_record_it_leads_to(self, linked):
        assert self.artifacts(linked, "models/zzz.manifest.json") == ["models/zzz"]
        assert self.artifacts(linked, "models/aaa.manifest.json", "models/zzz.manifest.json") == [
            "models/aaa"
        ]

    def test_the_rule_is_the_read_apis(self, linked, monkeypatch):
        """``collect_runs``, which the report takes its runs from, chooses as ``runs`` does."""
        from provenance.read import collect_runs

        monkeypatch.chdir(linked)
        for paths in (["models"], ["models/zzz.manifest.json", "models"]):
            found = collect_runs(paths, index=False).runs
            assert [r.artifact for r in found if "m3" in r.record or "a" * 3 in r.record] == [
                "models/m3.txt"
            ]
            assert len(found) == 4


class _Pre(HTMLParser):
    """The text of the page's ``<pre id="show">``, as the DOM holds it."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.inside = self.inside or (tag == "pre" and ("id", "show") in attrs)

    def handle_endtag(self, tag: str) -> None:
        self.inside = self.inside and tag != "pre"

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.text.append(data)


@needs_chromium
class TestTheRecordAsShowSaysIt:
    @pytest.mark.parametrize(
        "note",
        ["two\nlines", "ansi \x1b[31mred\x1b[0m and a bell\x07", "<b>bold</b>\r\nbidi \u202eX"],
    )
    def test_the_record_is_shows_lines_each_escaped(self, own_copy, tmp_path, note):
        """The page's record is ``show``'s text line for line, in a ``<pre>``: the breaks
        between lines are real, and a value's own newline or control stays an escape."""
        copy = own_copy
        out = "models/noted.txt"
        proc = run_in(copy, "train.py", "--data", "data/table.csv", "--out", out, "--note", note)
        assert proc.returncode == 0, proc.stderr
        show = cli_in(copy, "show", out, "--color", "never")
        assert show.returncode == 0, show.stderr
        assert cli_in(copy, "report", out, "--html", "site").returncode == 0
        (page,) = (copy / "site/artifacts").glob("*.html")
        pre = _Pre()
        pre.feed(browse(page, tmp_path))
        text = "".join(pre.text)
        assert text.splitlines() == show.stdout.splitlines()
        assert len(text.splitlines()) > 10
        (noted,) = [line for line in text.splitlines() if line.lstrip().startswith("note ")]
        assert "\\x0a" in noted or "\\x0d" in noted or "\\x1b" in noted
        assert not any(char in text for char in "\x1b\x07\r\u202e")
        # an escaped newline only where the note is: its field and the command line
        assert all("note" in line for line in text.splitlines() if "\\x0a" in line)


class TestWhereTheSiteGoes:
    def test_an_empty_folder_name_is_a_usage_error(self, pipeline, tmp_path):
        before = sorted(p.name for p in pipeline.iterdir())
        proc = cli_in(pipeline, "report", ".", "--html", "")
        assert proc.returncode == 2
        assert proc.stderr.count("\n") == 1
        assert "--html: an empty value" in proc.stderr
        assert sorted(p.name for p in pipeline.iterdir()) == before

    @pytest.mark.parametrize("to", ["an empty folder", "a report", "nothing"])
    def test_a_link_is_refused_for_what_it_is(self, pipeline, tmp_path, to):
        target = tmp_path / "target"
        if to == "an empty folder":
            target.mkdir()
        elif to == "a report":
            assert cli_in(pipeline, "report", "models/m3.txt", "--html", target).returncode == 0
        link = tmp_path / "site"
        link.symlink_to(target)
        kept = sorted(p.name for p in target.rglob("*")) if target.exists() else None
        proc = cli_in(pipeline, "report", ".", "--html", link)
        assert proc.returncode == 2
        assert proc.stderr.count("\n") == 1
        assert f"{link}: a link (to {target}): not replaced" in proc.stderr
        assert "Traceback" not in proc.stderr
        assert link.is_symlink()
        assert (sorted(p.name for p in target.rglob("*")) if target.exists() else None) == kept
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            ["site", *(["target"] if target.exists() else [])]
        )


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Runs of three kinds of script, written under runs/ from an input beside it: a typer
    command path, a script run by ``provenance run`` (no parsed arguments), and an argparse
    stage, twice each."""
    folder = project_with(tmp_path_factory.mktemp("mixed") / "proj", "typer_app", "report_stage")
    (folder / "train.py").write_text(  # no decorator, no parse: provenance run records it
        "import sys\nfrom pathlib import Path\n\nPath(sys.argv[-1]).write_text('model')\n"
    )
    (folder / "raw.csv").write_text("adm2,mos\n0.9,4.2\n")
    for n in (3, 5):
        for argv in [
            ("typer_app.py", "fit", "--features", "raw.csv", "--out", f"runs/fit{n}.txt",
             "--epochs", n),
            ("-m", "provenance", "run", "--input=data=raw.csv", f"--output=model=runs/t{n}.txt",
             "--", sys.executable, "train.py", "--data", "raw.csv", "--out", f"runs/t{n}.txt"),
            ("report_stage.py", "--data", "raw.csv", "--out", f"runs/s{n}.txt", "--epochs", n),
        ]:  # fmt: skip
            (folder / "runs").mkdir(exist_ok=True)
            proc = run_in(folder, *argv)
            assert proc.returncode == 0, proc.stderr
    return folder


@pytest.fixture(scope="module")
def mixed_site(mixed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site") / "site"
    proc = cli_in(mixed, "report", "runs", "--html", site)
    assert proc.returncode == 0, proc.stderr
    return site


class TestAsTheCommandsSayIt:
    def test_a_script_is_named_as_runs_names_it(self, mixed, mixed_site):
        proc = cli_in(mixed, "runs", "runs")
        assert proc.returncode == 0, proc.stderr
        cells = [re.split(r"\s{2,}", line) for line in proc.stdout.splitlines()]
        named = {cell[0].removeprefix("runs/"): cell[1] for cell in cells}
        rows = {row[1]: row[0] for row in table_rows(mixed_site)}
        assert rows == named
        assert rows["fit3.txt"] == "typer_app.py fit"
        graph = graph_of(mixed_site)
        labels = sorted(n["label"] for n in graph["nodes"] if n["kind"] == "run")
        assert labels == sorted(named.values())
        pages = [p.read_text() for p in (mixed_site / "artifacts").glob("*.html")]
        assert sum("Made by <code>typer_app.py fit</code>" in page for page in pages) == 2

    def test_the_arguments_that_differ_are_runs_values_among_the_runs_of_a_script(
        self, mixed, mixed_site
    ):
        """Each script's runs compared among themselves, as ``runs --script`` lists them; a
        run of no parsed arguments by its command line's words, in both."""
        rows = table_rows(mixed_site)
        for script in {row[0] for row in rows}:
            proc = cli_in(mixed, "runs", "runs", "--script", script, "--json")
            assert proc.returncode == 0, proc.stderr
            listed = json.loads(proc.stdout)
            for run in listed["runs"]:
                params = run["params"]
                wanted = [
                    f"{k.removeprefix('args.')}="
                    + (params[k] if isinstance(params[k], str) else json.dumps(params[k]))
                    for k in listed["differing"]
                    if k in params
                ]
                (row,) = [r for r in rows if r[1] == run["artifact"].removeprefix("runs/")]
                assert row[4].split("\n") == wanted, script
        argvs = sorted(row[4] for row in rows if row[0] == "train.py")
        assert argvs == [
            "argv=--data raw.csv --out runs/t3.txt",
            "argv=--data raw.csv --out runs/t5.txt",
        ]
        assert sorted(row[4] for row in rows if row[0] == "report_stage.py") == [
            "epochs=3\nout=runs/s3.txt",
            "epochs=5\nout=runs/s5.txt",
        ]

    def test_runs_shows_the_words_of_a_run_of_no_parsed_arguments(self, mixed):
        proc = cli_in(mixed, "runs", "runs", "--script", "train.py")
        assert proc.returncode == 0, proc.stderr
        assert [re.split(r"\s{2,}", line)[-1] for line in proc.stdout.splitlines()] == [
            'argv="--data raw.csv --out runs/t3.txt"',  # quoted: it holds spaces
            'argv="--data raw.csv --out runs/t5.txt"',
        ]

    def test_the_graph_names_a_path_as_lineage_does(self, mixed, mixed_site):
        """An input outside the report's folder is named as the record (and ``lineage``)
        names it, not by an absolute path; so is every other artifact."""
        labels = {n["label"] for n in graph_of(mixed_site)["nodes"] if n["kind"] == "artifact"}
        assert not any(os.path.isabs(label) for label in labels)
        assert "raw.csv" in labels
        tree = cli_in(mixed, "lineage", "runs/s3.txt")
        assert tree.returncode == 0, tree.stderr
        assert "raw.csv  (raw input" in tree.stdout
        assert labels == {
            "raw.csv",
            *(f"runs/{n}{k}.txt" for n in ("fit", "t", "s") for k in (3, 5)),
        }


def graph_of(site: Path) -> dict[str, Any]:
    """The graph's data, as the index page carries it to its script."""
    html = (site / "index.html").read_text()
    start = html.index('<script type="application/json" id="graph-data">')
    body = html[html.index(">", start) + 1 : html.index("</script>", start)]
    graph: dict[str, Any] = json.loads(body)
    return graph
