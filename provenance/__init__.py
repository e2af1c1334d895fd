"""Deterministic provenance sidecars for every run of a script.

The names below are imported when first used (PEP 562), so the ``provenance`` command and the
modules it reads records with start without the decorator's machinery (wrapt, the run).
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
    from provenance.record.build import build_run_provenance
    from provenance.record.schema import load_schema, validate
    from provenance.record.sidecar import atomic_write
    from provenance.run import Run, current_run

__version__ = "0.1.0.dev0"  # nothing is released yet: CHANGELOG.md has only [Unreleased]

_WHERE = {
    "DeclarationError": "errors",
    "Glob": "measure.paths",
    "HashPolicy": "measure.hashing",
    "NoActiveRunError": "errors",
    "NoSidecarTargetError": "errors",
    "ProvenanceError": "errors",
    "RecordedRun": "decorator",
    "Run": "run",
    "SidecarWriteError": "errors",
    "atomic_write": "record.sidecar",
    "build_run_provenance": "record.build",
    "current_run": "run",
    "load_schema": "record.schema",
    "recorded_run": "decorator",
    "validate": "record.schema",
}

__all__ = [
    "DeclarationError",
    "Glob",
    "HashPolicy",
    "NoActiveRunError",
    "NoSidecarTargetError",
    "ProvenanceError",
    "RecordedRun",
    "Run",
    "SidecarWriteError",
    "atomic_write",
    "build_run_provenance",
    "current_run",
    "load_schema",
    "recorded_run",
    "validate",
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
