"""OpenLineage events of a run: the facets, the events ``export`` writes, and live emission.

A run emits only where OpenLineage is configured the ecosystem's way (``OPENLINEAGE_URL``,
``OPENLINEAGE_CONFIG``, an ``openlineage.yml``, ``OPENLINEAGE__TRANSPORT__*``); the
openlineage-python client then loads that configuration and sends the events through its own
transport. Unconfigured, nothing here imports the client. Events are built from the record as
written, so a live event and ``provenance export --format openlineage`` say the same things.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from provenance.record.normalize import display_path
from provenance.record.outcome import FAILED, INTERRUPTED, RUNNING, SUCCEEDED, Outcome
from provenance.record.redact import SecretMatcher, redact_text

# The address the docs site is built for (site_url in mkdocs.yml, which a test holds equal);
# the facet schemas are its schemas/, docs/schemas/ in the source.
DOCS_URL = "https://provenance-sidecar.readthedocs.io/en/latest/"
RUN_EVENT_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
ERROR_FACET_SCHEMA = (
    "https://openlineage.io/spec/facets/1-0-1/ErrorMessageRunFacet.json#/$defs/ErrorMessageRunFacet"
)
# Custom facets take their producer's prefix, as OpenLineage asks of facets outside the spec.
DIGEST_FACET = "provenance_digest"
DIGEST_FACET_SCHEMA = (
    f"{DOCS_URL}schemas/ProvenanceDigestDatasetFacet.json#/$defs/ProvenanceDigestDatasetFacet"
)
GATES_FACET = "provenance_gates"
GATES_FACET_SCHEMA = (
    f"{DOCS_URL}schemas/ProvenanceGatesRunFacet.json#/$defs/ProvenanceGatesRunFacet"
)
NAMESPACE_VARIABLE = "OPENLINEAGE_NAMESPACE"
DEFAULT_NAMESPACE = "provenance"
TREE_DIGEST = "provenance.tree/v1"
# How long a run's end waits for its events to be sent before it leaves them behind.
WAIT_VARIABLE = "PROVENANCE_OPENLINEAGE_WAIT"
DEFAULT_WAIT_SECONDS = 5.0
_JOB_POLL_S = 0.05
ARGPARSE_EXIT = (
    "ended at argument parsing (--help or a usage error): nothing was run, so nothing was recorded"
)


def producer() -> str:
    """The ``producer`` URI of every event and facet this package makes."""
    from provenance import __version__  # read late: this module loads while provenance does

    return f"urn:provenance:producer:{__version__}"


def namespace() -> str:
    """The job namespace: ``OPENLINEAGE_NAMESPACE``, as OpenLineage integrations read it."""
    return os.environ.get(NAMESPACE_VARIABLE) or DEFAULT_NAMESPACE


def end_wait() -> float:
    """Seconds a run's end waits for its events: ``PROVENANCE_OPENLINEAGE_WAIT``, else 5."""
    try:
        wait = float(os.environ.get(WAIT_VARIABLE, DEFAULT_WAIT_SECONDS))
    except ValueError:
        return DEFAULT_WAIT_SECONDS
    return wait if 0 <= wait < float("inf") else DEFAULT_WAIT_SECONDS


def event_time(moment: datetime.datetime) -> str:
    """ISO 8601 in UTC to the millisecond, as OpenLineage consumers expect."""
    utc = moment.astimezone(datetime.timezone.utc)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- facets ----------------------------------------------------------------------------------


def digest_facet(entry: Any) -> dict[str, Any] | None:
    """The ``provenance_digest`` facet of a recorded entry: what it measured, or None."""
    if not isinstance(entry, dict) or not entry.get("exists") or not entry.get("blake3"):
        return None
    if entry.get("kind") not in ("file", "directory"):
        return None
    facet: dict[str, Any] = {
        "_producer": producer(),
        "_schemaURL": DIGEST_FACET_SCHEMA,
        "kind": entry["kind"],
        "blake3": entry["blake3"],
        "size_bytes": entry["size_bytes"],
    }
    if entry["kind"] == "file" and entry.get("sha256"):
        facet["sha256"] = entry["sha256"]  # null above the hash policy's sha256 limit
    if entry["kind"] == "directory":
        facet["file_count"] = entry["file_count"]
        facet["directory_digest"] = TREE_DIGEST  # the blake3 is of the tree, not of bytes
    return facet


def gates_facet(gates: Any) -> dict[str, Any] | None:
    """The ``provenance_gates`` run facet: each gate's verdict and values, or None."""
    if not isinstance(gates, dict) or not gates:
        return None
    return {"_producer": producer(), "_schemaURL": GATES_FACET_SCHEMA, "gates": gates}


def error_facet(message: str) -> dict[str, Any]:
    """OpenLineage's standard ``errorMessage`` run facet."""
    return {
        "_producer": producer(),
        "_schemaURL": ERROR_FACET_SCHEMA,
        "message": redact_text(message),
        "programmingLanguage": "python",
    }


# -- events ----------------------------------------------------------------------------------


def ending(status: str) -> str:
    """The event type that ends a run of ``status``: interrupted runs abort, they do not fail."""
    return {SUCCEEDED: "COMPLETE", INTERRUPTED: "ABORT"}.get(status, "FAIL")


def outcome_message(outcome: dict[str, Any]) -> str:
    """One line on why a run did not succeed: its error, else its exit code and failed gates."""
    if outcome.get("error"):
        return f"{outcome['error']['type']}: {outcome['error']['message']}"
    message = f"{outcome.get('status')} with exit code {outcome.get('exit_code')}"
    failed = [g for g, v in (outcome.get("gates") or {}).items() if not v.get("passed")]
    return f"{message}; failed gates: {', '.join(failed)}" if failed else message


def datasets(base: Path, table: Any, facets_key: str) -> list[dict[str, Any]]:
    """Datasets in OpenLineage's local-file naming: namespace ``file``, the absolute path (worked
    out from the record's text: a path is never followed on disk), the digests as a facet."""
    from provenance.records import declared_entries  # loaded only where events are built

    found = []
    for _, entry in declared_entries(table):
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            name = os.path.normpath(os.path.join(base, entry["path"]))
            facet = digest_facet(entry)
            facets = {DIGEST_FACET: facet} if facet is not None else {}
            found.append({"namespace": "file", "name": name, "facets": facets, facets_key: {}})
    return found


def run_event(
    event_type: str,
    moment: str,
    run_id: str,
    job: tuple[str, str],
    *,
    run_facets: dict[str, Any] | None = None,
    inputs: list[dict[str, Any]] | None = None,
    outputs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One OpenLineage RunEvent as JSON data; ``job`` is ``(namespace, name)``."""
    return {
        "eventTime": moment,
        "eventType": event_type,
        "producer": producer(),
        "schemaURL": RUN_EVENT_SCHEMA,
        "job": {"namespace": job[0], "name": job[1], "facets": {}},
        "run": {"runId": run_id, "facets": run_facets or {}},
        "inputs": inputs or [],
        "outputs": outputs or [],
    }


def record_events(
    block: dict[str, Any], base: Path, run_id: str, job_namespace: str, times: tuple[str, str]
) -> list[dict[str, Any]]:
    """START and the end event of a recorded block (START alone while the run is under way);
    ``times`` are the START and end event times."""
    outcome = block.get("outcome") or {}
    status = outcome.get("status", SUCCEEDED)
    job = (job_namespace, block["entrypoint"]["path"])
    inputs = datasets(base, block["inputs"], "inputFacets")
    start = run_event("START", times[0], run_id, job, inputs=inputs)
    if status == RUNNING:
        return [start]  # the run has not ended: there is nothing to say of its end yet
    return [start, end_event(block, base, run_id, job, times[1])]


def end_event(
    block: dict[str, Any],
    base: Path,
    run_id: str,
    job: tuple[str, str],
    moment: str,
    *,
    status: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    """The COMPLETE, FAIL or ABORT event of a recorded block, with its datasets and gates;
    ``status`` and ``message`` say otherwise than the block where the recording itself failed."""
    outcome = block.get("outcome") or {}
    status = status or outcome.get("status", SUCCEEDED)
    facets: dict[str, Any] = {}
    gates = gates_facet(outcome.get("gates"))
    if gates is not None:
        facets[GATES_FACET] = gates
    if status != SUCCEEDED:
        facets["errorMessage"] = error_facet(message or outcome_message(outcome))
    return run_event(
        ending(status),
        moment,
        run_id,
        job,
        run_facets=facets,
        inputs=datasets(base, block.get("inputs"), "inputFacets"),
        outputs=datasets(base, block.get("outputs"), "outputFacets"),
    )


# -- live emission ---------------------------------------------------------------------------


def configured() -> bool:
    """Whether OpenLineage is configured where the client looks for it; checked without it."""
    environ = os.environ
    if environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OPENLINEAGE_URL") or environ.get("OPENLINEAGE_CONFIG"):
        return True
    if any(name.startswith("OPENLINEAGE__TRANSPORT") for name in environ):
        return True
    return os.path.isfile("openlineage.yml") or os.path.isfile(
        os.path.join(os.path.expanduser("~"), ".openlineage", "openlineage.yml")
    )


def _redacted(value: Any, known: Iterable[str], matcher: SecretMatcher) -> Any:
    if isinstance(value, str):
        return redact_text(value, known=known, is_secret=matcher)
    if isinstance(value, list):
        return [_redacted(v, known, matcher) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v, known, matcher) for k, v in value.items()}
    return value


class Emission:
    """The OpenLineage events of one run, sent on a daemon thread so a slow or dead lineage
    server never holds the run: its end waits ``end_wait()`` seconds at most."""

    def __init__(self, entrypoint: str, root: Path | None, matcher: SecretMatcher) -> None:
        self.job = (namespace(), display_path(entrypoint, root))
        self.root = root
        self.matcher = matcher
        self.started = datetime.datetime.now(datetime.timezone.utc)
        self.problem: str | None = None
        import queue  # only a run that sends events needs it

        self._ends: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._send, name="provenance-openlineage")
        self._thread.daemon = True
        self._thread.start()

    def ended(
        self,
        outcome: Outcome,
        written: tuple[Path, bytes] | None,
        *,
        ran: bool,
        known: tuple[str, ...],
        job: Callable[[], tuple[Path, bytes] | None] | None = None,
    ) -> None:
        """Send the end event of the run, wait a bounded time, and warn once if it was not sent.

        ``job``: for rank 0 of a job whose record another rank writes, the job's record once
        it is written; the end event then describes the job, not rank 0's part (``written``).
        """
        # Nothing here may keep the run from ending (stderr closed, a broken pipe).
        with contextlib.suppress(Exception):
            self._end(outcome, written, ran=ran, known=known, job=job)

    def _end(
        self,
        outcome: Outcome,
        written: tuple[Path, bytes] | None,
        *,
        ran: bool,
        known: tuple[str, ...],
        job: Callable[[], tuple[Path, bytes] | None] | None,
    ) -> None:
        base = (self.root or written[0].parent) if written is not None else self.root
        self._ends.put(
            {
                "outcome": outcome,
                "written": written,
                "job": job,
                "ran": ran,
                "known": known,
                "base": Path(os.path.abspath(base or ".")),
                "time": event_time(datetime.datetime.now(datetime.timezone.utc)),
            }
        )
        wait = end_wait()
        self._thread.join(wait)
        if self._thread.is_alive() and self.problem is None:
            self.problem = f"the run's events were not sent within {wait:g} s ({WAIT_VARIABLE})"
        if self.problem is not None:
            note = redact_text(
                f"OpenLineage: {self.problem}; the sidecar is still the record",
                known=known,
                is_secret=self.matcher,
                message=True,
            )
            print(f"provenance: {' '.join(note.split())}", file=sys.stderr, flush=True)

    def _send(self) -> None:
        try:
            self._emit_all()
        except Exception as err:  # noqa: BLE001 -- lineage is a report of the run, never a way to fail it
            self.problem = f"could not send the run's events: {type(err).__name__}: {err}"

    def _emit_all(self) -> None:
        import logging

        # A library's loggers stay quiet unless the application configures logging: the one
        # warning line below is all a failure prints.
        logging.getLogger("openlineage").addHandler(logging.NullHandler())
        from openlineage.client import OpenLineageClient
        from openlineage.client.uuid import generate_new_uuid

        run_id = str(generate_new_uuid(self.started))
        client = OpenLineageClient()
        self._check_fallback(client)
        start = run_event("START", event_time(self.started), run_id, self.job)
        start = _redacted(start, (), self.matcher)
        try:
            client.emit(_client_event(start))
        except Exception as err:  # noqa: BLE001 -- still try the end event: START may be refused alone
            self.problem = f"could not send START: {type(err).__name__}: {err}"
        end = self._ends.get()
        if end["job"] is not None and end["ran"]:
            end["written"] = self._job_record(end["job"], end["written"])
        event = _redacted(self._end_event(run_id, end), end["known"], self.matcher)
        client.emit(_client_event(event))
        close = getattr(client, "close", None)  # flushes queued events; newer clients have it
        if close is not None:
            close(end_wait())  # the run waits no longer than its own bound whatever this does

    def _job_record(
        self,
        job: Callable[[], tuple[Path, bytes] | None],
        part: tuple[Path, bytes] | None,
    ) -> tuple[Path, bytes] | None:
        """The job's record once another rank writes it, waited for half the run's bound (the
        other half is the sending); rank 0's own part, said so, if it is not written by then."""
        wait = end_wait() / 2
        deadline = time.monotonic() + wait
        while True:
            with contextlib.suppress(OSError):
                found = job()
                if found is not None:
                    return found
            if time.monotonic() >= deadline:
                break
            time.sleep(_JOB_POLL_S)
        self.problem = (
            f"the job's record was not written within {wait:g} s of rank 0's end; the end "
            "event describes rank 0's part of the job"
        )
        return part

    def _check_fallback(self, client: Any) -> None:
        """Say so where the client fell back to its console: the events would vanish unsaid."""
        kind = getattr(client.transport, "kind", None)
        config = getattr(client, "config", None)
        asked = (getattr(config, "transport", None) or {}).get("type")
        named = os.environ.get("OPENLINEAGE_CONFIG")
        if named and not os.path.isfile(named):
            self.problem = (
                f"OPENLINEAGE_CONFIG={named} is not a file; the client uses its {kind} transport"
            )
        elif kind == "console" and asked != "console":
            self.problem = (
                "the client found no transport in its configuration (an unreadable "
                "openlineage.yml?) and only logs the events"
            )

    def _end_event(self, run_id: str, end: dict[str, Any]) -> dict[str, Any]:
        outcome: Outcome = end["outcome"]
        written: tuple[Path, bytes] | None = end["written"]
        if not end["ran"]:
            return run_event(
                "ABORT", end["time"], run_id, self.job, run_facets=_error(ARGPARSE_EXIT)
            )
        if written is None:
            status = outcome.status if outcome.status != SUCCEEDED else FAILED
            message = (
                "no record was written"
                if outcome.status == SUCCEEDED
                else outcome_message(outcome.as_record({}))
            )
            return run_event(
                ending(status), end["time"], run_id, self.job, run_facets=_error(message)
            )
        block = json.loads(written[1])["run_provenance"]
        return end_event(block, end["base"], run_id, self.job, end["time"])


def _error(message: str) -> dict[str, Any]:
    return {"errorMessage": error_facet(message)}


def started(entrypoint: str, root: Path | None, matcher: SecretMatcher) -> Emission | None:
    """Start sending a run's events where OpenLineage is configured; None (and no import of the
    client) where it is not."""
    if not configured():
        return None
    return Emission(entrypoint, root, matcher)


# -- the client's models ---------------------------------------------------------------------

_FACET_CLASSES: dict[tuple[type, tuple[str, ...]], type] = {}


def _client_facet(base: type, given: dict[str, Any]) -> Any:
    """A facet of the client's ``base`` class holding exactly the fields of ``given``."""
    import attr

    names = tuple(sorted(k for k in given if not k.startswith("_")))
    cls = _FACET_CLASSES.get((base, names))
    if cls is None:
        fields = {n: attr.field(default=None) for n in names}
        cls = _FACET_CLASSES[(base, names)] = attr.make_class(base.__name__, fields, bases=(base,))
    facet = cls(producer=given["_producer"], **{n: given[n] for n in names})
    facet._schemaURL = given["_schemaURL"]
    return facet


def _client_event(event: dict[str, Any]) -> Any:
    """``event`` as the client's RunEvent, which is what its transports send."""
    from openlineage.client.event_v2 import (
        InputDataset,
        Job,
        OutputDataset,
        Run,
        RunEvent,
        RunState,
    )
    from openlineage.client.facet_v2 import (
        DatasetFacet,
        InputDatasetFacet,
        JobFacet,
        OutputDatasetFacet,
        RunFacet,
    )

    def facets(given: dict[str, Any], base: type) -> dict[str, Any]:
        return {name: _client_facet(base, facet) for name, facet in given.items()}

    return RunEvent(
        eventType=RunState(event["eventType"]),
        eventTime=event["eventTime"],
        run=Run(runId=event["run"]["runId"], facets=facets(event["run"]["facets"], RunFacet)),
        job=Job(
            namespace=event["job"]["namespace"],
            name=event["job"]["name"],
            facets=facets(event["job"]["facets"], JobFacet),
        ),
        producer=event["producer"],
        inputs=[
            InputDataset(
                namespace=d["namespace"],
                name=d["name"],
                facets=facets(d["facets"], DatasetFacet),
                inputFacets=facets(d["inputFacets"], InputDatasetFacet),
            )
            for d in event["inputs"]
        ],
        outputs=[
            OutputDataset(
                namespace=d["namespace"],
                name=d["name"],
                facets=facets(d["facets"], DatasetFacet),
                outputFacets=facets(d["outputFacets"], OutputDatasetFacet),
            )
            for d in event["outputs"]
        ],
    )
