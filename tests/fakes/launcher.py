"""Starts runs of the faulty trainer as forked processes, for tests that start hundreds of them.

A real process per run, with real signals, without paying the interpreter's start-up and
imports each time: this process imports once, then forks a child per line read from stdin (a
JSON argv), prints ``started PID``, and ``ended PID RETURNCODE`` (negative: killed by that
signal) when the child ends. Each child runs ``faulty.main(argv)`` as a fresh script would:
no run active, default signal handlers.

It has one thread, and writes with ``os.write``: a child is forked from a process where no
other thread can hold a lock (stdout's, say, mid-report) that the child, which has no copy of
that thread to release it, would then wait on forever.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import sys
import threading
from typing import NoReturn

from tests.fakes import faulty


def _say(text: str) -> None:
    data = f"{text}\n".encode()
    while data:
        data = data[os.write(1, data) :]


def _run(argv: list[str], wakeup: tuple[int, int]) -> NoReturn:
    """In the child: undo the launcher's own signal set-up, run the trainer, leave."""
    signal.set_wakeup_fd(-1)
    for fd in wakeup:
        os.close(fd)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
        signal.signal(signum, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 1
    try:
        code = faulty.main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdout.flush()
        os._exit(code & 0xFF)


def _reap(running: set[int]) -> None:
    while running:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        running.discard(pid)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        _say(f"ended {pid} {code}")


def main() -> None:
    if threading.active_count() != 1:
        raise SystemExit("launcher: a thread besides the main one; it forks only without")
    wakeup = os.pipe()
    for fd in wakeup:
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wakeup[1])  # a child's end wakes the select below
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    running: set[int] = set()
    pending = b""
    reading = True
    while reading or running:
        ready, _, _ = select.select([wakeup[0], *([0] if reading else [])], [], [])
        if wakeup[0] in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(wakeup[0], 4096):
                    pass
        _reap(running)
        if 0 not in ready:
            continue
        chunk = os.read(0, 1 << 16)
        reading = bool(chunk)
        *lines, pending = (pending + chunk).split(b"\n")
        for line in filter(bytes.strip, lines):
            pid = os.fork()
            if pid == 0:
                _run(json.loads(line), wakeup)
            running.add(pid)
            _say(f"started {pid}")


if __name__ == "__main__":
    main()
