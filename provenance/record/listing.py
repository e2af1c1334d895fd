"""A folder's listing: the files a run hashed in a folder it declared, kept beside its record.

The listing is the very stream the folder's digest is taken of (``provenance.tree/v1``, then
``kind NUL relpath NUL payload NUL`` per entry: see ``hash_tree``), so the digest the record
holds for the folder verifies it too: a listing whose BLAKE3 is not that digest is not the one
the record names. It is read as hostile input all the same: bounded in bytes and entries
(``MAX_LISTING_BYTES``, ``MAX_LISTED``), never through a symlink or from what is not a file,
and refused unless every entry is one a walk writes, in the order a walk writes them.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import blake3

from provenance.measure.hashing import TREE_FORMAT
from provenance.record.limits import MAX_LISTED, MAX_LISTING_BYTES, MAX_PATH_BYTES

_HEADER = TREE_FORMAT.encode() + b"\0"
_FILE = re.compile(rb"\d{1,20}:[0-9a-f]{64}")
_OPEN = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
_OPEN |= getattr(os, "O_CLOEXEC", 0)

Listing = dict[bytes, tuple[bytes, bytes]]  # relpath -> (kind, payload)


class BadListing(ValueError):
    """A listing that is not one a run writes, or not the one the record names."""


def read(path: Path, digest: str) -> Listing:
    """The listing at ``path``, checked against the folder's recorded ``digest``."""
    try:
        fd = os.open(path, _OPEN)
    except FileNotFoundError:
        raise BadListing("no listing beside the record") from None
    except OSError as err:
        raise BadListing(f"its listing cannot be opened: {err.strerror or err}") from err
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BadListing("its listing is not a file")
        if st.st_size > MAX_LISTING_BYTES:
            raise BadListing("its listing is larger than a listing may be")
        data = os.read(fd, MAX_LISTING_BYTES + 1)
    except OSError as err:
        raise BadListing(f"its listing cannot be read: {err.strerror or err}") from err
    finally:
        os.close(fd)
    return parse(data, digest)


def parse(data: bytes, digest: str) -> Listing:
    if len(data) > MAX_LISTING_BYTES:
        raise BadListing("its listing is larger than a listing may be")
    if blake3.blake3(data).hexdigest() != digest:
        raise BadListing("its listing is not the one the record names (another digest)")
    if not data.startswith(_HEADER) or not data.endswith(b"\0"):
        raise BadListing("its listing is not a provenance.tree/v1 listing")
    fields = data[len(_HEADER) : -1].split(b"\0") if len(data) > len(_HEADER) else []
    if len(fields) % 3 or len(fields) // 3 > MAX_LISTED:
        raise BadListing("its listing has a malformed or excessive number of entries")
    found: Listing = {}
    last = b""
    for i in range(0, len(fields), 3):
        kind, relpath, payload = fields[i : i + 3]
        if not _entry_ok(kind, relpath, payload) or relpath <= last:
            raise BadListing(f"its listing has a malformed entry (the {i // 3 + 1}th)")
        found[relpath] = (kind, payload)
        last = relpath
    return found


def _entry_ok(kind: bytes, relpath: bytes, payload: bytes) -> bool:
    if not relpath or len(relpath) > MAX_PATH_BYTES or relpath.startswith(b"/"):
        return False
    if any(part in (b"", b".", b"..") for part in relpath.split(b"/")):
        return False
    if kind == b"f":
        return _FILE.fullmatch(payload) is not None
    if kind == b"l":
        return 0 < len(payload) <= MAX_PATH_BYTES
    return kind in (b"d", b"o") and payload == b""


@dataclass
class Changes:
    """The entries of a folder that changed, were added or were removed, by relative path."""

    changed: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[str]]:
        return {"changed": self.changed, "added": self.added, "removed": self.removed}


def compare(before: Listing, now: Listing) -> Changes:
    """What differs between two listings, each list in the walk's order."""
    changes = Changes()
    for relpath in sorted({*before, *now}):
        shown = relpath.decode("utf-8", "surrogateescape")
        if relpath not in now:
            changes.removed.append(shown)
        elif relpath not in before:
            changes.added.append(shown)
        elif before[relpath] != now[relpath]:
            changes.changed.append(shown)
    return changes
