"""The errors provenance raises; every one derives from ``ProvenanceError``."""

from __future__ import annotations


class ProvenanceError(Exception):
    """Base of every error the package raises."""


class NoActiveRunError(ProvenanceError, LookupError):
    """``current_run()`` was called outside a recorded run."""


class DeclarationError(ProvenanceError, ValueError):
    """An ``inputs``/``outputs`` declaration does not fit the parsed arguments."""


class NoSidecarTargetError(ProvenanceError):
    """The run declared no output and got no ``--manifest-out``: nowhere to write evidence."""


class SidecarWriteError(ProvenanceError, OSError):
    """The sidecar (or the embedded block) could not be written."""
