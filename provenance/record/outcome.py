"""How a run ended: status, exit code, error and gate verdicts."""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from typing import Any

SUCCEEDED, FAILED, INTERRUPTED = "succeeded", "failed", "interrupted"
# The status of a record written when a run starts, replaced by the final one when it ends.
RUNNING = "running"
SIGTERM_EXIT = 143
SIGINT_EXIT = 130
# CPython makes a tuple given to sys.exit the SystemExit's arguments (``(3,)`` exits 3) when it
# makes the exception object. From 3.12 it does so at once; before, only once something catches
# it, and nothing has at the top of a script: there ``sys.exit((3,))`` prints ``(3,)``, exits 1.
_TUPLE_IS_ARGS = sys.version_info >= (3, 12)


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM or SIGHUP so the run can unwind and record itself."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = int(signum)


@dataclass(frozen=True)
class Outcome:
    status: str
    exit_code: int
    error: dict[str, str] | None = None

    def as_record(self, gates: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": self.status,
            "exit_code": self.exit_code,
            "error": self.error,
            "gates": gates,
        }


def exit_code_of(code: object) -> int:
    """The status a POSIX process ends with after ``sys.exit(code)``.

    None is 0; an int the C ``long`` holds keeps its low byte (``-1`` is 255, ``256`` is 0);
    a larger one makes CPython exit with 255; anything else prints and exits 1.
    """
    if code is None:
        return 0
    if isinstance(code, int):
        value = int(code)
        return value & 0xFF if -(2**63) <= value < 2**63 else 255
    return 1


def from_exit_code(code: object) -> Outcome:
    """Outcome of a ``SystemExit`` code."""
    status = exit_code_of(code)
    return Outcome(SUCCEEDED if status == 0 else FAILED, status)


def raised_by_exit(value: object) -> SystemExit:
    """The exception ``sys.exit(value)`` raises, as the top of a script sees it: ``value`` itself
    if it is a ``SystemExit``, else one made of it."""
    if isinstance(value, SystemExit):
        return value
    if isinstance(value, tuple) and _TUPLE_IS_ARGS:
        return SystemExit(*value)
    return SystemExit(value)


def code_of(exc: SystemExit) -> object:
    """The code CPython exits by when ``exc`` ends the process; a ``code`` it cannot read makes
    it print ``exc`` and exit 1, as a code that is not an int does."""
    try:
        return exc.code
    except Exception:  # noqa: BLE001 -- a subclass's hostile ``code`` must not stop the record
        return exc


def exit_code_of_return(value: object) -> int:
    """The status a process ends with after ``sys.exit(value)``, ``value`` what main returned."""
    return exit_code_of(code_of(raised_by_exit(value)))


def from_returned(value: object) -> Outcome:
    """Outcome of what main returned, as ``sys.exit(main())`` ends the process with it."""
    status = exit_code_of_return(value)
    return Outcome(SUCCEEDED if status == 0 else FAILED, status)


def error_of(exc: BaseException) -> dict[str, str]:
    """``{type, message}`` of an exception; a ``__str__`` that raises does not stop the record."""
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    try:
        message = str(exc)
    except Exception as err:  # noqa: BLE001 -- the script's exception must still be recorded
        message = f"<str() of the exception failed: {type(err).__name__}>"
    return {"type": name, "message": message}


def from_exception(exc: BaseException) -> Outcome:
    """Outcome of an exception escaping the run."""
    if isinstance(exc, SystemExit):
        code = code_of(exc)
        outcome = from_exit_code(code)
        if code is None or isinstance(code, int):
            return outcome
        # sys.exit("gate failed: see the report") prints its message: keep it.
        return Outcome(outcome.status, outcome.exit_code, error_of(exc))
    if isinstance(exc, KeyboardInterrupt):
        return Outcome(INTERRUPTED, SIGINT_EXIT)
    if isinstance(exc, Terminated):
        return Outcome(INTERRUPTED, signal_exit(exc.signum))
    return Outcome(FAILED, 1, error_of(exc))


def signal_exit(signum: int) -> int:
    """The status a shell reports for a process killed by ``signum``: 128 + its number."""
    return 128 + int(signum)
