"""How a run ended: status, exit code, error and gate verdicts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SUCCEEDED, FAILED, INTERRUPTED = "succeeded", "failed", "interrupted"
# The status of a record written when a run starts, replaced by the final one when it ends.
RUNNING = "running"
SIGTERM_EXIT = 143
SIGINT_EXIT = 130


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM so the run can unwind and record itself."""


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
    """The process exit status ``sys.exit(code)`` gives: None 0, an int itself, anything else 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return int(code)
    return 1


def from_exit_code(code: object) -> Outcome:
    """Outcome of a return value or ``SystemExit`` code."""
    status = exit_code_of(code)
    return Outcome(SUCCEEDED if status == 0 else FAILED, status)


def from_exception(exc: BaseException) -> Outcome:
    """Outcome of an exception escaping the run."""
    if isinstance(exc, SystemExit):
        return from_exit_code(exc.code)
    if isinstance(exc, KeyboardInterrupt):
        return Outcome(INTERRUPTED, SIGINT_EXIT)
    if isinstance(exc, Terminated):
        return Outcome(INTERRUPTED, SIGTERM_EXIT)
    kind = type(exc)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    return Outcome(FAILED, 1, {"type": name, "message": str(exc)})
