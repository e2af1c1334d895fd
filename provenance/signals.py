"""How a run hears SIGTERM, SIGHUP and Ctrl-C: unwind the script, then record, then end.

While the script runs, SIGTERM and SIGHUP (a closed SSH session) raise ``Terminated`` so that the
script's ``finally`` blocks run and the run is recorded; Ctrl-C raises ``KeyboardInterrupt`` as
it always does. Once the run is recording, no signal unwinds anything any more: a signal then
stops the hashing that is still to do (those paths are recorded as not hashed), the record is
written, and only then does the process end the way the signal asks.

Handlers are installed only in the main thread, only over the default ones (a script or
framework that handles a signal itself keeps its handler), and are inert in a forked child,
which restores the default action and re-delivers the signal to itself.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from provenance.record.outcome import Terminated

_TERMINATING = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class StopHashing(BaseException):
    """Raised inside the exit hashing when a signal asks the process to end."""


def _default_for(signum: int) -> Any:
    return signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL


class SignalGuard:
    """The signal handlers of one outermost run, from its start to its end."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.received: int | None = None  # the first signal that asked the process to end
        self.recording = False
        self.stopped = False  # a signal came while recording: hash no more
        self._hashing = 0
        self._installed: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (*_TERMINATING, signal.SIGINT):
            if signal.getsignal(signum) is _default_for(signum):
                signal.signal(signum, self._handle)
                self._installed[signum] = _default_for(signum)

    @property
    def terminated(self) -> int | None:
        """The terminating signal (SIGTERM, SIGHUP) the process must still end by, if any."""
        return self.received if self.received in _TERMINATING else None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self.pid:
            # A forked child (a multiprocessing worker) inherited this handler: it has no run
            # to record, so it ends the way it would have without us.
            signal.signal(signum, _default_for(signum))
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            os.kill(os.getpid(), signum)
            return
        if not self.recording:
            if signum in _TERMINATING:
                self.received = signum
                raise Terminated(signum)
            raise KeyboardInterrupt  # what the default handler does; the script may catch it
        if self.received is None:
            self.received = signum
        self.stopped = True
        if self._hashing:
            raise StopHashing

    @contextmanager
    def hashing(self) -> Iterator[None]:
        """A stretch of work that a signal may cut short (by raising ``StopHashing``)."""
        if self.stopped:
            raise StopHashing
        self._hashing += 1
        try:
            yield
        finally:
            self._hashing -= 1

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the signals back (they wait, pending) while the record is decided and written,
        so that none can slip in between deciding the outcome and writing it."""
        mask = set(self._installed)
        if not mask or threading.current_thread() is not threading.main_thread():
            yield
            return
        signal.pthread_sigmask(signal.SIG_BLOCK, mask)
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, mask)  # the pending ones run now

    def arrived(self) -> bool:
        """Whether a signal asked the process to end while recording: one that was handled, or
        one waiting while they are held."""
        return self.stopped or self._pending() is not None

    def ending_signal(self) -> int | None:
        """The signal the process will end by: the first received, else one held pending."""
        return self.received if self.received is not None else self._pending()

    def _pending(self) -> int | None:
        waiting = sorted(set(self._installed) & signal.sigpending())
        return waiting[0] if waiting else None

    def restore(self) -> None:
        """Put the handlers back and, after a terminating signal, end by it as asked."""
        for signum, default in self._installed.items():
            if signal.getsignal(signum) == self._handle:
                signal.signal(signum, default)
        self._installed.clear()
        terminated = self.terminated
        if terminated is not None and os.getpid() == self.pid:
            signal.signal(terminated, signal.SIG_DFL)
            os.kill(os.getpid(), terminated)
