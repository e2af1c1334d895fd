"""Run a Python script or module inside a recorded run, as ``provenance run`` starts it.

``python -m provenance.launch SCRIPT ARGS...`` (or ``-m MODULE ARGS...``) runs the script as
``python SCRIPT ARGS...`` would: as ``__main__``, with ``sys.argv`` and ``sys.path[0]`` set as
Python sets them, and ``__main__`` left in place when it ends. Around it is a ``Run`` made of
what ``provenance run`` was told (``--input``, ``--output``, ``--config``), handed over in the
``PROVENANCE_RUN`` environment variable, so the script is recorded as a decorated one is: its
arguments through the framework adapters, its files, its outcome, its gates and its rank.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provenance.run import RunSpec

SPEC_ENVIRONMENT = "PROVENANCE_RUN"
MODULE = "provenance.launch"
RECORDED_BY = "provenance run"  # what a record made so says recorded it


@dataclass(frozen=True)
class Told:
    """What ``provenance run`` was told about a command: names to paths, config files, root."""

    inputs: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    config: tuple[str, ...] = ()
    root: str | None = None

    def encode(self) -> str:
        return json.dumps(
            {
                "inputs": dict(self.inputs),
                "outputs": dict(self.outputs),
                "config": list(self.config),
                "root": self.root,
            },
            sort_keys=True,
        )

    @classmethod
    def decode(cls, text: str | None) -> Told:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            inputs={str(k): str(v) for k, v in data.get("inputs", {}).items()},
            outputs={str(k): str(v) for k, v in data.get("outputs", {}).items()},
            config=tuple(str(p) for p in data.get("config", [])),
            root=data.get("root"),
        )

    def spec(self, **more: Any) -> RunSpec:
        """The run's spec: every path a literal one, as for a script without argparse."""
        from provenance.run import RunSpec  # only a run needs it: the commands start light

        return RunSpec(
            inputs={n: Path(p) for n, p in self.inputs.items()},
            outputs={n: Path(p) for n, p in self.outputs.items()},
            root=self.root,
            recorded_by=RECORDED_BY,
            **more,
        )
