"""Starts runs of the faulty trainer as forked processes, for tests that start hundreds of them.

A real process per run, with real signals, without paying the interpreter's start-up and
imports each time: this process imports once, then forks a child per line read from stdin (a
JSON argv), prints ``started PID``, and ``ended PID RETURNCODE`` (negative: killed by that
signal) when the child ends. Each child runs ``faulty.main(argv)`` as a fresh script would:
no run active, default signal handlers.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

from tests.fakes import faulty


def _reap(lock: threading.Lock) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            if _done.is_set():
                return
            _started.wait(0.05)
            continue
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        with lock:
            print(f"ended {pid} {code}", flush=True)


_done = threading.Event()
_started = threading.Event()


def main() -> None:
    lock = threading.Lock()
    reaper = threading.Thread(target=_reap, args=(lock,), daemon=True)
    reaper.start()
    for line in sys.stdin:
        argv = json.loads(line)
        pid = os.fork()
        if pid == 0:
            for signum in (signal.SIGTERM, signal.SIGHUP):
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
        with lock:
            print(f"started {pid}", flush=True)
        _started.set()
    _done.set()
    reaper.join()


if __name__ == "__main__":
    main()
