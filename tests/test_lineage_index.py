"""The lineage index: ``lineage`` answers with it exactly as the full scan of every record does."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from provenance.reading.lineage import build_index
from provenance.records import Boundary
from provenance.stores.digest_cache import ENVIRONMENT, RACY_WINDOW_NS, stat_key
from provenance.stores.lineage_index import FILE_NAME, LineageIndex
from tests.conftest import ROOT, default_signals
from tests.handmade import cli_in, document, hang_guard, project, run_cli, run_in, write


def entry(shown: str, number: int, kind: str = "file", **extra: Any) -> dict[str, Any]:
    if kind == "directory":
        sizes = {"file_count": 2, "size_bytes": 2}
    else:
        sizes = {"size_bytes": 1, "sha256": None}
    return {
        "path": shown,
        "exists": True,
        "kind": kind,
        "blake3": f"{number:064x}",
        **sizes,
        **extra,
    }


TABLE = 7  # the digest of the table two records claim to have written


def pipeline(proj: Path) -> Path:
    """Records of a small pipeline, with what makes the order and the walk matter: two writers
    of the same table, a folder some run wrote, a run that did not write its output, a record
    reached through a link, and one that cannot be read."""
    write(
        proj / "records" / "gen.manifest.json",
        document("gen.py", outputs={"sample": entry("sample", 1, "directory")}),
    )
    write(
        proj / "a_dup.manifest.json",
        document("dup.py", inputs={"raw": entry("raw.csv", 2)}, outputs={"t": entry("t", TABLE)}),
    )
    write(
        proj / "table.csv.manifest.json",
        document(
            "table.py",
            inputs={"part": entry("sample/a.csv", 3), "raw": entry("raw.csv", 2)},
            outputs={"table": entry("table.csv", TABLE)},
        ),
    )
    write(
        proj / "old.manifest.json",
        document("old.py", outputs={"table": entry("table.csv", TABLE, written_by_run=False)}),
    )
    write(
        proj / "model.bin.manifest.json",
        document(
            "train.py",
            inputs={"table": entry("table.csv", TABLE)},
            outputs={"model": entry("model.bin", 9)},
        ),
    )
    (proj / "links").mkdir()
    os.symlink(proj / "table.csv.manifest.json", proj / "links" / "t.manifest.json")
    (proj / "broken.manifest.json").write_text('{"schema": ')
    return proj / "model.bin"


def aged(proj: Path) -> None:
    """Wait until the records just written are old enough to be stored (not racy)."""
    newest = max(p.lstat().st_ctime_ns for p in proj.rglob("*"))
    time.sleep(max(0.0, (newest + RACY_WINDOW_NS - time.time_ns()) / 1e9 + 0.05))


def lineage(
    monkeypatch: pytest.MonkeyPatch, cache: str, artifact: Path, *flags: str
) -> tuple[int, str, str]:
    monkeypatch.setenv(ENVIRONMENT, cache)
    result = run_cli("lineage", *flags, artifact)
    return result.code, result.out, result.err


def same_as_full_scan(
    monkeypatch: pytest.MonkeyPatch, cache: str, artifact: Path
) -> dict[str, Any]:
    """Every form of the answer, with the index and without: the same; the tree, as JSON."""
    for flags in [("--json",), ("--dot",), ()]:
        indexed = lineage(monkeypatch, cache, artifact, *flags)
        assert indexed == lineage(monkeypatch, "off", artifact, *flags), flags
        assert "Traceback" not in indexed[2]
    tree: dict[str, Any] = json.loads(lineage(monkeypatch, cache, artifact, "--json")[1])
    if cache != "off":
        folder_rows_agree_with_record_rows(Path(cache).with_name(FILE_NAME))
    return tree


def producer(tree: dict[str, Any], name: str) -> str | None:
    [item] = [i for i in tree["inputs"] if i["name"] == name]
    return item.get("produced_by", {}).get("entrypoint")


def stored_records(cache: Path) -> int:
    with sqlite3.connect(cache.with_name(FILE_NAME)) as db:
        count: int = db.execute("SELECT count(*) FROM records").fetchone()[0]
    return count


@pytest.fixture
def proj(tmp_path: Path) -> Path:
    return project(tmp_path / "proj")


def test_cold_warm_and_after_every_change_the_answer_is_the_full_scans(proj, tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "digests.sqlite3"
    model = pipeline(proj)
    aged(proj)
    tree = same_as_full_scan(monkeypatch, str(cache), model)  # cold, then warm
    assert stored_records(cache) == 5  # every readable record; the link is the table's record
    table = tree["inputs"][0]["produced_by"]
    assert tree["inputs"][0]["produced_by"]["entrypoint"] == "dup.py"  # first in the walk
    assert "broken.manifest.json" in lineage(monkeypatch, str(cache), model)[2]

    # Edited in place: the table's other writer now says another digest.
    duplicate = proj / "a_dup.manifest.json"
    doc = json.loads(duplicate.read_text())
    doc["run_provenance"]["outputs"]["t"]["blake3"] = f"{8:064x}"
    write(duplicate, doc)
    tree = same_as_full_scan(monkeypatch, str(cache), model)
    table = tree["inputs"][0]["produced_by"]
    assert table["entrypoint"] == "table.py"
    assert producer(table, "part") == "gen.py"  # part of the folder it wrote

    # Removed, added, and a record corrupted: the folder's writer can no longer be read.
    duplicate.unlink()
    write(
        proj / "b_new.manifest.json",
        document("new.py", outputs={"t": entry("t", TABLE)}),
    )
    (proj / "records" / "gen.manifest.json").write_text("not json")
    tree = same_as_full_scan(monkeypatch, str(cache), model)
    assert tree["inputs"][0]["produced_by"]["entrypoint"] == "new.py"

    # Replaced by a link to a record elsewhere, then by a hostile record.
    elsewhere = write(
        tmp_path / "outside" / "x.manifest.json",
        document("outside.py", outputs={"t": entry("t", TABLE)}),
    )
    (proj / "b_new.manifest.json").unlink()
    os.symlink(elsewhere, proj / "b_new.manifest.json")
    tree = same_as_full_scan(monkeypatch, str(cache), model)
    assert tree["inputs"][0]["produced_by"]["entrypoint"] == "table.py"
    (proj / "b_new.manifest.json").unlink()
    text = json.dumps(document("new.py", outputs={"t": entry("t", TABLE)}))
    (proj / "b_new.manifest.json").write_text(text.replace('"exit_code": 0', '"exit_code": NaN'))
    same_as_full_scan(monkeypatch, str(cache), model)

    # And once they have all aged, warm again.
    aged(proj)
    tree = same_as_full_scan(monkeypatch, str(cache), model)
    assert tree["inputs"][0]["produced_by"]["entrypoint"] == "table.py"
    assert stored_records(cache) == 3  # the table's, the model's and old.py's
    (proj / "old.manifest.json").unlink()  # a stored record removed: its rows go too
    same_as_full_scan(monkeypatch, str(cache), model)
    assert stored_records(cache) == 2

    # Rewritten with the same bytes (racy, then aged), then changed in place at the same size.
    record = proj / "table.csv.manifest.json"
    text = record.read_text()
    record.unlink()
    record.write_text(text)
    tree = same_as_full_scan(monkeypatch, str(cache), model)
    assert tree["inputs"][0]["produced_by"]["entrypoint"] == "table.py"
    aged(proj)
    same_as_full_scan(monkeypatch, str(cache), model)
    assert f"{TABLE:064x}" in text
    record.write_text(text.replace(f"{TABLE:064x}", f"{6:064x}"))  # no longer the table's writer
    tree = same_as_full_scan(monkeypatch, str(cache), model)
    assert "produced_by" not in tree["inputs"][0]


def test_a_warm_walk_parses_no_record_and_a_changed_one_is_parsed_again(proj, tmp_path):
    pipeline(proj)
    store = LineageIndex(tmp_path / FILE_NAME, racy_window_ns=0)
    boundary = Boundary.of([proj])
    assert build_index([proj], None, boundary, store).parsed == 6  # five, and the broken one
    assert build_index([proj], None, boundary, store).parsed == 1  # only the broken one
    record = proj / "model.bin.manifest.json"
    text = record.read_text()
    record.unlink()
    record.write_text(text)  # the same bytes, but not the same file any more: read, not parsed
    assert build_index([proj], None, boundary, store).parsed == 1
    assert build_index([proj], None, boundary, store).parsed == 1  # and kept under its new stat
    record.write_text(text.replace("train.py", "trail.py"))  # in place, the same size
    assert build_index([proj], None, boundary, store).parsed == 2
    assert build_index([proj], None, boundary, store).parsed == 1
    store.close()


def test_a_corrupt_index_warns_once_and_the_records_still_answer(proj, tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "digests.sqlite3"
    model = pipeline(proj)
    cache.parent.mkdir()
    cache.with_name(FILE_NAME).write_bytes(b"this is not a database" * 100)
    indexed = lineage(monkeypatch, str(cache), model, "--json")
    full = lineage(monkeypatch, "off", model, "--json")
    assert indexed[:2] == full[:2]
    warning, rest = indexed[2].split("\n", 1)
    assert "lineage index" in warning
    assert "cannot be used" in warning
    assert rest == full[2]


def test_the_command_fills_the_index_and_reads_it_as_a_process(proj, tmp_path):
    cache = tmp_path / "cache" / "digests.sqlite3"
    model = pipeline(proj)
    aged(proj)
    runs = [
        cli_in(proj, "lineage", "--json", model, env={ENVIRONMENT: c})
        for c in ("off", str(cache), str(cache))
    ]
    assert runs[0].returncode == 0, runs[0].stderr
    assert len({(r.returncode, r.stdout, r.stderr) for r in runs}) == 1
    assert stored_records(cache) == 5


def record_paths(walked: list[Any]) -> list[str]:
    """Every record the walk found, by the path it shows, in the walk's order."""
    from provenance.stores import scan

    found = []
    for folder in walked:
        names = [os.fsdecode(n) for n in scan.parse_entries(folder.entries)]
        found += [folder.prefix + name for name in sorted([*names, *folder.others])]
    return found


@pytest.mark.parametrize("top", ["absolute", ".", "./proj/", "proj"])
@pytest.mark.parametrize("split_at", [1, 1000], ids=["forked", "one process"])
def test_the_indexed_walk_finds_what_the_full_scans_walk_finds(
    proj, tmp_path, monkeypatch, top, split_at
):
    from provenance.reading.lineage import records_under
    from provenance.stores import scan

    monkeypatch.setattr(scan, "SPLIT_AT", split_at)
    pipeline(proj)
    for i in range(12):  # folders enough to share: some with records, some deeper
        write(proj / "many" / f"d{i:02}" / "x.manifest.json", document())
        if i % 3 == 0:
            write(proj / "many" / f"d{i:02}" / "sub" / "y.manifest.json", document())
    (proj / ".venv").mkdir()
    write(proj / ".venv" / "x.manifest.json", document())  # skipped, as the full scan skips it
    os.symlink(proj / "nowhere.manifest.json", proj / "dangling.manifest.json")  # no stat
    os.symlink(tmp_path, proj / "out.manifest.json")  # a link to a folder out of the boundary
    os.symlink(proj / "records", proj / "linked")  # a linked folder is not walked into
    os.symlink(proj, proj / "records" / "up.manifest.json")  # a link to a folder
    monkeypatch.chdir(tmp_path if top != "." else proj)
    folders = [proj if top == "absolute" else Path(top)]
    boundary = Boundary.of([proj])
    full_scan = [str(p) for p in records_under(folders, boundary)]
    assert list(record_paths(scan.scan(folders[0]))) == full_scan
    assert len(full_scan) == 8 + 12 + 4
    done: list[int] = []  # the caller's work done while a forked process walks: the same walk
    assert scan.scan(folders[0], lambda: done.append(os.getpid())) == scan.scan(folders[0])
    assert done == [os.getpid()]
    walked = scan.scan(folders[0])
    for folder in walked:
        assert folder.real == os.path.realpath(folder.shown)
        for name, key in scan.parse_entries(folder.entries).items():
            st = os.lstat(os.path.join(folder.shown, os.fsdecode(name)))
            assert key == stat_key(st)
    others = sorted(name for folder in walked for name in folder.others)
    assert others == ["dangling.manifest.json", "t.manifest.json"]  # a link to a folder is none
    assert len(walked) == 1 + 1 + 1 + 12 + 4  # proj, records, links, the d* and the d*/sub


@pytest.mark.parametrize("split_at", [1, 1000], ids=["forked", "one process"])
def test_the_work_done_while_walking_is_done_once_and_its_error_stops_the_walker(
    proj, monkeypatch, split_at
):
    from provenance.stores import scan

    monkeypatch.setattr(scan, "SPLIT_AT", split_at)
    for i in range(20):
        write(proj / f"d{i:02}" / "x.manifest.json", document())
    expected = scan.scan(proj)
    done: list[str] = []
    assert scan.scan(proj, lambda: done.append("done")) == expected
    assert scan.scan(proj / "nowhere", lambda: done.append("none")) == []
    assert done == ["done", "none"]

    def fails() -> None:
        raise KeyboardInterrupt

    def children() -> set[str]:  # running or unreaped (Linux)
        return set(Path(f"/proc/self/task/{os.getpid()}/children").read_text().split())

    before = children()
    with pytest.raises(KeyboardInterrupt):
        scan.scan(proj, fails)
    assert children() == before  # no walker left behind


def test_a_walker_that_fails_is_walked_for_again(proj, monkeypatch):
    from provenance.stores import scan

    for i in range(20):
        write(proj / f"d{i:02}" / "x.manifest.json", document())
    expected = scan.scan(proj)
    monkeypatch.setattr(scan, "SPLIT_AT", 1)
    monkeypatch.setattr(scan, "_send", lambda fd, taken, found: os.write(fd, b"\x05" * 9))
    assert scan.scan(proj) == expected  # a garbled answer: this process walks its share
    monkeypatch.setattr(scan, "_send", lambda fd, taken, found: os._exit(3))
    assert scan.scan(proj) == expected  # no answer at all


def test_a_link_met_first_keeps_its_records_rows_and_a_folder_gone_loses_its_own(proj, tmp_path):
    # "a/" is walked before "b/": the link in it is where the walk meets b's record.
    made = write(
        proj / "b" / "made.manifest.json", document("make.py", outputs={"t": entry("t", 5)})
    )
    write(proj / "b" / "other.manifest.json", document("other.py"))
    (proj / "b" / "x.manifest.json").write_text("{")  # never stored: b is read record by record
    (proj / "a").mkdir()
    os.symlink(made, proj / "a" / "link.manifest.json")
    write(proj / "c" / "gone.manifest.json", document("gone.py"))
    store = LineageIndex(tmp_path / FILE_NAME, racy_window_ns=0)
    boundary = Boundary.of([proj])
    assert build_index([proj], None, boundary, store).parsed == 4
    for _ in range(2):  # the link's record stays stored while it is current
        index = build_index([proj], None, boundary, store)
        assert index.parsed == 1  # the unreadable one
        [producer] = list(index._by_digest(f"{5:064x}", ""))
        assert producer.record.source == proj / "a" / "link.manifest.json"  # as the full scan
    assert stored_records(tmp_path / "digests.sqlite3") == 3
    (proj / "c" / "gone.manifest.json").unlink()
    (proj / "c").rmdir()
    assert build_index([proj], None, boundary, store).parsed == 1
    assert stored_records(tmp_path / "digests.sqlite3") == 2
    store.close()


def test_a_store_whose_folder_rows_are_not_its_shape_is_given_up(proj, tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "digests.sqlite3"
    model = pipeline(proj)
    aged(proj)
    full = lineage(monkeypatch, "off", model, "--json")
    assert lineage(monkeypatch, str(cache), model, "--json") == full  # fills it
    with sqlite3.connect(cache.with_name(FILE_NAME)) as db:
        db.execute("UPDATE folders SET entries = x'41424300'")  # a name, then no stat key
    code, out, err = lineage(monkeypatch, str(cache), model, "--json")
    assert (code, out) == full[:2]
    warning, rest = err.split("\n", 1)
    assert "lineage index" in warning
    assert rest == full[2]


def test_a_warm_answer_checks_no_unchanged_record_against_the_schema_again(
    proj, tmp_path, monkeypatch
):
    from provenance import records

    cache = tmp_path / "cache" / "digests.sqlite3"
    model = pipeline(proj)
    aged(proj)
    full = lineage(monkeypatch, "off", model, "--json")
    assert lineage(monkeypatch, str(cache), model, "--json") == full  # cold: fills the index
    checked: list[object] = []
    real_validate = records.validate
    monkeypatch.setattr(records, "validate", lambda d: checked.append(d) or real_validate(d))
    assert lineage(monkeypatch, str(cache), model, "--json") == full
    assert checked == []  # the model's record and its producers', read, stand as stored

    # Changed to a record the schema refuses, of the same size: parsed again, and refused.
    table = proj / "table.csv.manifest.json"
    text = table.read_text()
    table.write_text(text.replace('"exists": true', '"exists": 1234'))
    checked.clear()
    result = lineage(monkeypatch, str(cache), model, "--json")
    assert result == lineage(monkeypatch, "off", model, "--json")
    assert "table.csv.manifest.json: not a valid provenance sidecar" in result[2]
    assert checked  # what changed is checked
    # The artifact's own record, changed the same way: refused as the full scan refuses it.
    own = proj / "model.bin.manifest.json"
    own.write_text(own.read_text().replace('"exists": true', '"exists": 1234'))
    result = lineage(monkeypatch, str(cache), model, "--json")
    assert result == lineage(monkeypatch, "off", model, "--json")
    assert result[0] == 2
    assert "not a valid provenance sidecar" in result[2]


def test_a_link_into_a_skipped_folder_keeps_its_record_in_every_warm_answer(
    proj, tmp_path, monkeypatch
):
    # The record lives in a folder the walk skips; only the link to it is walked.
    write(
        proj / ".venv" / "lib" / "make.manifest.json",
        document("make.py", outputs={"t": entry("t", 5)}),
    )
    user = write(
        proj / "use.manifest.json",
        document("use.py", inputs={"t": entry("t", 5)}, outputs={"m": entry("m", 6)}),
    )
    (proj / "links").mkdir()
    os.symlink(proj / ".venv" / "lib" / "make.manifest.json", proj / "links" / "m.manifest.json")
    aged(proj)
    cache = str(tmp_path / "cache" / "digests.sqlite3")
    full = lineage(monkeypatch, "off", user, "--json")
    assert producer(json.loads(full[1]), "t") == "make.py"
    for _ in range(3):  # cold, warm, and warm again: the link's record stays found
        assert lineage(monkeypatch, cache, user, "--json") == full


def test_overlapping_search_folders_say_each_unreadable_record_once_as_the_full_scan(
    proj, tmp_path, monkeypatch
):
    user = write(
        proj / "use.manifest.json",
        document("use.py", inputs={"t": entry("t", 5)}, outputs={"m": entry("m", 6)}),
    )
    (proj / "sub").mkdir()
    (proj / "sub" / "bad.manifest.json").write_text("{")
    aged(proj)
    cache = str(tmp_path / "cache" / "digests.sqlite3")
    monkeypatch.chdir(proj)
    for search in [(proj, proj / "sub"), (proj, proj), (Path("."), proj)]:
        flags = [f for folder in search for f in ("--search", str(folder))]
        full = lineage(monkeypatch, "off", user, *flags)
        assert full[2].count("bad.manifest.json") == 1, search  # one record, one line
        for _ in range(2):
            assert lineage(monkeypatch, cache, user, *flags) == full, search


def test_an_index_whose_rows_say_what_the_records_do_not_is_given_up(proj, tmp_path, monkeypatch):
    cache = tmp_path / "cache" / "digests.sqlite3"
    write(proj / "a" / "make.manifest.json", document("make.py", outputs={"t": entry("t", 5)}))
    write(proj / "b" / "other.manifest.json", document("other.py", outputs={"u": entry("u", 7)}))
    user = write(
        proj / "use.manifest.json",
        document("use.py", inputs={"t": entry("t", 5), "u": entry("u", 7)}),
    )
    aged(proj)
    full = lineage(monkeypatch, "off", user, "--json")
    assert lineage(monkeypatch, str(cache), user, "--json") == full  # fills it
    with sqlite3.connect(cache.with_name(FILE_NAME)) as db:  # of the right types, and wrong
        db.execute("UPDATE outputs SET blake3 = ? WHERE name = ?", (f"{7:064x}", '"t"'))
    code, out, err = lineage(monkeypatch, str(cache), user, "--json")
    assert (code, out) == full[:2]  # make.py wrote t, not u, whatever the index says
    warning, rest = err.split("\n", 1)
    assert "lineage index" in warning
    assert rest == full[2]


def tree_to_share(proj: Path, folders: int = 12) -> Path:
    """A project of more folders than one process walks alone, and the record to trace."""
    for i in range(folders):
        write(proj / "many" / f"d{i:02}" / "r.manifest.json", document(f"r{i}.py"))
    write(
        proj / "many" / "d03" / "make.manifest.json",
        document("make.py", outputs={"t": entry("t", 5)}),
    )
    return write(
        proj / "use.manifest.json",
        document("use.py", inputs={"t": entry("t", 5)}, outputs={"m": entry("m", 6)}),
    )


# The command, started with SIGCHLD ignored, as a parent that ignores it leaves its children:
# the kernel then reaps the walk's forked process itself.
NO_CHILD_STATUS = (
    "import runpy, signal, sys; signal.signal(signal.SIGCHLD, signal.SIG_IGN); "
    "sys.argv = ['provenance', 'lineage', '--json', sys.argv[1]]; "
    "runpy.run_module('provenance', run_name='__main__')"
)


def test_the_shared_walk_answers_when_sigchld_is_ignored(proj, tmp_path):
    user = tree_to_share(proj)
    aged(proj)
    cache = str(tmp_path / "cache" / "digests.sqlite3")
    runs = [
        run_in(proj, "-c", NO_CHILD_STATUS, user, env={ENVIRONMENT: c})
        for c in ("off", cache, cache)
    ]
    assert runs[0].returncode == 0, runs[0].stderr
    assert json.loads(runs[0].stdout)["inputs"][0]["produced_by"]["entrypoint"] == "make.py"
    assert [(r.returncode, r.stdout, r.stderr) for r in runs[1:]] == [
        (runs[0].returncode, runs[0].stdout, runs[0].stderr)
    ] * 2


# The walk is shared with a forked process only where there is a second core to run it.
shares_its_walk = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="one core: the walk is not shared, no process is forked",
)


# The command with a walk slowed down (each folder listed a little later, and the process that
# listed it noted), so that a signal lands while the forked walker still has most of its share.
SLOW_WALK = (
    "import os, runpy, sys, time\n"
    "from provenance.stores import scan\n"
    "real, log = scan._list, sys.argv[2]\n"
    "def slow(pending, found):\n"
    "    time.sleep(0.3)\n"
    "    with open(log, 'a') as f:\n"
    "        f.write(f'{os.getpid()}\\n')\n"
    "    return real(pending, found)\n"
    "scan._list = slow\n"
    "sys.argv = ['provenance', 'lineage', sys.argv[1]]\n"
    "runpy.run_module('provenance', run_name='__main__')\n"
)


@shares_its_walk
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signalled_command_leaves_no_walker_walking(proj, tmp_path, signum):
    user = tree_to_share(proj, folders=40)  # the walker's share: 20 folders
    log = tmp_path / "listed"
    command = subprocess.Popen(
        [sys.executable, "-c", SLOW_WALK, str(user), str(log)],
        cwd=proj,
        env={**os.environ, "PYTHONPATH": str(ROOT), ENVIRONMENT: str(tmp_path / "c.sqlite3")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=default_signals,
    )
    children = Path(f"/proc/{command.pid}/task/{command.pid}/children")
    with hang_guard(60):
        while not children.read_text().split():  # the walk is shared from here on
            time.sleep(0.02)
        [walker] = map(int, children.read_text().split())
        while str(walker) not in (log.read_text() if log.exists() else ""):
            time.sleep(0.02)
        command.send_signal(signum)
        _, err = command.communicate()  # its pipes close once no process holds them
    assert command.returncode == -signum
    assert err.decode().count("Traceback") <= 1  # Python's own, for KeyboardInterrupt, at most
    listed = log.read_text().split().count(str(walker))
    assert listed < 20  # it stopped with the command, not once it had walked its share


# A program that walks in-process (as a notebook calls lineage), and lives on after Ctrl-C.
INTERRUPTED_IN_PROCESS = (
    "import os, sys, time\n"
    "from provenance.stores import scan\n"
    "real = scan._list\n"
    "def slow(pending, found):\n"
    "    time.sleep(0.3)\n"
    "    return real(pending, found)\n"
    "scan._list = slow\n"
    "try:\n"
    "    scan.scan(sys.argv[1])\n"
    "except KeyboardInterrupt:\n"
    "    pass\n"
    "me = os.getpid()\n"
    "with open(f'/proc/{me}/task/{me}/children') as f:\n"
    "    print(f.read().split())\n"
)


@shares_its_walk
def test_an_interrupted_walk_leaves_its_caller_no_child(proj):
    tree_to_share(proj, folders=40)
    command = subprocess.Popen(
        [sys.executable, "-c", INTERRUPTED_IN_PROCESS, str(proj)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=default_signals,
        text=True,
    )
    children = Path(f"/proc/{command.pid}/task/{command.pid}/children")
    with hang_guard(60):
        while not children.read_text().split():  # the walk is shared from here on
            time.sleep(0.02)
        command.send_signal(signal.SIGINT)
        out, err = command.communicate()
    assert command.returncode == 0, err
    assert out.strip() == "[]"  # the walker stopped and reaped: no zombie, nothing walking on


def test_a_walk_interrupted_here_leaves_no_walker_behind(proj, monkeypatch):
    from provenance.stores import scan

    for i in range(20):
        write(proj / f"d{i:02}" / "x.manifest.json", document())
    monkeypatch.setattr(scan, "SPLIT_AT", 1)
    parent, forked = os.getpid(), []
    real_fork, real_take = os.fork, scan._take

    def fork() -> int:
        forked.append(real_fork())
        return forked[-1]

    def take(queue, groups, walker_of=None):
        if os.getpid() == parent:
            raise KeyboardInterrupt  # as Ctrl-C would, while the walker walks its share
        return real_take(queue, groups, walker_of)

    monkeypatch.setattr(os, "fork", fork)
    monkeypatch.setattr(scan, "_take", take)
    monkeypatch.setattr(scan, "_may_fork", lambda: True)  # whatever threads this worker has
    with pytest.raises(KeyboardInterrupt):
        scan.scan(proj)
    [child] = forked
    with pytest.raises(ChildProcessError):
        os.waitpid(child, os.WNOHANG)  # reaped already: not running, not a zombie


def test_odd_names_and_files_and_search_forms_answer_as_the_full_scan(proj, tmp_path, monkeypatch):
    import socket

    user = write(
        proj / "use.manifest.json",
        document("use.py", inputs={"t": entry("t", 5), "u": entry("u", 7)}),
    )
    write(proj / "a" / "make.manifest.json", document("make.py", outputs={"t": entry("t", 5)}))
    odd = proj / os.fsdecode(b"odd \xff") / os.fsdecode(b"new\nline \xfe.manifest.json")
    write(odd, document("odd.py", outputs={"u": entry("u", 7)}))
    os.mkfifo(proj / "fifo.manifest.json")  # a FIFO must not hang the walk or the read
    bound = socket.socket(socket.AF_UNIX)
    bound.bind(str(proj / "sock.manifest.json"))
    os.symlink(proj, tmp_path / "linked")
    aged(proj)
    cache = str(tmp_path / "cache" / "digests.sqlite3")
    monkeypatch.chdir(proj)
    try:
        for search in [(), (".",), ("a", os.fsdecode(b"odd \xff")), (str(tmp_path / "linked"),)]:
            flags = [f for folder in search for f in ("--search", folder)]
            full = lineage(monkeypatch, "off", user, "--json", *flags)
            assert ("not a regular file" in full[2]) == (search != ("a", odd.parent.name))
            assert full[2].count("not a regular file") in (0, 2)  # the FIFO and the socket
            assert "No such device" not in full[2]
            for _ in range(2):
                assert lineage(monkeypatch, cache, user, "--json", *flags) == full, search
        assert producer(json.loads(full[1]), "u") == "odd.py"
    finally:
        bound.close()


def folder_rows_agree_with_record_rows(location: Path) -> None:
    """Each folder's row names exactly the records the index has rows of, with their stat
    keys: what lets a folder none of whose records changed be taken whole."""
    from provenance.stores.scan import parse_entries

    with sqlite3.connect(location) as db:
        rows: dict[bytes, dict[bytes, bytes]] = {}
        for path, stat in db.execute("SELECT path, stat FROM records"):
            folder, _, name = bytes(path).rpartition(b"/")
            rows.setdefault(folder, {})[name] = bytes(stat)
        folders = {
            bytes(path): parse_entries(bytes(entries))
            for path, entries in db.execute("SELECT path, entries FROM folders")
        }
    assert folders == rows


@pytest.mark.parametrize("meanwhile", ["forgets one", "stores one", "nothing"])
def test_a_folder_row_written_after_another_command_wrote_is_made_from_the_rows(
    proj, tmp_path, meanwhile
):
    from provenance.stores import scan
    from provenance.stores.lineage_index import Output

    for i in range(4):
        write(proj / f"r{i}.manifest.json", document(f"s{i}.py"))
    aged(proj)
    location = tmp_path / FILE_NAME
    build_index([proj], None, Boundary.of([proj]), LineageIndex(location, racy_window_ns=0))
    [folder] = scan.scan(proj)
    ours = LineageIndex(location, racy_window_ns=0)
    held = ours.folders_under(folder.key)
    assert held is not None
    assert held[folder.key] == folder.entries
    (proj / "r0.manifest.json").write_text(json.dumps(document("changed.py")))  # to read again
    [folder] = scan.scan(proj)
    changes = ours.walked(folder.key, folder.entries, held[folder.key])
    assert changes is not None
    assert changes.changed == [b"r0.manifest.json"]
    other = LineageIndex(location, racy_window_ns=0)  # another command, at the same time
    if meanwhile == "forgets one":  # as one that found r1 unreadable would
        other.forget([folder.key + b"/r1.manifest.json"])
    elif meanwhile == "stores one":  # a record this command never saw
        key = scan.parse_entries(folder.entries)[b"r2.manifest.json"]
        later = time.time_ns() + RACY_WINDOW_NS
        other.put(
            folder.key + b"/new.manifest.json",
            key,
            "n.py",
            [],
            "{}",
            digest=b"",
            walk_began_ns=later,
        )
    other.flush()
    other.close()
    now = scan.parse_entries(folder.entries)
    output = Output(0, "out", "out", "b" * 64, False)
    ours.put(
        folder.key + b"/r0.manifest.json",
        now[b"r0.manifest.json"],
        "changed.py",
        [output],
        "{}",
        digest=b"",
        walk_began_ns=time.time_ns() + RACY_WINDOW_NS,
    )
    ours.flush()
    ours.close()
    folder_rows_agree_with_record_rows(location)
    with sqlite3.connect(location) as db:
        [(entries,)] = db.execute("SELECT entries FROM folders").fetchall()
    names = set(scan.parse_entries(bytes(entries)))
    expected = {f"r{i}.manifest.json".encode() for i in range(4)}
    if meanwhile == "forgets one":
        expected.discard(b"r1.manifest.json")
    elif meanwhile == "stores one":
        expected.add(b"new.manifest.json")
    assert names == expected


def test_the_deepest_chain_allowed_prints_as_json(proj, tmp_path, monkeypatch):
    from provenance.reading.lineage import MAX_DEPTH

    for i in range(MAX_DEPTH + 1):  # s0 from a raw input, each next one from the one before
        source = entry("raw.txt", 10**6) if i == 0 else entry(f"s{i - 1}.txt", i - 1)
        write(
            proj / f"s{i}.txt.manifest.json",
            document("step.py", inputs={"src": source}, outputs={"dst": entry(f"s{i}.txt", i)}),
        )
    aged(proj)
    for cache in ("off", str(tmp_path / "cache" / "digests.sqlite3")):
        code, out, err = lineage(
            monkeypatch, cache, proj / f"s{MAX_DEPTH}.txt", "--json", "--max-depth", str(MAX_DEPTH)
        )
        assert (code, err) == (0, ""), err
        tree, depth = json.loads(out), 0
        while tree["inputs"] and "produced_by" in tree["inputs"][0]:
            tree, depth = tree["inputs"][0]["produced_by"], depth + 1
        assert depth == MAX_DEPTH


def test_a_producer_rewritten_after_the_walk_restarts_without_blaming_the_index(
    proj, tmp_path, capfd
):
    from provenance.reading.lineage import StoreFailed

    made = write(proj / "t.manifest.json", document("make.py", outputs={"t": entry("t", 5)}))
    aged(proj)
    store = LineageIndex(tmp_path / FILE_NAME, racy_window_ns=0)
    boundary = Boundary.of([proj])
    build_index([proj], None, boundary, store)
    index = build_index([proj], None, boundary, store)  # warm: the record is not read
    assert index.parsed == 0
    write(made, document("make.py", outputs={"t": entry("t", 6)}))  # after the walk
    with pytest.raises(StoreFailed):
        list(index._by_digest(f"{5:064x}", ""))
    assert not store.broken
    assert capfd.readouterr().err == ""
    store.close()
