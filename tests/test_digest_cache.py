"""The digest cache: hits for unchanged files, never a stale digest, never a failed run."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import blake3
import pytest

from provenance.measure.hashing import SMALL_FILE_MAX, HashPolicy, hash_file, hash_tree
from provenance.stores.digest_cache import (
    ENVIRONMENT,
    RACY_WINDOW_NS,
    DigestCache,
    default_location,
)
from tests import handmade
from tests.conftest import ROOT

POLICY = HashPolicy()


def sized(fill: bytes) -> bytes:
    """Content just over the small-file size: a lone small file is read, never looked up."""
    return fill * (SMALL_FILE_MAX // len(fill) + 1)


def settled(path, data: bytes) -> None:
    """Write ``data`` and let the clock move on, so ctime differs from any later write's."""
    path.write_bytes(data)
    time.sleep(0.02)


@pytest.fixture
def cache(tmp_path):
    # A zero racy window lets the tests store files they have just written; the default window
    # is tested on its own below.
    return lambda: DigestCache(tmp_path / "cache.sqlite3", racy_window_ns=0)


def hashed(path, cache_factory, **kwargs):
    cache = cache_factory()
    try:
        return hash_file(path, POLICY, cache, **kwargs), cache
    finally:
        cache.close()


def test_an_unchanged_file_is_not_read_again(tmp_path, cache):
    path = tmp_path / "f.bin"
    settled(path, sized(b"abc"))
    first, c1 = hashed(path, cache)
    second, c2 = hashed(path, cache)
    assert first == second
    assert (c1.misses, c1.stored, c2.hits, c2.misses) == (1, 1, 1, 0)


def test_rewriting_a_file_with_the_same_size_and_mtime_changes_its_digest(tmp_path, cache):
    """The stale-digest trap: only ctime (which no one can set back) tells the two apart."""
    path = tmp_path / "f.bin"
    settled(path, sized(b"A"))
    before = os.stat(path)
    first, _ = hashed(path, cache)
    settled(path, sized(b"B"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size,
        before.st_mtime_ns,
        before.st_ino,
    )
    second, c2 = hashed(path, cache)
    assert second.blake3 == blake3.blake3(sized(b"B")).hexdigest() != first.blake3
    assert c2.hits == 0


def test_a_racily_recent_file_is_used_but_never_stored(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(sized(b"fresh"))
    os.utime(path, (0, 0))  # an old mtime does not help: the ctime is still now
    cache = DigestCache(tmp_path / "cache.sqlite3")  # the default 2 s window
    got = hash_file(path, POLICY, cache)
    cache.close()
    assert got.blake3 == blake3.blake3(sized(b"fresh")).hexdigest()
    assert cache.stored == 0


def test_sha256_is_computed_when_a_cached_entry_lacks_it(tmp_path, cache):
    path = tmp_path / "f.bin"
    settled(path, sized(b"x"))
    blake_only, _ = hashed(path, cache, sha256=False)
    assert blake_only.sha256 is None
    both, c2 = hashed(path, cache)
    assert both.sha256 is not None
    assert both.blake3 == blake_only.blake3
    assert c2.hits == 0


def test_a_warm_tree_reads_only_what_changed(tmp_path, cache):
    top = tmp_path / "tree"
    (top / "sub").mkdir(parents=True)
    for i in range(20):
        (top / "sub" / f"{i}.txt").write_text(f"file {i}")
    time.sleep(0.02)
    c1 = cache()
    cold = hash_tree(top, POLICY, c1)
    c1.close()
    settled(top / "sub" / "7.txt", b"changed")
    c2 = cache()
    warm = hash_tree(top, POLICY, c2)
    c2.close()
    assert (c2.hits, c2.misses) == (19, 1)
    assert warm.blake3 != cold.blake3
    assert warm == hash_tree(top, POLICY)  # the same as with no cache at all


def test_a_corrupt_cache_warns_once_and_hashes_correctly(tmp_path, capsys):
    location = tmp_path / "cache.sqlite3"
    location.write_bytes(b"this is not a database" * 100)
    files = []
    for i in range(3):
        files.append(tmp_path / f"{i}.bin")
        files[-1].write_bytes(sized(bytes([i])))
    cache = DigestCache(location, racy_window_ns=0)
    got = [hash_file(f, POLICY, cache) for f in files]
    cache.close()
    assert [g.blake3 for g in got] == [
        blake3.blake3(sized(bytes([i]))).hexdigest() for i in range(3)
    ]
    err = capsys.readouterr().err
    assert err.count("cannot be used") == 1
    assert str(location) in err
    assert "hashing without it" in err


def test_a_cache_locked_by_another_process_is_waited_for_then_skipped(tmp_path, capsys):
    location = tmp_path / "cache.sqlite3"
    DigestCache(location).close()  # create it
    holder = sqlite3.connect(location)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        path = tmp_path / "f.bin"
        settled(path, sized(b"data"))
        cache = DigestCache(location, racy_window_ns=0, busy_timeout=0.05)
        got = hash_file(path, POLICY, cache)
        cache.close()
    finally:
        holder.rollback()
        holder.close()
    assert got.blake3 == blake3.blake3(sized(b"data")).hexdigest()
    assert "database is locked" in capsys.readouterr().err


def test_an_unusable_location_falls_back(tmp_path, capsys):
    location = tmp_path / "a-folder"
    location.mkdir()
    path = tmp_path / "f.bin"
    path.write_bytes(sized(b"data"))
    cache = DigestCache(location)
    assert hash_file(path, POLICY, cache).blake3 == blake3.blake3(sized(b"data")).hexdigest()
    cache.close()
    assert "cannot be used" in capsys.readouterr().err


HASH_TREE = """
import sys
from provenance.stores.digest_cache import DigestCache
from provenance.measure.hashing import HashPolicy, hash_tree
cache = DigestCache(sys.argv[2], racy_window_ns=0)
print(hash_tree(sys.argv[1], HashPolicy(), cache).blake3)
cache.close()
print(cache.stored, cache.hits)
"""


def test_two_processes_share_the_cache_at_once(tmp_path):
    top = tmp_path / "tree"
    top.mkdir()
    for i in range(400):
        (top / f"{i:03d}.txt").write_bytes(os.urandom(64))
    time.sleep(0.02)
    location = tmp_path / "cache.sqlite3"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-c", HASH_TREE, str(top), str(location)]
    both = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]  # fmt: skip
    results = [p.communicate(timeout=60) for p in both]
    assert [p.returncode for p in both] == [0, 0], results
    assert all(err == "" for _, err in results), results
    digests = {out.split()[0] for out, _ in results}
    assert digests == {hash_tree(top, POLICY).blake3}
    rows = sqlite3.connect(location).execute("SELECT count(*) FROM digests").fetchone()[0]
    assert rows == 400
    third = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert third.stdout.split()[1:] == ["0", "400"]  # a third run reads nothing


def test_the_environment_moves_or_disables_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVENANCE_DIGEST_CACHE", str(tmp_path / "c.sqlite3"))
    assert default_location() == tmp_path / "c.sqlite3"
    monkeypatch.setenv("PROVENANCE_DIGEST_CACHE", str(tmp_path))  # a folder that exists
    assert default_location() == tmp_path / "digests-v1.sqlite3"
    monkeypatch.setenv("PROVENANCE_DIGEST_CACHE", str(tmp_path / "later") + "/")
    assert default_location() == tmp_path / "later" / "digests-v1.sqlite3"
    for off in ("off", "", "0"):
        monkeypatch.setenv("PROVENANCE_DIGEST_CACHE", off)
        assert default_location() is None
        assert DigestCache.from_environment() is None
    monkeypatch.delenv("PROVENANCE_DIGEST_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_location() == tmp_path / "xdg" / "provenance" / "digests-v1.sqlite3"


def test_the_cache_never_changes_a_sidecar(tmp_path):
    """The same run, cache off, cold and warm: byte-identical sidecars."""
    scores = tmp_path / "scores.csv"
    scores.write_bytes((ROOT / "ai/sample/scores.csv").read_bytes())
    os.utime(scores, (1, 1))
    time.sleep(0.02)
    sidecars = []
    for setting in ("off", str(tmp_path / "c.sqlite3"), str(tmp_path / "c.sqlite3")):
        out = tmp_path / "summary.json"
        env = dict(os.environ, PYTHONPATH=str(ROOT), PROVENANCE_DIGEST_CACHE=setting)
        done = subprocess.run(
            [sys.executable, "-m", "ai.scripts.summarize_scores", scores, "--out", out],
            env=env, capture_output=True, text=True, check=False, cwd=ROOT,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        sidecars.append((tmp_path / "summary.json.manifest.json").read_bytes())
    assert sidecars[0] == sidecars[1] == sidecars[2]


def test_rows_are_written_in_batches_as_the_walk_goes(tmp_path, monkeypatch):
    monkeypatch.setattr("provenance.stores.digest_cache._WRITE_EVERY", 7)
    top = tmp_path / "tree"
    top.mkdir()
    for i in range(30):
        (top / f"{i:02d}.txt").write_text(str(i))
    time.sleep(0.02)
    cache = DigestCache(tmp_path / "cache.sqlite3", racy_window_ns=0)
    hash_tree(top, POLICY, cache)
    assert cache.stored == 28  # four batches of 7 went while the walk was still going
    cache.close()
    assert cache.stored == 30
    warm = DigestCache(tmp_path / "cache.sqlite3")
    hash_tree(top, POLICY, warm)
    warm.close()
    assert (warm.hits, warm.misses) == (30, 0)


def test_a_lone_small_file_never_opens_the_store(tmp_path):
    path = tmp_path / "small.txt"
    path.write_text("tiny")
    location = tmp_path / "cache.sqlite3"
    cache = DigestCache(location, racy_window_ns=0)
    assert hash_file(path, POLICY, cache).blake3 == blake3.blake3(b"tiny").hexdigest()
    cache.close()
    assert not location.exists()


def test_a_run_of_small_files_never_imports_sqlite3(tmp_path):
    """A recorded run that only declares small files pays nothing for the store, not even the
    import (docs/performance.md says so)."""
    (tmp_path / "data.txt").write_text("rows\n")
    script = tmp_path / "train.py"
    script.write_text(
        "import sys\n"
        "from pathlib import Path\n"
        "from provenance import recorded_run\n"
        "@recorded_run(inputs={'data': Path('data.txt')}, outputs={'model': Path('model.txt')},"
        " root='.')\n"
        "def main():\n"
        "    Path('model.txt').write_text(Path('data.txt').read_text())\n"
        "main()\n"
        "print('sqlite3' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "model.txt.manifest.json").is_file()
    assert done.stdout == "False\n"


class TestAFolderForBothStores:
    """``PROVENANCE_DIGEST_CACHE`` naming a folder (one that exists, or a value ending with a
    separator) keeps the digest cache and the lineage index in it, under their default names,
    as ``verify`` and ``runs`` use them; a value naming a file keeps the index beside it."""

    @staticmethod
    def _project(tmp_path):
        folder = handmade.project(tmp_path / "p")
        script = folder / "script.py"
        script.write_text("print('made o.bin')\n")
        out = folder / "o.bin"
        out.write_bytes(sized(b"o"))  # a small file is read, never looked up in the cache
        doc = handmade.document(
            entrypoint_digests=handmade.digests(script),
            outputs={"o": handmade.file_entry(out, "o.bin")},
        )
        record = handmade.write(folder / "o.bin.manifest.json", doc)
        # Old enough to be stored (not racy), so the index holds a row for it.
        time.sleep(max(0.0, (record.stat().st_ctime_ns + RACY_WINDOW_NS - time.time_ns()) / 1e9))
        time.sleep(0.05)
        return folder, out

    @staticmethod
    def _commands(folder, out, value):
        env = {ENVIRONMENT: value}
        for done in (
            handmade.cli_in(folder, "verify", out, env=env),
            handmade.cli_in(folder, "runs", folder, env=env),
        ):
            assert done.returncode == 0, done.stdout + done.stderr
            assert done.stderr == ""  # no store warned it cannot be used

    @staticmethod
    def _stores(folder):
        return sorted(p.name for p in folder.iterdir() if p.name.endswith(".sqlite3"))

    @staticmethod
    def _stored(location, table):
        with sqlite3.connect(location) as db:
            return db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]

    def test_an_existing_folder_holds_both(self, tmp_path):
        folder, out = self._project(tmp_path)
        stores = tmp_path / "stores"
        stores.mkdir()
        self._commands(folder, out, str(stores))
        assert self._stores(stores) == ["digests-v1.sqlite3", "lineage-v1.sqlite3"]
        assert self._stores(tmp_path) == []  # nothing in the folder's parent
        assert self._stored(stores / "lineage-v1.sqlite3", "records") == 1

    def test_a_value_ending_with_a_separator_is_a_folder_made_when_missing(self, tmp_path):
        folder, out = self._project(tmp_path)
        stores = tmp_path / "new" / "stores"
        self._commands(folder, out, str(stores) + os.sep)
        assert self._stores(stores) == ["digests-v1.sqlite3", "lineage-v1.sqlite3"]
        assert self._stores(stores.parent) == []

    def test_a_file_keeps_the_index_beside_it(self, tmp_path):
        folder, out = self._project(tmp_path)
        stores = tmp_path / "stores"
        self._commands(folder, out, str(stores / "mine.sqlite3"))
        assert self._stores(stores) == ["lineage-v1.sqlite3", "mine.sqlite3"]
        assert self._stored(stores / "lineage-v1.sqlite3", "records") == 1

    def test_a_folder_in_the_caches_place_is_not_called_a_file(self, tmp_path):
        folder, out = self._project(tmp_path)
        stores = tmp_path / "stores"
        (stores / "digests-v1.sqlite3").mkdir(parents=True)
        done = handmade.cli_in(folder, "verify", out, env={ENVIRONMENT: str(stores)})
        assert done.returncode == 0, done.stdout + done.stderr
        warning = f"the digest cache {stores / 'digests-v1.sqlite3'} cannot be used"
        assert warning in done.stderr
        assert "Move the folder away, or set PROVENANCE_DIGEST_CACHE=off" in done.stderr
        assert "Delete the file" not in done.stderr
