"""A record as W3C PROV (PROV-JSON), made with the ``prov`` library (the sign extra).

The run is one activity (its id the export's stable run id) associated with its entrypoint as a
software agent; it used each input and generated each output, entities named by their path,
with their digests as attributes.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from provenance.errors import ProvenanceError

NAMESPACES = {
    "provenance": "urn:provenance:",  # this tool's attributes
    "run": "urn:provenance:run:",
    "path": "urn:provenance:path:",
}


class MissingProv(ProvenanceError, ImportError):
    """The ``prov`` library (the sign extra) is not installed."""


def _name(path: str) -> str:
    return "path:" + urllib.parse.quote(path, safe="/._-")


def _digests(entry: dict[str, Any]) -> Any:  # prov types its attribute values narrowly
    attributes: dict[str, Any] = {"prov:label": entry["path"]}
    for key in ("kind", "sha256", "blake3", "size_bytes", "file_count"):
        if entry.get(key) is not None:
            attributes[f"provenance:{key}"] = entry[key]
    return attributes


def document(block: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The PROV-JSON document of a record's (redacted) ``block``."""
    try:
        from prov.model import ProvDocument
    except ImportError as err:
        raise MissingProv(
            "export --format prov needs the sign extra: pip install 'provenance-sidecar[sign]'"
        ) from err
    from provenance.records import declared_entries

    made = ProvDocument()
    for prefix, uri in NAMESPACES.items():
        made.add_namespace(prefix, uri)
    outcome = block.get("outcome") or {}
    activity = made.activity(
        f"run:{run_id}",
        other_attributes={
            "prov:type": "provenance:RecordedRun",
            "provenance:status": str(outcome.get("status")),
            "provenance:exit_code": int(outcome.get("exit_code") or 0),
            "provenance:argv": json.dumps(block.get("argv"), sort_keys=True),
        },
    )
    entrypoint = block["entrypoint"]
    agent = made.agent(
        _name(entrypoint["path"]),
        {"prov:type": "prov:SoftwareAgent", **_digests({"kind": "file", **entrypoint})},
    )
    made.wasAssociatedWith(activity, agent)
    seen: set[str] = set()
    for table in ("inputs", "outputs"):
        for name, entry in declared_entries(block.get(table)):
            if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
                continue
            ident = _name(entry["path"])
            if ident not in seen:
                seen.add(ident)
                made.entity(ident, {**_digests(entry), "provenance:declared_as": name})
            if table == "inputs":
                made.used(activity, ident)
            else:
                made.wasGeneratedBy(ident, activity)
    loaded: dict[str, Any] = json.loads(str(made.serialize(format="json")))
    return loaded
