"""A folder's listing beside its record, and ``verify`` naming the files of a folder that changed,
were added or were removed: through real runs of a script that writes a folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import blake3
import pytest

from provenance.measure import hashing
from provenance.measure.hashing import HashPolicy, describe_path
from provenance.record import listing
from provenance.record.listing import BadListing
from provenance.record.sidecar import listing_path, sidecar_path_for
from tests.handmade import project, run_cli, run_in

SCRIPT = """\
import argparse
import pathlib
import sys

from provenance import recorded_run


@recorded_run(outputs={"shards": "out"})
def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out")
    parser.add_argument("files", nargs="*")
    args = parser.parse_args(argv)
    out = pathlib.Path(args.out)
    out.mkdir(exist_ok=True)
    for spec in args.files:
        name, _, text = spec.partition("=")
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
"""


@pytest.fixture
def shards(tmp_path):
    """A real run that wrote ``out/`` (a.txt, b.txt, sub/c.txt): its project and folder."""
    proj = project(tmp_path / "proj")
    (proj / "write_shards.py").write_text(SCRIPT)
    proc = run_in(proj, "write_shards.py", "--out", "out", "a.txt=1", "b.txt=2", "sub/c.txt=3")
    assert proc.returncode == 0, proc.stderr
    return proj, proj / "out"


def recorded(folder: Path) -> dict:
    return json.loads(sidecar_path_for(folder).read_text())["run_provenance"]["outputs"]["shards"]


class TestTheListing:
    def test_a_run_writes_the_listing_its_folder_digest_verifies(self, shards):
        proj, out = shards
        entry = recorded(out)
        assert entry["listed"] is True
        written = listing_path(sidecar_path_for(out), entry["blake3"])
        assert written.name == f"out.manifest.files.{entry['blake3'][:16]}"
        data = written.read_bytes()
        assert blake3.blake3(data).hexdigest() == entry["blake3"]
        assert sorted(listing.parse(data, entry["blake3"])) == [
            b"a.txt",
            b"b.txt",
            b"sub",
            b"sub/c.txt",
        ]
        assert not list(proj.glob("*.tmp*"))  # written through a temporary file, renamed

    def test_the_same_run_writes_the_same_bytes_and_a_new_one_keeps_the_old_listing(self, shards):
        proj, out = shards
        sidecar = sidecar_path_for(out)
        first = {p.name: p.read_bytes() for p in proj.glob("out.manifest*")}
        again = run_in(proj, "write_shards.py", "--out", "out", "a.txt=1", "b.txt=2", "sub/c.txt=3")
        assert again.returncode == 0, again.stderr
        assert {p.name: p.read_bytes() for p in proj.glob("out.manifest*")} == first
        other = run_in(proj, "write_shards.py", "--out", "out", "a.txt=9")
        assert other.returncode == 0, other.stderr
        listings = sorted(p.name for p in proj.glob("out.manifest.files.*"))
        assert len(listings) == 2  # the earlier record's listing is still there
        assert listing_path(sidecar, recorded(out)["blake3"]).name in listings

    def test_past_its_bounds_a_folder_is_recorded_unlisted(self, tmp_path, monkeypatch):
        for i in range(5):
            (tmp_path / f"f{i}").write_text(str(i))
        kept: dict[str, bytes] = {}
        monkeypatch.setattr(hashing, "MAX_LISTED", 4)
        entry = describe_path(str(tmp_path), "d", HashPolicy(), listings=kept)
        assert entry["listed"] is False
        assert kept == {}
        monkeypatch.setattr(hashing, "MAX_LISTED", 5)
        entry = describe_path(str(tmp_path), "d", HashPolicy(), listings=kept)
        assert entry["listed"] is True
        assert list(kept) == [entry["blake3"]]


class TestVerifyNamesTheFiles:
    def test_changed_added_and_removed_files_are_named(self, shards):
        _, out = shards
        (out / "a.txt").write_text("changed")
        (out / "b.txt").unlink()
        (out / "sub" / "d.txt").write_text("new")
        result = run_cli("verify", "--no-code", out)
        assert result.code == 1
        line = next(x for x in result.out.splitlines() if "shards" in x)
        assert line.endswith("(1 file changed (a.txt), 1 added (sub/d.txt), 1 removed (b.txt))")
        (check,) = json.loads(run_cli("verify", "--json", "--no-code", out).out)[0]["checks"]
        assert check["files"] == {
            "changed": ["a.txt"],
            "added": ["sub/d.txt"],
            "removed": ["b.txt"],
        }

    def test_a_second_run_that_rewrote_the_folder_is_read_against_the_old_record(self, shards):
        proj, out = shards
        old = sidecar_path_for(out).read_bytes()
        proc = run_in(proj, "write_shards.py", "--out", "out", "a.txt=2", "e.txt=5")
        assert proc.returncode == 0, proc.stderr
        (proj / "old.manifest.json").write_bytes(old)
        # The old record read beside its own listing: copied under the old record's name.
        digest = json.loads(old)["run_provenance"]["outputs"]["shards"]["blake3"]
        source = listing_path(sidecar_path_for(out), digest)
        listing_path(proj / "old.manifest.json", digest).write_bytes(source.read_bytes())
        report = json.loads(
            run_cli("verify", "--json", "--no-code", proj / "old.manifest.json").out
        )
        (check,) = [c for c in report[0]["checks"] if c["name"] == "shards"]
        assert check["files"] == {"changed": ["a.txt"], "added": ["e.txt"], "removed": []}

    def test_the_text_names_a_few_and_json_all(self, shards):
        _, out = shards
        for i in range(8):
            (out / f"new{i}.txt").write_text(str(i))
        result = run_cli("verify", "--no-code", out)
        line = next(x for x in result.out.splitlines() if "shards" in x)
        assert line.endswith(
            "(8 files added (new0.txt, new1.txt, new2.txt, new3.txt, new4.txt, …))"
        )
        (check,) = json.loads(run_cli("verify", "--json", "--no-code", out).out)[0]["checks"]
        assert check["files"]["added"] == [f"new{i}.txt" for i in range(8)]

    def test_an_unchanged_folder_stays_unchanged(self, shards):
        _, out = shards
        result = run_cli("verify", "--no-code", out)
        assert result.code == 0, result.out

    @pytest.mark.parametrize("harm", ["edited", "missing", "symlink", "fifo"])
    def test_a_listing_not_the_one_recorded_falls_back_to_counts(self, shards, harm):
        proj, out = shards
        written = listing_path(sidecar_path_for(out), recorded(out)["blake3"])
        data = written.read_bytes()
        written.unlink()
        if harm == "edited":
            written.write_bytes(data.replace(b"b.txt", b"x.txt"))
        elif harm == "symlink":
            (proj / "elsewhere").write_bytes(data)
            written.symlink_to(proj / "elsewhere")
        elif harm == "fifo":
            os.mkfifo(written)
        (out / "a.txt").write_text("changed")
        result = run_cli("verify", "--no-code", out)
        assert result.code == 1
        line = next(x for x in result.out.splitlines() if "shards" in x)
        assert "3 files, now 3" in line  # the counts, as without a listing
        assert "(1 file changed" not in line
        why = {
            "edited": "its listing is not the one the record names",
            "missing": "no listing beside the record",
            "symlink": "its listing cannot be opened",
            "fifo": "its listing is not a file",
        }[harm]
        assert why in line


def _signed(body: bytes) -> tuple[bytes, str]:
    data = hashing.TREE_FORMAT.encode() + b"\0" + body
    return data, blake3.blake3(data).hexdigest()


class TestTheReaderIsStrict:
    """A hostile record can name any digest: a listing is refused unless a walk could write it."""

    B3 = "0" * 64

    @pytest.mark.parametrize(
        "body",
        [
            b"f\0b\x001:" + b"0" * 64 + b"\0f\0a\x001:" + b"0" * 64 + b"\0",  # out of order
            b"f\0a\x001:" + b"0" * 64 + b"\0f\0a\x001:" + b"0" * 64 + b"\0",  # twice
            b"f\0../x\x001:" + b"0" * 64 + b"\0",
            b"f\0/etc\x001:" + b"0" * 64 + b"\0",
            b"f\0a\0big\0",
            b"z\0a\0\0",
            b"d\0a\0payload\0",
            b"f\0a\0",
            b"f\0a\x00-1:" + b"0" * 64 + b"\0",
        ],
        ids=[
            "order",
            "twice",
            "dotdot",
            "absolute",
            "payload",
            "kind",
            "dir-payload",
            "short",
            "negative",
        ],
    )
    def test_a_malformed_listing_is_refused(self, body):
        data, digest = _signed(body)
        with pytest.raises(BadListing):
            listing.parse(data, digest)

    def test_a_listing_of_too_many_entries_is_refused(self, monkeypatch):
        data, digest = _signed(b"".join(b"d\0d%03d\0\0" % i for i in range(6)))
        assert len(listing.parse(data, digest)) == 6
        monkeypatch.setattr(listing, "MAX_LISTED", 5)
        with pytest.raises(BadListing):
            listing.parse(data, digest)

    def test_a_listing_under_another_digest_is_refused(self):
        data, _ = _signed(b"d\0a\0\0")
        with pytest.raises(BadListing, match="another digest"):
            listing.parse(data, self.B3)
