"""Deterministic provenance sidecars for every run of a script."""

from provenance.decorator import RecordedRun, recorded_run
from provenance.errors import (
    DeclarationError,
    NoActiveRunError,
    NoSidecarTargetError,
    ProvenanceError,
    SidecarWriteError,
)
from provenance.hashing import HashPolicy
from provenance.paths import Glob
from provenance.record import build_run_provenance
from provenance.run import Run, current_run
from provenance.schema import load_schema, validate
from provenance.sidecar import atomic_write

__version__ = "0.1.0"

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
