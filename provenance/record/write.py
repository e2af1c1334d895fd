"""Where and how a run's record is written: beside its artifact or into the script's own JSON,
never over earlier evidence, marked where another run wrote the same outputs meanwhile, and
handed to the rank that assembles the job's record in a distributed launch.

The writer is told what it needs (``WriteFacts``), never the run itself, so it can be used and
tested without one.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Mapping
from contextlib import nullcontext, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.errors import ProvenanceError, SidecarWriteError
from provenance.measure.paths import changed_since, names_beside
from provenance.ranks import Handoff, Launch, is_ranks_folder_name, wait_bound, wrote_path
from provenance.record.build import (
    OUTCOME_STEPS,
    OUTPUTS_STEPS,
    RUNNING_PIPELINE,
    RunFacts,
    build_block,
    known_secrets_of,
)
from provenance.record.limits import fit, unreadable
from provenance.record.outcome import (
    INTERRUPTED,
    SIGINT_EXIT,
    SUCCEEDED,
    Outcome,
    from_exception,
    signal_exit,
)
from provenance.record.redact import (
    redact_block,
    redact_document,
    redact_error,
    redact_text,
)
from provenance.record.sidecar import (
    MANIFEST_SCHEMA,
    RECORD_LOG,
    RunningRecord,
    atomic_write,
    canonical_bytes,
    embedded_bytes,
    folder_lock,
    is_live,
    is_sidecar_name,
    keep_last_good,
    listing_path,
    read_json_object,
    read_own_record,
    record_outputs,
    remove_lost,
    running_records,
    side_record_path,
    sidecar_path_for,
    superseded_runs,
    table_entries,
)

RESERVED_FIELDS = frozenset({"schema", "run_provenance"})

Warn = Callable[[str], None]

# Told the path of every record a run writes in this context (provenance.testing listens).
sidecar_watcher: ContextVar[Callable[[Path], None] | None] = ContextVar(
    "provenance_sidecar_watcher", default=None
)


def record_target(manifest_out: str | None, first_output: str | None) -> Path | None:
    """Where the record goes: the script's ``--manifest-out``, else beside the first output."""
    if manifest_out is not None:
        return Path(manifest_out)
    return sidecar_path_for(first_output) if first_output is not None else None


def sidecar_base(target: Path) -> Path:
    """The sidecar the running records, the lock and the ranks' hand-off of ``target`` go by."""
    return target if is_sidecar_name(target.name) else sidecar_path_for(target)


@dataclass(frozen=True)
class WriteFacts:
    """What writing a run's record needs to know, none of it the run itself."""

    facts: RunFacts  # what was measured; it must say when the run started
    outcome: Outcome  # how the run ended, as far as the run could tell
    warn: Warn  # prints a note on stderr, the run's secrets hidden
    fields: Mapping[str, Any] = field(default_factory=dict)  # what the script recorded
    manifest_out: str | None = None  # the script's own JSON, where the record goes if given
    first_output: str | None = None  # else the record goes beside this output
    embed_into: str | tuple[str, ...] | None = None  # the declared output(s) to put it into too
    # The names beside each output when it was declared: what appeared since is told.
    beside: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # The running records whose runs were gone when this one started (see superseded_runs);
    # None: not known, the sidecar was first known at exit.
    lost_before: frozenset[Path] | None = None
    # Each sidecar's stat_key when the run first knew of it: a change means another writer.
    sidecar_stats: Mapping[Path, tuple[int, ...] | None] = field(default_factory=dict)
    running: RunningRecord | None = None  # this run's running record, removed once written
    launch: Launch | None = None  # this process is one rank of several
    handoff: Handoff | None = None  # the rank's hand-off, once the target was known
    # What the process exits with after a Ctrl-C while recording: click's 1 after "Aborted!".
    interrupt_exit: int = SIGINT_EXIT

    @property
    def target(self) -> Path | None:
        return record_target(self.manifest_out, self.first_output)


class RecordWriter:
    """One writing of a run's record, at its start (``start``) or at its end (``write``).

    What the writing did is read off the writer afterwards, even when it raised: the outcome
    as it now stands (an evidence problem fails a run that would have succeeded, a signal
    while recording interrupts it), the error that failed it, the record as written, and the
    running record and hand-off it made.
    """

    def __init__(self, told: WriteFacts) -> None:
        if told.facts.started_ns is None:
            raise ValueError("the facts of a run to record must say when it started")
        self.told = told
        self.facts = told.facts
        self.started_ns: int = told.facts.started_ns
        self.outcome = told.outcome
        self.flipped: ProvenanceError | None = None
        self.written: tuple[Path, bytes] | None = None
        # Rank 0's way to the job's record when another rank writes it.
        self.job_record: Callable[[], tuple[Path, bytes] | None] | None = None
        self.running = told.running
        self.handoff = told.handoff

    def _known(self) -> tuple[str, ...]:
        return known_secrets_of(self.facts)

    def _warn(self, message: str) -> None:
        self.told.warn(message)

    def _trouble(self, err: ProvenanceError) -> None:
        """Report an evidence problem; a run that would have succeeded fails instead."""
        err = redact_error(err, known=self._known(), is_secret=self.facts.secrets)
        self._warn(str(err))
        if self.outcome.status == SUCCEEDED and self.flipped is None:
            self.outcome, self.flipped = from_exception(err), err

    def _document(self, block: dict[str, Any]) -> dict[str, Any]:
        """The record: recorded fields and the block, with every secret hidden."""
        document = {"schema": MANIFEST_SCHEMA, **self.told.fields, "run_provenance": block}
        return redact_document(document, self.facts.secrets, self._known())

    def _fitted(self, block: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """The record as written, and its bytes: made to fit what a reader takes (limits.fit),
        so that a record that exists can always be read."""
        return fit(self._document(block), canonical_bytes)

    # -- the running record ------------------------------------------------------------------

    def start(self) -> None:
        """Write the running record once a target is known: kill -9 later still leaves it."""
        target = self.told.target
        assert target is not None  # the run starts its record once it knows where it goes
        base = sidecar_base(target)
        handoff = self._hand_off(base)
        try:
            block = build_block(self.facts, RUNNING_PIPELINE)
            _, data = self._fitted(block)
            self.running = RunningRecord.create(base, data)
            if handoff is not None:
                lost_before = self.told.lost_before or frozenset()
                handoff.running_at(self.running.path, lost_before=lost_before)
        except Exception as err:  # noqa: BLE001 -- the start record is a help, never a new way to fail
            self._warn(
                f"could not write the running record beside {base}: {type(err).__name__}: {err}"
            )

    # -- the ranks of a distributed launch (provenance.ranks) -------------------------------

    def _hand_off(self, sidecar: Path) -> Handoff | None:
        """This rank's hand-off beside ``sidecar``, its presence said, once the target is known."""
        launch = self.told.launch
        if launch is None or self.handoff is not None:
            return self.handoff
        self.handoff = Handoff(
            launch,
            sidecar,
            started_ns=self.started_ns,
            wait_s=wait_bound(os.environ),
        )
        try:
            self.handoff.present()
        except OSError as err:
            self._warn(f"could not say that rank {launch.rank} runs, in {sidecar}: {err}")
        return self.handoff

    def _write_rank(self, target: Path, block: dict[str, Any]) -> None:
        """Report this rank's part of the job, then assemble the job's record if it is the rank
        to; the job's one record replaces the record each rank would have written alone."""
        facts, told = self.facts, self.told
        sidecar = sidecar_base(target)
        handoff = self._hand_off(sidecar)
        assert handoff is not None  # write calls this only in a launch
        if told.embed_into is not None:
            self._warn(f"did not embed run_provenance: a job of ranks is recorded in {sidecar}")
        first = told.first_output
        guard = facts.guard
        with guard.held() if guard is not None else nullcontext():
            if facts.stopped or (guard is not None and guard.arrived()):
                self.outcome = self._interrupted_while_recording()
            facts.outcome = self.outcome
            block.update(build_block(facts, OUTCOME_STEPS))
            # As _placement judges it: the first output, or any output for a --manifest-out.
            judged = (
                [p for d in facts.outputs.values() if d is not None for p in d.paths]
                if told.manifest_out is not None
                else [first]
                if first is not None
                else []
            )
            wrote = any(facts.written_by_run(p) for p in judged)
            # As the record shows each path, secrets hidden: the part is a file on disk too,
            # and the assembling rank matches these against the record's redacted paths.
            known = self._known()
            opened = sorted(
                redact_text(facts.shown(p), known=known, is_secret=facts.secrets)
                for d in facts.outputs.values()
                if d is not None
                for p in d.paths
                if wrote_path(p)
            )
            try:
                document, data = self._fitted(block)
                # Only what the part names: an output left out of it is not in the job's record.
                kept = {e.get("path") for e in table_entries(document["run_provenance"]["outputs"])}
                opened = [p for p in opened if p in kept]
                handoff.report(document, wrote=wrote, opened=opened)
                self.written = (sidecar, data)  # this rank's own part
            except OSError as err:
                self._trouble(SidecarWriteError(f"could not hand off to {handoff.folder}: {err}"))
                return
        if self.running is not None:
            self.running.remove()
        path = handoff.settle(
            sidecar,
            give_up=lambda: guard is not None and guard.stopped,
            warn=self._warn,
        )
        if path is None:
            # Another rank writes the job's record: rank 0's end event waits a bounded time for
            # it, to say what the job did rather than what rank 0 did.
            self.job_record = lambda: handoff.assembled(sidecar)
        else:
            # The job's record, not this rank's part.
            with suppress(OSError):
                self.written = (path, path.read_bytes())
            tell_record_log(path, self._warn)
            watcher = sidecar_watcher.get()
            if watcher is not None:
                watcher(path)

    # -- the final record --------------------------------------------------------------------

    def write(self) -> None:
        """Write the run's record where it belongs, or the rank's part of the job's record."""
        facts = self.facts
        target = self.told.target
        assert target is not None  # the run checked that there is somewhere to write
        if self.told.launch is not None:
            self._warn_undeclared_beside()
            self._write_rank(target, build_block(facts))
            return
        embedded: list[tuple[Path, bytes]] = []
        try:
            embedded = self._embed()
        except SidecarWriteError as err:
            self._trouble(err)
        block = build_block(facts)
        self._warn_undeclared_beside()
        folder = target.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            self._write_failed(target, embedded, err)
            return
        guard = facts.guard
        with (
            folder_lock(folder, give_up=lambda: guard is not None and guard.stopped) as locked,
            guard.held() if guard is not None else nullcontext(),
        ):
            if not locked:
                self._warn(f"wrote the record without the lock on {folder}: another writer held it")
            concurrent = self._mark_concurrent(block, target)
            try:
                path = self._write_record(target, block, concurrent=concurrent)
            except OSError as err:
                self._write_failed(target, embedded, err)
                return
            remove_lost(self._superseded(target, path))
        if self.running is not None:
            self.running.remove()
        tell_record_log(path, self._warn)
        watcher = sidecar_watcher.get()
        if watcher is not None:
            watcher(path)

    def _write_record(self, target: Path, block: dict[str, Any], *, concurrent: bool) -> Path:
        """Decide the outcome, place the record and write it; with the signals held, a signal
        that came meanwhile makes the record interrupted before it is written, never after."""
        facts = self.facts
        if facts.stopped or (facts.guard is not None and facts.guard.arrived()):
            self.outcome = self._interrupted_while_recording()
        facts.outcome = self.outcome
        block.update(build_block(facts, OUTCOME_STEPS))
        path, data, note = self._placement(target, block)
        # A successful record another run wrote while this one ran is evidence too.
        if path == target and (self.outcome.status != SUCCEEDED or concurrent):
            keep_last_good(target)
        self._write_listings(target, block)
        atomic_write(path, data, follow_symlinks=False)
        self.written = (path, data)
        if note:
            self._warn(note)
        return path

    def _write_listings(self, target: Path, block: dict[str, Any]) -> None:
        """Each listed folder's listing beside the sidecar, before the record that names it
        (a listing already there under its name holds the same bytes, unless someone changed
        it). One that cannot be written is said, and the folder is verified by its counts."""
        for table in ("inputs", "outputs"):
            for entry in table_entries(block.get(table)):
                digest = entry.get("blake3")
                if not entry.get("listed") or digest not in self.facts.listings:
                    continue
                listing = self.facts.listings[digest]
                try:
                    atomic_write(listing_path(target, digest), listing, follow_symlinks=False)
                except OSError as err:
                    self._warn(f"could not write the listing of {entry.get('path')}: {err}")

    def _write_failed(self, path: Path, embedded: list[tuple[Path, bytes]], err: OSError) -> None:
        for host in embedded:
            undo_embed(*host, self._warn)
        self._trouble(SidecarWriteError(f"could not write the sidecar {path}: {err}"))

    def _interrupted_while_recording(self) -> Outcome:
        guard = self.facts.guard
        received = guard.ending_signal() if guard is not None else None
        exit_code = signal_exit(received) if received is not None else 130
        if received == signal.SIGINT:
            exit_code = self.told.interrupt_exit
        return Outcome(INTERRUPTED, exit_code, self.outcome.error)

    def _placement(self, target: Path, block: dict[str, Any]) -> tuple[Path, bytes, str | None]:
        """Where this run's record goes and its bytes, never destroying earlier evidence.

        A run that wrote none of its outputs does not take over the record of an artifact it
        left alone: its record goes beside as ``X.manifest.<status>.json``. A script's own JSON
        at ``--manifest-out``, written by this run, gets the block merged into it; anything
        else of the script's there is left alone and the record goes beside it.
        """
        facts, told = self.facts, self.told
        document, data = self._fitted(block)
        status = self.outcome.status
        wrote = any(
            facts.written_by_run(p)
            for d in facts.outputs.values()
            if d is not None
            for p in d.paths
        )
        if told.manifest_out is not None and not is_record(target):
            if not os.path.lexists(target):
                return target, data, None
            written = changed_since(str(target), self.started_ns)
            found = read_json_object(target) if written else None
            if found is not None and "run_provenance" not in found[1]:
                own = found[1]
                # Recorded fields the script's document lacks follow its keys; no "schema" of
                # ours goes in: the document stays the script's, with the block in it.
                extra = {k: v for k, v in document.items() if k not in (*own, *RESERVED_FIELDS)}
                merged = {**own, **extra}
                if str(target) in facts.outputs_paths():
                    # The manifest is also a declared output: like embed_into, its own entry
                    # cannot hold the digest of the bytes that will contain it.
                    facts.embedded_in = frozenset({str(target)})
                    block = {**block, **build_block(facts, OUTPUTS_STEPS)}
                    facts.embedded_in = frozenset()
                block = redact_block(block, facts.secrets, self._known())
                merged_data, refused = embedding(merged, block)
                if refused is None:
                    return target, merged_data, None
                why = f"would with the record in it be refused by a reader ({refused})"
            else:
                why = (
                    "holds a run_provenance of its own"
                    if found is not None
                    else "is not a JSON object this run wrote"
                )
            beside = sidecar_path_for(target)
            note = f"{target} {why}, so it was left as it is; this run's record is {beside}"
            return _placement_at(beside, data, status, wrote=True, note=note)
        if told.manifest_out is not None:
            return _placement_at(target, data, status, wrote=wrote)
        first = told.first_output
        assert first is not None  # the target is beside it
        # A record of an artifact that is gone describes no bytes: a successful run may take
        # its place even without writing the artifact.
        vanished = status == SUCCEEDED and not os.path.lexists(first)
        return _placement_at(
            target, data, status, wrote=bool(facts.written_by_run(first)) or vanished
        )

    def _superseded(self, target: Path, path: Path) -> list[Path]:
        """The lost runs' records this run's record accounts for: it took the sidecar's place
        and rewrote every output they declared, after they were gone. Any other run's record
        is evidence this run has no say over."""
        lost_before = self.told.lost_before
        base = sidecar_base(target)
        if path not in (target, base) or lost_before is None:
            return []  # beside the sidecar: the sidecar, and what it describes, stay
        return superseded_runs(base, lost_before, self._rewrote())

    def _rewrote(self) -> set[str]:
        """The outputs this run wrote, as the record shows their paths."""
        facts = self.facts
        return {
            facts.shown(p)
            for d in facts.outputs.values()
            if d is not None
            for p in d.paths
            if facts.written_by_run(p)
        }

    def _mark_concurrent(self, block: dict[str, Any], target: Path) -> bool:
        """Say so where another run wrote the same outputs while this one ran: the bytes on
        disk may be that run's. Called with the folder lock held."""
        told = self.told
        mine = self._rewrote()
        if not mine:
            return False
        base = sidecar_base(target)
        others: set[str] = set()
        for other in running_records(base):
            if self.running is not None and other == self.running.path:
                continue
            # A run that was under way at any moment of this one, live or lost since, may
            # have written the bytes on disk; only one lost before this run began cannot.
            # Unknown (the sidecar was first known at exit): one written since this run began.
            earlier = told.lost_before
            if is_live(other) or (
                other not in earlier
                if earlier is not None
                else changed_since(str(other), self.started_ns)
            ):
                others |= record_outputs(other)
        if target in told.sidecar_stats and stat_key(target) != told.sidecar_stats[target]:
            others |= record_outputs(target, written_only=True)
        shared = mine & others
        if not shared:
            return False
        for entry in table_entries(block.get("outputs")):
            if entry.get("path") in shared and entry.get("exists"):
                entry["concurrent_writers"] = True
        self._warn(
            f"another run wrote {', '.join(sorted(shared))} while this one ran: the record "
            "cannot tell whose bytes these are, and says so (concurrent_writers)"
        )
        return True

    def _warn_undeclared_beside(self) -> None:
        outputs = self.facts.outputs
        declared = {p for d in outputs.values() if d is not None for p in d.paths}
        for path, before in sorted(self.told.beside.items()):
            appeared = sorted(
                name
                for name in names_beside(path) - before
                if not is_sidecar_name(name)
                and not is_ranks_folder_name(name)
                and os.path.join(os.path.dirname(path), name) not in declared
            )
            if appeared:
                self._warn(
                    f"{', '.join(appeared)} appeared beside the output {os.path.basename(path)} "
                    "during the run and is not declared, so it is not in the record: declare "
                    'it, e.g. outputs={"data": Glob("{out}.data")}'
                )

    def _embed(self) -> list[tuple[Path, bytes]]:
        """Put the block into each ``embed_into`` output this run wrote as a JSON object (each
        item of a list of outputs); the hosts and their bytes before, to take the block back
        out if the sidecar fails."""
        facts, embed_into = self.facts, self.told.embed_into
        names = (embed_into,) if isinstance(embed_into, str) else embed_into or ()
        hosts: dict[str, tuple[bytes, dict[str, Any]]] = {}
        for name in names:
            if name not in facts.outputs:
                self._warn(f"did not embed run_provenance: embed_into={name!r} names no output")
                continue
            declared = facts.outputs[name]
            if declared is None:
                continue
            # A list of outputs (a list, a Glob) is embedded into each item the run wrote.
            for host in declared.paths if declared.many else declared.paths[:1]:
                if host in hosts or not facts.written_by_run(host):
                    continue
                found = read_json_object(host)
                if found is None:
                    self._warn(
                        f"did not embed run_provenance into {host}: it does not hold a JSON object"
                    )
                    continue
                hosts[host] = found
        while hosts:
            # Every host's own entry says "embedded here": none can hold the digest of bytes
            # the block is about to change, its own or another host's.
            facts.embedded_in = frozenset(hosts)
            block = redact_block(build_block(facts), facts.secrets, self._known())
            facts.embedded_in = frozenset()
            prepared = {host: embedding(document, block) for host, (_, document) in hosts.items()}
            refused = {host: why for host, (_, why) in prepared.items() if why is not None}
            if not refused:
                break
            for host, why in refused.items():
                self._warn(
                    f"did not embed run_provenance into {host}: with it, a reader would refuse "
                    f"the file ({why}); the sidecar holds the record"
                )
                del hosts[host]
        done: list[tuple[Path, bytes]] = []
        for host, (original, _) in hosts.items():
            facts.forget(host)
            try:
                atomic_write(host, prepared[host][0])
            except OSError as err:
                for written in done:
                    undo_embed(*written, self._warn)
                raise SidecarWriteError(
                    f"could not embed run_provenance into {host}: {err}"
                ) from err
            done.append((Path(host), original))
        return done


def _placement_at(
    target: Path,
    data: bytes,
    status: str,
    *,
    wrote: bool,
    note: str | None = None,
) -> tuple[Path, bytes, str | None]:
    if wrote or not os.path.lexists(target):
        return target, data, note
    beside = side_record_path(target, status)
    return (
        beside,
        data,
        f"kept the earlier sidecar {target} (this {status} run wrote none of its outputs); "
        f"this run's record is {beside}",
    )


def embedding(document: dict[str, Any], block: dict[str, Any]) -> tuple[bytes, str | None]:
    """``document`` with the block in it, the block made to fit what a reader takes; and why a
    reader would still refuse the whole (the script's own part too big, or not strict JSON),
    or None."""
    fitted, _ = fit({"schema": MANIFEST_SCHEMA, "run_provenance": block}, canonical_bytes)
    data = embedded_bytes(document, fitted["run_provenance"])
    return data, unreadable(data, "record")


def stat_key(path: Path) -> tuple[int, ...] | None:
    """What changes when ``path`` is rewritten or replaced: taken early, compared at the end."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def is_record(path: Path) -> bool:
    """Whether ``path`` holds a sidecar of ours (not a script's document with a block in it)."""
    document = read_own_record(path)
    return document is not None and document.get("schema") == MANIFEST_SCHEMA


def tell_record_log(path: Path, warn: Warn) -> None:
    log = os.environ.get(RECORD_LOG)
    if not log:
        return
    try:
        with open(log, "a", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(f"{os.path.abspath(path)}\n")
    except OSError as err:
        warn(f"could not note the record in {RECORD_LOG}={log}: {err}")


def undo_embed(host: Path, original: bytes, warn: Warn) -> None:
    # The sidecar failed after the block went into the host: the block must not outlive it.
    try:
        atomic_write(host, original)
    except OSError as err:
        warn(f"could not take run_provenance back out of {host}: {err}")
