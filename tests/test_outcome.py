"""The outcome table as a pure function."""

from __future__ import annotations

import pytest

from provenance.record.outcome import Terminated, from_exception, from_exit_code


@pytest.mark.parametrize(
    ("code", "status", "exit_code"),
    [
        (None, "succeeded", 0),
        (0, "succeeded", 0),
        (2, "failed", 2),
        (True, "failed", 1),
        ("message", "failed", 1),
        # What the process exits with, not the number given: POSIX keeps the low byte,
        # and CPython exits 255 for an int no C long holds.
        (-1, "failed", 255),
        (256, "succeeded", 0),
        (257, "failed", 1),
        (2**70, "failed", 255),
        (-(2**63), "succeeded", 0),
    ],
)
def test_exit_codes(code, status, exit_code):
    got = from_exit_code(code)
    assert (got.status, got.exit_code, got.error) == (status, exit_code, None)


@pytest.mark.parametrize(
    ("exc", "status", "exit_code", "error"),
    [
        (SystemExit(), "succeeded", 0, None),
        (SystemExit(4), "failed", 4, None),
        (SystemExit("bye"), "failed", 1, {"type": "SystemExit", "message": "bye"}),
        (KeyboardInterrupt(), "interrupted", 130, None),
        (Terminated(15), "interrupted", 143, None),
        (Terminated(1), "interrupted", 129, None),
        (ValueError("bad row"), "failed", 1, {"type": "ValueError", "message": "bad row"}),
    ],
)
def test_exceptions(exc, status, exit_code, error):
    got = from_exception(exc)
    assert (got.status, got.exit_code, got.error) == (status, exit_code, error)


def test_error_type_of_a_non_builtin_names_its_module():
    class GateError(Exception):
        pass

    error = from_exception(GateError("x")).error
    assert error["type"] == f"tests.test_outcome.{GateError.__qualname__}"
    assert error["type"].endswith("<locals>.GateError")
    assert error["message"] == "x"


def test_an_exception_whose_str_raises_is_still_recorded():
    class Hostile(Exception):
        def __str__(self):
            raise RuntimeError("no text for you")

    error = from_exception(Hostile()).error
    assert error["type"].endswith("Hostile")
    assert error["message"] == "<str() of the exception failed: RuntimeError>"
