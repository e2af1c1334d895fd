"""Deterministic provenance sidecars for every run of a script.

The names below are imported when first used (PEP 562), so the ``provenance`` command and the
modules it reads records with start without the decorator's machinery (wrapt, the run). Reading
records from Python (``record_of``, ``verify``, ``lineage``, ``find_runs``) is
``provenance.read``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provenance.decorator import RecordedRun, recorded_run
    from provenance.errors import (
        DeclarationError,
        NoActiveRunError,
        NoSidecarTargetError,
        ProvenanceError,
        SidecarWriteError,
    )
    from provenance.measure.hashing import HashPolicy
    from provenance.measure.paths import Glob
    from provenance.read import (
        MAX_LINEAGE_DEPTH,
        Boundary,
        Check,
        Checker,
        Entry,
        Lineage,
        Record,
        RunSummary,
        UnreadableRecord,
        Verdict,
        find_runs,
        lineage,
        read_json,
        record_of,
        verify,
    )
    from provenance.record.build import build_run_provenance
    from provenance.record.schema import load_schema, validate
    from provenance.record.sidecar import atomic_write, sidecar_path_for
    from provenance.run import Run, current_run

__version__ = "0.1.0.dev0"  # nothing is released yet: CHANGELOG.md has only [Unreleased]

_WHERE = {
    "Boundary": "read",
    "Check": "read",
    "Checker": "read",
    "DeclarationError": "errors",
    "Entry": "read",
    "Glob": "measure.paths",
    "HashPolicy": "measure.hashing",
    "Lineage": "read",
    "MAX_LINEAGE_DEPTH": "read",
    "NoActiveRunError": "errors",
    "NoSidecarTargetError": "errors",
    "ProvenanceError": "errors",
    "Record": "read",
    "RecordedRun": "decorator",
    "Run": "run",
    "RunSummary": "read",
    "SidecarWriteError": "errors",
    "UnreadableRecord": "read",
    "Verdict": "read",
    "atomic_write": "record.sidecar",
    "build_run_provenance": "record.build",
    "current_run": "run",
    "find_runs": "read",
    "lineage": "read",
    "load_schema": "record.schema",
    "read_json": "read",
    "record_of": "read",
    "sidecar_path_for": "record.sidecar",
    "recorded_run": "decorator",
    "validate": "record.schema",
    "verify": "read",
}

__all__ = [
    "MAX_LINEAGE_DEPTH",
    "Boundary",
    "Check",
    "Checker",
    "DeclarationError",
    "Entry",
    "Glob",
    "HashPolicy",
    "Lineage",
    "NoActiveRunError",
    "NoSidecarTargetError",
    "ProvenanceError",
    "Record",
    "RecordedRun",
    "Run",
    "RunSummary",
    "SidecarWriteError",
    "UnreadableRecord",
    "Verdict",
    "atomic_write",
    "build_run_provenance",
    "current_run",
    "find_runs",
    "lineage",
    "load_schema",
    "read_json",
    "record_of",
    "recorded_run",
    "sidecar_path_for",
    "validate",
    "verify",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'provenance' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"provenance.{module}"), name)
    globals()[name] = value  # found once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
