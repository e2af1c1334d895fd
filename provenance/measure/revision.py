"""The code revision a run started from: the git commit of the entrypoint's work tree, whether
tracked files differ from it, and a digest of how.

Measured once, when the outermost run starts (what a run writes into its own work tree must not
change the revision it started from). Only git's plumbing-level answers are used, in a clean
environment: no ``GIT_*`` variable from the caller (``GIT_DIR`` must not point git at another
repository), no system config, no pager, no external diff, no textconv, no fsmonitor, no
optional locks, and a time limit. The digest is not git's patch text (which a user's diff
settings reshape) but BLAKE3 over each changed path, its modes, its blob in the commit and the
BLAKE3 of its content in the work tree, so the same commit with the same tracked contents gives
the same bytes in any folder, for any user.

Untracked files are not counted: the project code a run imports is digested in ``code``
whether git tracks it or not, declared inputs have their own digests, and an untracked output
written into the work tree would otherwise make the second run of a command look different
from the first.

Nothing here ever fails a run: with no ``.git`` above the entrypoint there is no revision, and
when git is missing, too slow or refuses, the revision says why instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from blake3 import blake3

GIT_TIMEOUT = "PROVENANCE_GIT_TIMEOUT"
DEFAULT_TIMEOUT = 10.0  # seconds, for all of one measurement's git calls together
# Settings that could run a program or reshape the answer, pinned whatever any config says.
_PINNED = (
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    "core.quotePath=true",
    "diff.external=",
    "diff.relative=false",
    "diff.renames=false",
    "diff.ignoreSubmodules=untracked",
)
_DIFF = (
    "diff",
    "--raw",
    "-z",
    "--no-abbrev",
    "--no-renames",
    "--no-relative",
    "--no-ext-diff",
    "--no-textconv",
    "--no-color",
    "--ignore-submodules=untracked",
)
_SUBMODULE = b"160000"
_SYMLINK = b"120000"


class _GitTrouble(Exception):
    """Why git gave no usable answer, as the record says it."""


def _timeout() -> float:
    try:
        value = float(os.environ.get(GIT_TIMEOUT, ""))
    except ValueError:
        return DEFAULT_TIMEOUT
    return value if value > 0 else DEFAULT_TIMEOUT


def in_work_tree(folder: str) -> bool:
    """Whether ``folder`` or a folder above it holds ``.git`` (a folder, or a worktree's file)."""
    here = os.path.abspath(folder)
    while True:
        if os.path.lexists(os.path.join(here, ".git")):
            return True
        parent = os.path.dirname(here)
        if parent == here:
            return False
        here = parent


def clean_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment without any ``GIT_*`` variable, plus what keeps git quiet."""
    env = {k: v for k, v in environ.items() if not k.upper().startswith("GIT_")}
    env.update(
        GIT_CONFIG_NOSYSTEM="1",
        GIT_OPTIONAL_LOCKS="0",
        GIT_TERMINAL_PROMPT="0",
        GIT_PAGER="cat",
        GIT_LITERAL_PATHSPECS="1",  # the entrypoint's name is a name, never a glob
        PAGER="cat",
        LC_ALL="C",
    )
    return env


class _Git:
    """git run in one folder, every call under one shared deadline."""

    def __init__(self, program: str, cwd: str, env: dict[str, str], deadline: float) -> None:
        self.program, self.cwd, self.env, self.deadline = program, cwd, env, deadline

    def __call__(self, *args: str, cwd: str | None = None, ok: tuple[int, ...] = (0,)) -> bytes:
        pinned = [word for setting in _PINNED for word in ("-c", setting)]
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _GitTrouble(f"git did not answer within {_timeout():g} s")
        try:
            # Its own process group, so that on time-out whatever git started ends with it
            # and nothing is left holding the pipe the answer is read from.
            proc = subprocess.Popen(
                [self.program, "--no-pager", *pinned, *args],
                cwd=cwd or self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as err:
            raise _GitTrouble(f"git could not be run: {err.strerror or err}") from None
        try:
            out, _ = proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            _end_group(proc)
            raise _GitTrouble(f"git did not answer within {_timeout():g} s") from None
        except BaseException:  # Ctrl-C while git works: git must not outlive the question
            _end_group(proc)
            raise
        if proc.returncode not in ok:
            # git's message names the folder: the record must not, so only the call is said.
            raise _GitTrouble(f"git {args[0]} exited {proc.returncode}")
        return out


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    proc.communicate()


def measure(entrypoint: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``revision`` object for a run of ``entrypoint``; None when it is in no git work tree."""
    folder = os.path.dirname(os.path.realpath(entrypoint))
    if not in_work_tree(folder):
        return None
    env = clean_environment(os.environ)
    program = shutil.which("git", path=env.get("PATH"))
    if program is None:
        return {"vcs": "git", "error": "git was not found on PATH"}
    git = _Git(program, folder, env, time.monotonic() + _timeout())
    try:
        return _revision(git, os.path.realpath(entrypoint))
    except _GitTrouble as err:
        return {"vcs": "git", "error": str(err)}
    except Exception as err:  # noqa: BLE001 -- an answer git was not expected to give
        return {"vcs": "git", "error": f"git's answer could not be read: {type(err).__name__}"}


def _revision(git: _Git, entrypoint: str) -> dict[str, Any]:
    top = os.fsdecode(git("rev-parse", "--show-toplevel").rstrip(b"\n"))
    head = git("rev-parse", "-q", "--verify", "HEAD^{commit}", ok=(0, 1)).strip()
    # With no commit yet, everything tracked differs from the empty tree.
    base = head or git("hash-object", "-t", "tree", "--stdin").strip()
    raw = git(*_DIFF, base.decode("ascii"), "--")
    digest = _difference_digest(git, top, raw)
    listed = git("ls-files", "-z", "--", entrypoint, cwd=top)
    return {
        "vcs": "git",
        "commit": head.decode("ascii") if head else None,
        "dirty": digest is not None,
        "diff_blake3": digest,
        "entrypoint_tracked": bool(listed),
    }


def _difference_digest(git: _Git, top: str, raw: bytes) -> str | None:
    """BLAKE3 over each changed path, in git's order (sorted by path): status, old and new
    mode, the blob in the commit, the path, and what the work tree holds there now."""
    fields = raw.split(b"\0")
    if fields and fields[-1] == b"":
        fields.pop()
    if not fields:
        return None
    hasher = blake3()
    for meta, path in zip(fields[0::2], fields[1::2], strict=True):
        old_mode, new_mode, old_blob, _, status = meta.lstrip(b":").split(b" ")
        now = _content(git, os.path.join(os.fsencode(top), path), new_mode, status)
        for part in (status, old_mode, new_mode, old_blob, path, now):
            hasher.update(len(part).to_bytes(8, "big") + part)
    return hasher.hexdigest()


def _content(git: _Git, path: bytes, mode: bytes, status: bytes) -> bytes:
    """What the work tree holds at a changed path, as bytes that name it."""
    if status == b"D":
        return b"deleted"
    if mode == _SUBMODULE:  # its checked-out commit; its own changes show only as dirty
        head = git("rev-parse", "-q", "--verify", "HEAD", cwd=os.fsdecode(path), ok=(0, 1, 128))
        return b"commit " + (head.strip() or b"unknown")
    try:
        if mode == _SYMLINK:
            return b"link " + os.readlink(path)
        hasher = blake3()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                hasher.update(chunk)
        return b"blake3 " + hasher.hexdigest().encode("ascii")
    except OSError:
        return b"unreadable"
