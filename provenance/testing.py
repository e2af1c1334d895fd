"""Test helpers: run a recorded script's ``main`` and look at the record it wrote.

As a pytest plugin (registered when provenance is installed) it gives the ``provenance_run``
fixture::

    def test_my_trainer_records_its_table(provenance_run, tmp_path):
        (tmp_path / "t.csv").write_text("adm2,mos\\n0.9,4.1\\n")
        result = provenance_run(train.main, ["--table", "t.csv", "--out", "m.json"])
        assert result.exit_code == 0
        assert result.block["inputs"]["table"]["path"].endswith("t.csv")

The fixture runs ``main`` in the test's temporary folder, so relative paths in ``argv`` land
there. ``run_recorded`` does the same anywhere, without pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.record.outcome import code_of, exit_code_of, exit_code_of_return
from provenance.record.write import sidecar_watcher


@dataclass
class RecordedResult:
    """What one call of a recorded ``main`` did: its exit code and the record(s) it wrote."""

    exit_code: int
    sidecar_path: Path | None
    sidecar: dict[str, Any] | None
    exception: BaseException | None = None  # what main raised, other than SystemExit
    written: list[Path] = field(default_factory=list)  # every record written, in order

    @property
    def block(self) -> dict[str, Any]:
        """The record's ``run_provenance`` block; fails the test if no record was written."""
        if self.sidecar is None:
            raise AssertionError("the run wrote no sidecar")
        block: dict[str, Any] = self.sidecar["run_provenance"]
        return block


@contextlib.contextmanager
def _inside(folder: str | os.PathLike[str] | None) -> Iterator[None]:
    if folder is None:
        yield
        return
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def run_recorded(
    main: Callable[..., Any],
    argv: Sequence[str | os.PathLike[str]] = (),
    *,
    cwd: str | os.PathLike[str] | None = None,
) -> RecordedResult:
    """Call ``main(argv)`` as its script would run, in ``cwd``, and read the record it wrote.

    ``SystemExit`` becomes the exit code; another exception is kept in ``exception`` (with exit
    code 1) rather than raised, so a test can look at the record of a run that crashed.
    """
    written: list[Path] = []
    token = sidecar_watcher.set(lambda path: written.append(Path(os.path.abspath(path))))
    exception = None
    try:
        with _inside(cwd):
            try:
                code = exit_code_of_return(main([os.fspath(a) for a in argv]))
            except SystemExit as exit_:
                code = exit_code_of(code_of(exit_))
            except Exception as err:  # noqa: BLE001 - handed back to the test, not swallowed
                code, exception = 1, err
    finally:
        sidecar_watcher.reset(token)
    path = written[-1] if written else None
    sidecar = json.loads(path.read_text("utf-8")) if path is not None else None
    return RecordedResult(code, path, sidecar, exception, written)


try:
    import pytest
except ImportError:  # pragma: no cover - the plugin is only loaded by pytest
    pass
else:

    @pytest.fixture
    def provenance_run(
        tmp_path: Path,
    ) -> Callable[[Callable[..., Any], Sequence[str | os.PathLike[str]]], RecordedResult]:
        """Run a recorded ``main`` on ``argv`` inside this test's ``tmp_path``."""

        def run(
            main: Callable[..., Any], argv: Sequence[str | os.PathLike[str]] = ()
        ) -> RecordedResult:
            return run_recorded(main, argv, cwd=tmp_path)

        return run
