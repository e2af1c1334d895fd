"""File and tree digests."""

from __future__ import annotations

import hashlib
import io
import os
import sys
import threading

import blake3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provenance.measure import hashing
from provenance.measure.hashing import HashPolicy, describe_path, hash_file, hash_tree, walk_tree

MIB = 1024 * 1024


class TestHashFile:
    @pytest.mark.parametrize("size", [0, 1, 4 * 1024 * 1024 + 7, 9 * 1024 * 1024])
    def test_digests_match_reference_implementations(self, tmp_path, size):
        data = os.urandom(size)
        path = tmp_path / "f.bin"
        path.write_bytes(data)
        got = hash_file(path, HashPolicy())
        assert got.blake3 == blake3.blake3(data).hexdigest()
        assert got.sha256 == hashlib.sha256(data).hexdigest()
        assert (got.size_bytes, got.error) == (size, None)

    def test_sha256_only_up_to_the_threshold(self, tmp_path):
        path = tmp_path / "f.bin"
        path.write_bytes(b"x" * 11)
        assert hash_file(path, HashPolicy(sha256_max_bytes=11)).sha256 is not None
        over = hash_file(path, HashPolicy(sha256_max_bytes=10))
        assert over.sha256 is None
        assert over.blake3 == blake3.blake3(b"x" * 11).hexdigest()

    def test_a_size_that_disagrees_with_what_was_read_is_an_error(self):
        # /proc files stat as empty yet yield bytes: as a file that grows while being hashed.
        got = hash_file("/proc/self/status", HashPolicy())
        assert (got.blake3, got.sha256) == (None, None)
        assert got.error.startswith("changed while hashing: 0 bytes expected")

    @pytest.mark.parametrize("fork", [True, False])
    def test_the_large_file_path_agrees_with_the_reference(self, tmp_path, monkeypatch, fork):
        """Over the SHA-256 threshold: mapped in a forked child, or read with threads."""
        monkeypatch.setattr(hashing, "_FORK_MMAP", fork and hashing._FORK_MMAP)
        data = os.urandom(3 * MIB + 5)
        path = tmp_path / "big.bin"
        path.write_bytes(data)
        got = hash_file(path, HashPolicy(sha256_max_bytes=MIB))
        assert got == hashing.FileDigest(len(data), blake3.blake3(data).hexdigest(), None)

    @pytest.mark.parametrize(
        ("sha256_max_bytes", "size"),
        [(2**40, 1024 * MIB), (0, 4096 * MIB)],
        ids=["read-pass", "mapped-in-child"],
    )
    def test_a_file_truncated_while_hashed_is_an_error_not_a_crash(
        self, tmp_path, sha256_max_bytes, size
    ):
        """A sparse file reads fast; another thread cuts it short while it is being hashed."""
        path = tmp_path / "sparse.bin"
        with open(path, "wb") as handle:
            handle.truncate(size)
        cut = threading.Timer(0.05, os.truncate, (path, 4096))
        cut.start()
        try:
            got = hash_file(path, HashPolicy(sha256_max_bytes=sha256_max_bytes))
        finally:
            cut.join()
        assert (got.blake3, got.sha256) == (None, None)
        assert got.error.startswith("changed while hashing"), got.error
        assert os.path.getsize(path) == 4096

    def test_a_file_touched_while_hashed_gets_no_digest(self, tmp_path):
        """Same size throughout, but its mtime moved: what was read may not be what is there."""
        path = tmp_path / "sparse.bin"
        with open(path, "wb") as handle:
            handle.truncate(1024 * MIB)
        touch = threading.Timer(0.05, os.utime, (path, (1, 1)))
        touch.start()
        try:
            got = hash_file(path, HashPolicy(sha256_max_bytes=2**40))
        finally:
            touch.join()
        assert got.blake3 is None
        assert got.error == (
            f"changed while hashing: its size or times moved ({1024 * MIB} bytes before, "
            f"{1024 * MIB} after)"
        )

    def test_unreadable_is_an_error_entry(self, tmp_path):
        got = hash_file(tmp_path / "missing", HashPolicy())
        assert got.blake3 is None
        assert got.error.startswith("FileNotFoundError")


class TestDescribePath:
    def test_missing(self, tmp_path):
        assert describe_path(str(tmp_path / "x"), "x", HashPolicy()) == {
            "path": "x",
            "exists": False,
        }

    def test_below_a_file_is_missing(self, tmp_path):
        (tmp_path / "f").write_text("")
        assert describe_path(str(tmp_path / "f" / "x"), "x", HashPolicy())["exists"] is False

    def test_fifo_is_never_opened(self, tmp_path):
        fifo = tmp_path / "pipe"
        os.mkfifo(fifo)
        result = {}
        worker = threading.Thread(
            target=lambda: result.update(describe_path(str(fifo), "pipe", HashPolicy()))
        )
        worker.start()
        worker.join(timeout=10)
        assert not worker.is_alive(), "describing a FIFO blocked"
        assert result == {"path": "pipe", "exists": True, "kind": "other"}


def make_tree(root):
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.txt").write_text("beta")
    (root / "empty").mkdir()
    return root


class TestHashTree:
    def test_counts_and_determinism(self, tmp_path):
        one = hash_tree(make_tree(tmp_path / "one"), HashPolicy())
        two = hash_tree(make_tree(tmp_path / "two"), HashPolicy())
        assert one.blake3 == two.blake3 is not None
        assert (one.file_count, one.size_bytes, one.errors) == (2, 9, [])

    @pytest.mark.parametrize(
        "change",
        [
            lambda r: (r / "a.txt").write_text("alphA"),
            lambda r: (r / "a.txt").rename(r / "c.txt"),
            lambda r: (r / "empty").rmdir(),
            lambda r: (r / "new").mkdir(),
            lambda r: os.symlink("a.txt", r / "link"),
        ],
    )
    def test_any_change_changes_the_digest(self, tmp_path, change):
        root = make_tree(tmp_path / "t")
        before = hash_tree(root, HashPolicy()).blake3
        change(root)
        assert hash_tree(root, HashPolicy()).blake3 != before

    def test_symlinks_are_recorded_not_followed(self, tmp_path):
        root = make_tree(tmp_path / "t")
        os.symlink(root, root / "loop")
        got = hash_tree(root, HashPolicy())
        assert got.file_count == 2
        assert got.blake3 is not None

    def test_deep_trees_do_not_recurse(self, tmp_path):
        folder = tmp_path / "deep"
        folder.mkdir()
        levels = [folder]
        for _ in range(1200):  # deeper than Python's default recursion limit
            levels.append(levels[-1] / "d")
            levels[-1].mkdir()
        leaf = levels[-1] / "leaf"
        leaf.write_text("x")
        try:
            assert hash_tree(folder, HashPolicy()).file_count == 1
        finally:
            # shutil.rmtree (and so pytest's own clean-up) recurses; take it down bottom-up.
            leaf.unlink()
            for level in reversed(levels):
                level.rmdir()


names = st.sampled_from(["a", "a.txt", "a-b", "a0", "b", "\u00e9", "a b", "z"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(names, min_size=1, max_size=3), min_size=1, max_size=12))
def test_the_walk_yields_entries_in_bytewise_order_of_their_paths(tmp_path_factory, paths):
    top = tmp_path_factory.mktemp("tree")
    for parts in paths:
        *folders, name = parts
        folder = top.joinpath(*folders)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            continue  # a file already holds a name on this path
        if not (folder / name).exists():
            (folder / name).write_text(name)
    walked = [entry.relpath for entry in walk_tree(top)]
    assert walked == sorted(walked)
    assert len(walked) == sum(len(files) + len(dirs) for _, dirs, files in os.walk(top))


def test_symlink_loops_are_recorded_not_followed(tmp_path):
    top = tmp_path / "t"
    top.mkdir()
    (top / "a").symlink_to("b")
    (top / "b").symlink_to("a")
    (top / "up").symlink_to("..")
    (top / "self").symlink_to(".")
    tree = hash_tree(top, HashPolicy())
    assert tree.errors == []
    assert tree.blake3 is not None
    assert [e.kind for e in walk_tree(top)] == ["l", "l", "l", "l"]


def test_a_fifo_handed_to_hash_file_is_an_error_not_a_hang(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = hash_file(fifo, HashPolicy())
    assert got.blake3 is None
    assert got.error == "OSError: not a regular file"


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_the_progress_bar_shows_only_on_a_terminal_and_only_when_slow(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    quiet = hashing.Progress("hashing")
    quiet.advance(10)
    quiet.close()
    assert sys.stderr.getvalue() == ""
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    shown = hashing.Progress("hashing")
    shown.advance(5 * MIB)
    assert shown._bar.n == 5 * MIB
    assert shown._bar.delay == 1.0  # nothing is drawn for hashing that ends within a second
    shown.close()


class TestProgress:
    """What the bar says, read from tqdm's own rendering of it: no timing involved."""

    def bar(self):
        terminal = _Terminal()
        return hashing.Progress("hashing", stream=terminal, delay=0), terminal

    def test_a_known_total_gives_the_bytes_out_of_it_and_the_time_left(self, tmp_path):
        (tmp_path / "out" / "sub").mkdir(parents=True)
        (tmp_path / "out" / "a.bin").write_bytes(b"a" * 3000)
        (tmp_path / "out" / "sub" / "b.bin").write_bytes(b"b" * 2000)
        progress, terminal = self.bar()
        progress.expect(10_000)
        describe_path(str(tmp_path / "out"), "runs/out", HashPolicy(), progress=progress)
        line = str(progress._bar)
        assert "5.00k/10.0k " in line
        assert "<" in line.split("[", 1)[1]  # elapsed<remaining: the ETA
        assert line.endswith("2 files, runs/out/sub/b.bin]")
        assert terminal.getvalue()  # drawn on the stream it was given
        progress.close()

    def test_an_unknown_total_gives_the_bytes_and_files_without_an_eta(self, tmp_path):
        (tmp_path / "model.bin").write_bytes(b"m" * 1500)
        progress, _ = self.bar()
        describe_path(str(tmp_path / "model.bin"), "model.bin", HashPolicy(), progress=progress)
        line = str(progress._bar)
        assert "1.50kB " in line
        assert "/" not in line.split("[", 1)[0]  # no total to be a fraction of
        assert line.endswith("1 file, model.bin]")
        progress.begin("next.bin")  # named while it is hashed, before it is done
        assert str(progress._bar).endswith("1 file, next.bin]")
        progress.close()

    def test_a_long_or_odd_path_shows_its_end_on_one_line(self):
        progress, _ = self.bar()
        progress.begin("runs/" + "deep/" * 20 + "last\x1b[2J\n.bin")
        line = str(progress._bar)
        assert "\x1b" not in line
        assert "\n" not in line
        assert line.endswith("…" + ("deep/" * 20 + "last?[2J?.bin")[-39:] + "]")
        progress.close()

    def test_verify_totals_what_the_records_hold_before_it_hashes(self, tmp_path, monkeypatch):
        from provenance.reading.verify import Verifier, planned
        from provenance.records import load
        from tests.handmade import document, file_entry, project, write

        proj = project(tmp_path / "p")
        (proj / "in.csv").write_bytes(b"x" * 700)
        (proj / "o.bin").write_bytes(b"y" * 300)
        doc = document(
            inputs={"table": file_entry(proj / "in.csv", "in.csv")},
            outputs={"model": file_entry(proj / "o.bin", "o.bin"), "none": None},
        )
        record = load(str(write(proj / "o.bin.manifest.json", doc)), None)
        assert planned(record) == 1000
        monkeypatch.setattr(sys, "stderr", _Terminal())
        verifier = Verifier(2**40, 10, None, outside_root=False)
        verifier.progress.expect(planned(record))
        checks = verifier.record(record, code=False)
        assert [c.status for c in checks] == ["unchanged", "unchanged"]
        assert verifier.progress._bar.total == 1000
        assert verifier.progress._bar.n == 1000
        verifier.progress.close()


def test_the_forked_hasher_answers_while_another_process_holds_its_pipe(tmp_path, monkeypatch):
    """A process another thread forks while the child hashes inherits the pipe's write end and
    may live on: the answer is the child's, taken when the child ends, not at the pipe's end."""
    import subprocess

    from tests.handmade import hang_guard

    data = os.urandom(3 * 2**20)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    holders: list[subprocess.Popen[bytes]] = []
    real_pipe = os.pipe

    def pipe() -> tuple[int, int]:
        readable, writable = real_pipe()
        if not holders:  # the hasher's pipe; Popen's own pipes come from the real os.pipe
            holders.append(None)  # type: ignore[arg-type]  # taken before Popen asks again
            holders[0] = subprocess.Popen(["sleep", "60"], pass_fds=(writable,))
        return readable, writable

    monkeypatch.setattr(hashing.os, "pipe", pipe)
    fd = os.open(path, os.O_RDONLY)
    try:
        with hang_guard(20):
            digest = hashing._hash_mapped_in_child(fd, len(data))
    finally:
        os.close(fd)
        for holder in holders:
            holder.kill()
            holder.wait()
    assert holders, "the child's pipe was made"
    assert digest == blake3.blake3(data).hexdigest()
