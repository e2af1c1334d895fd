"""One recorded run: its per-call state, the lifecycle that ends it, and ``current_run()``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, nullcontext, suppress
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from provenance.capture import Resolution, capturing, exit_status
from provenance.capture.seeds import SeedLog
from provenance.emit import openlineage
from provenance.errors import (
    DeclarationError,
    NoActiveRunError,
    NoSidecarTargetError,
    ProvenanceError,
    SidecarWriteError,
)
from provenance.measure.hashing import HashPolicy
from provenance.measure.paths import (
    Declaration,
    Declarations,
    Declared,
    Fingerprint,
    Glob,
    Resolved,
    as_declared,
    changed_since,
    find_root,
    fingerprint,
    names_beside,
    resolve,
)
from provenance.ranks import (
    Handoff,
    Launch,
    detect,
    is_ranks_folder_name,
    wait_bound,
    watch_writes,
    wrote_path,
)
from provenance.record.build import (
    OUTCOME_STEPS,
    OUTPUTS_STEPS,
    RUNNING_PIPELINE,
    RunFacts,
    build_block,
)
from provenance.record.limits import fit, unreadable
from provenance.record.normalize import normalize
from provenance.record.outcome import (
    FAILED,
    INTERRUPTED,
    SIGINT_EXIT,
    SUCCEEDED,
    Outcome,
    error_of,
    from_exception,
    from_returned,
    signal_exit,
)
from provenance.record.redact import (
    SecretMatcher,
    known_secrets,
    redact_block,
    redact_document,
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
    lost_runs,
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
from provenance.signals import SignalGuard
from provenance.stores.digest_cache import DigestCache

RESERVED_FIELDS = frozenset({"schema", "run_provenance"})
ManifestDeclaration = str | Callable[[argparse.Namespace], Any] | None

_current: ContextVar[Run | None] = ContextVar("provenance_current_run", default=None)
# Told the path of every record a run writes in this context (provenance.testing listens).
_sidecar_watcher: ContextVar[Callable[[Path], None] | None] = ContextVar(
    "provenance_sidecar_watcher", default=None
)


def current_run() -> Run:
    """The run active in this context; raises ``NoActiveRunError`` outside one."""
    run = _current.get()
    if run is None:
        raise NoActiveRunError(
            "current_run() was called outside a recorded run: decorate the script's main with "
            "@recorded_run, or run the code inside `with recorded_run(...):`"
        )
    return run


@dataclass(frozen=True)
class RunSpec:
    """What a ``recorded_run`` declaration says, shared by every call of the decorated function."""

    inputs: Declarations = field(default_factory=dict)
    outputs: Declarations = field(default_factory=dict)
    entrypoint: str | None = None
    manifest: ManifestDeclaration = "manifest_out"
    embed_into: str | None = None
    redact: tuple[str, ...] = ()
    hash_policy: HashPolicy = field(default_factory=HashPolicy)
    root: str | None = None
    environment: tuple[str, ...] | None = None  # variables to record; None: no environment
    config: Declaration | None = None  # the option naming a config file the script reads


def _warn(message: str, run: Run | None = None) -> None:
    """Print a note on stderr, with the secrets of ``run`` (and any by their shape) hidden."""
    known = _known_secrets(run) if run is not None else ()
    secrets = run.secrets if run is not None else None
    note = redact_text(message, known=known, is_secret=secrets, message=True)
    print(f"provenance: {note}", file=sys.stderr, flush=True)


def _known_secrets(run: Run) -> tuple[str, ...]:
    return known_secrets(run.argv, run.args, run.parsers, run.secrets, run.config)


class Run:
    """The state of one call of a recorded script, from entry to the written sidecar.

    A run started while another is active in the same context delegates: it writes nothing of
    its own, and at its end its arguments, declarations, fields and gates join the outer run,
    which records this run's file as ``shared_trainer``.
    """

    def __init__(self, spec: RunSpec, entrypoint: str, argv: list[str]) -> None:
        self.spec = spec
        self.entrypoint = os.path.abspath(entrypoint)
        self.root: Path | None = (
            Path(os.path.abspath(spec.root))
            if spec.root is not None
            else find_root(self.entrypoint)
        )
        self.argv = argv
        self.parent: Run | None = None
        self.shared_trainer: str | None = None
        self.args: dict[str, Any] = {}
        self.parsed = False
        self.parsers: list[argparse.ArgumentParser] = []
        # The call being recorded, for frameworks that parsed before the run began.
        self.given: tuple[tuple[Any, ...], dict[str, Any]] = ((), {})
        self.command: str | None = None
        self.config: dict[str, Any] | None = None  # the resolved config a framework reported
        self.config_files: list[str] = []
        self.lookup: dict[str, Any] = {}  # what string declarations name, every framework's
        self.frameworks: dict[str, list[str]] = {}  # the frameworks heard, with their keys
        self.seeds = SeedLog()  # the seeds the script set, in order (a nested run's too)
        self._config_files: dict[str, Declared | None] = {}  # from the config= declaration
        self.inputs: dict[str, Declared | None] = {}
        self.outputs: dict[str, Declared | None] = {}
        self.manifest_out: str | None = None
        self.embed_into = spec.embed_into
        self.baselines: dict[str, Fingerprint] = {}
        self.late: set[str] = set()  # declared after the run started (see RunFacts.late)
        self.beside: dict[str, frozenset[str]] = {}  # names beside each output when declared
        self.fields: dict[str, Any] = {}
        self.gates: dict[str, Any] = {}
        self.secrets = SecretMatcher(spec.redact)
        self.pid = os.getpid()
        self.started_ns = time.time_ns()
        self._parse_exit: BaseException | None = None
        self._result: object = None
        self._stack = ExitStack()
        self._guard: SignalGuard | None = None
        self._running: RunningRecord | None = None
        # The running records beside the sidecar whose runs were gone when this one started:
        # the only lost runs this run's record can supersede (see superseded_runs). None when
        # the sidecar was first known at exit: which runs were gone at the start is not known.
        self._lost_before: frozenset[Path] | None = None
        self._exiting = False
        # The stat of each sidecar this run may write, when it first knew of it: a change by
        # the end means another run recorded the same artifact meanwhile.
        self._sidecar_stats: dict[Path, tuple[int, ...] | None] = {}
        self._outcome = Outcome(SUCCEEDED, 0)
        self._flipped: ProvenanceError | None = None
        self._resolved: set[tuple[str, str]] = set()
        self._unresolved: dict[str, DeclarationError] = {}  # found at exit, by declared name
        self._entered = False
        self._lineage: openlineage.Emission | None = None
        # Rank 0's way to the job's record when another rank writes it.
        self._job_record: Callable[[], tuple[Path, bytes] | None] | None = None
        self._written: tuple[Path, bytes] | None = None  # the record, as written
        # Set when the launcher's environment says this process is one rank of several.
        self._launch: Launch | None = None
        self._handoff: Handoff | None = None

    # -- the script's side -------------------------------------------------------------------

    def add_input(self, name: str, path: str | os.PathLike[str] | list[Any] | None) -> None:
        """Declare an input from the script body; it is stat-ed now and hashed at exit."""
        self._declare(self.inputs, "input", name, path, late=self._entered)

    def add_output(self, name: str, path: str | os.PathLike[str] | list[Any] | None) -> None:
        """Declare an output from the script body. Whenever it is declared, whether the run
        wrote it is judged against the moment the run started."""
        self._declare(self.outputs, "output", name, path, late=self._entered)

    def record(self, **fields: Any) -> None:
        """Add script-specific fields (row counts, feature order, counters) to the manifest."""
        reserved = RESERVED_FIELDS.intersection(fields)
        if reserved:
            raise ProvenanceError(f"manifest field names {sorted(reserved)} are reserved")
        self.fields.update(normalize(fields, self.root))

    def resolved_config(self, resolved: Mapping[str, Any]) -> None:
        """Record the config a script resolved itself from its ``config=`` file (a YAML it
        loads and fills with defaults), as a framework's adapter reports its own."""
        self.config = dict(resolved)

    def gate(self, name: str, passed: bool, **values: Any) -> None:
        """Record a quality-gate verdict; it does not change the exit code, the script does."""
        self.gates[name] = {"passed": bool(passed), **normalize(values, self.root)}

    def _declare(
        self,
        table: dict[str, Declared | None],
        kind: str,
        name: str,
        value: Any,
        *,
        late: bool = False,
    ) -> None:
        declared = as_declared(kind, name, value)
        table[name] = declared
        self._baseline(kind, declared, late=late)

    def _baseline(self, kind: str, declared: Declared | None, *, late: bool = False) -> None:
        for path in declared.paths if declared is not None else ():
            if late:
                self.late.add(path)
            self.baselines.setdefault(path, fingerprint(path))
            if kind == "output" and not late:
                self.beside.setdefault(path, names_beside(path))
                sidecar = sidecar_path_for(path)
                self._sidecar_stats.setdefault(sidecar, _stat_key(sidecar))
        if kind == "output" and declared is not None:
            self._top()._start_record(self)

    def _top(self) -> Run:
        run = self
        while run.parent is not None:
            run = run.parent
        return run

    # -- argparse capture (ParseListener) ----------------------------------------------------

    def on_parsed(
        self, parser: argparse.ArgumentParser, argv: list[str], namespace: argparse.Namespace
    ) -> None:
        self.parsed = True
        self.parsers.append(parser)
        self.args.update(vars(namespace))
        self._heard("argparse", vars(namespace))
        self._resolve(self._namespace())

    def on_parse_exit(self, exc: BaseException) -> None:
        self._parse_exit = exc

    def on_resolved(self, resolution: Resolution) -> None:
        self._parse_exit = None  # a parse that ended early was not the last word
        self.parsed = True
        self.parsers.extend(resolution.parsers)
        self.args.update(resolution.params)
        if resolution.command is not None:
            self.command = resolution.command
        if resolution.config is not None:
            self.config = dict(resolution.config)
        for path in resolution.config_files:
            self._add_config_file(path)
        lookup = resolution.params if resolution.lookup is None else resolution.lookup
        self._heard(resolution.framework, lookup)
        self._resolve(self._namespace())

    def on_seed(self, source: str, seed: Mapping[str, Any]) -> None:
        self._top().seeds.add(source, seed)

    def _heard(self, framework: str, lookup: Any) -> None:
        self.lookup.update(lookup)
        keys = set(self.frameworks.get(framework, ())) | set(_dotted_keys(lookup))
        self.frameworks[framework] = sorted(keys)

    def _add_config_file(self, path: str) -> None:
        absolute = os.path.abspath(path)
        if absolute not in self.config_files:
            self.config_files.append(absolute)
            self.baselines.setdefault(absolute, fingerprint(absolute))

    def _namespace(self) -> argparse.Namespace:
        """What declarations read: argparse's namespace, or every framework's resolved keys."""
        if set(self.frameworks) <= {"argparse"}:
            return argparse.Namespace(**self.args)
        return Resolved(self.lookup)

    def _declarations(self) -> Iterator[tuple[str, str, Declaration, dict[str, Declared | None]]]:
        """Every declaration of the spec, with its kind and the table it resolves into."""
        for kind, declarations, table in (
            ("input", self.spec.inputs, self.inputs),
            ("output", self.spec.outputs, self.outputs),
            (
                "config",
                {"config": self.spec.config} if self.spec.config else {},
                self._config_files,
            ),
        ):
            for name, declaration in declarations.items():
                yield kind, name, declaration, table

    def _resolve(self, namespace: argparse.Namespace, *, at_exit: bool = False) -> None:
        """Resolve what the parsed arguments can now resolve; the rest waits for a later parse.

        A script may parse more than once (``parse_known_args`` for a config option, then the
        full parser), so a dest no parse has supplied yet is not an error until the run ends,
        and then the error says which dests the parses did supply. A ``Glob`` is matched at
        exit. What is first resolved at exit has no stat from before: whether the run wrote it
        is judged against the moment it started.
        """
        problems: dict[str, DeclarationError] = {}
        for kind, name, declaration, table in self._declarations():
            if isinstance(declaration, os.PathLike) or (kind, name) in self._resolved:
                continue
            if isinstance(declaration, Glob) and not at_exit:
                continue
            if isinstance(declaration, str) and not hasattr(namespace, declaration):
                if at_exit:
                    problems[name] = self._unsupplied(kind, name, declaration, namespace)
                continue
            try:
                declared = resolve(kind, name, declaration, namespace)
            except DeclarationError as err:
                if at_exit:
                    problems[name] = err
                continue  # a callable that needs a later parse's arguments
            table[name] = _merge_declared(table.get(name), declared) if at_exit else declared
            self._resolved.add((kind, name))
            self._baseline(kind, declared, late=at_exit)
            if kind == "config":
                for path in declared.paths if declared is not None else ():
                    self._add_config_file(path)
        try:
            self._resolve_manifest(namespace)
        except DeclarationError as err:
            if at_exit:
                problems["manifest"] = err
        self._unresolved.update(problems)

    def _unsupplied(
        self, kind: str, name: str, dest: str, namespace: argparse.Namespace
    ) -> DeclarationError:
        if not set(self.frameworks) <= {"argparse"}:
            heard = "; ".join(
                f"{framework} had {', '.join(keys[:40]) or 'no keys'}"
                + (f" and {len(keys) - 40} more" if len(keys) > 40 else "")
                for framework, keys in sorted(self.frameworks.items())
            )
            return DeclarationError(
                f"{kind} {name!r} names {dest!r}, which no framework resolved ({heard})"
            )
        have = ", ".join(sorted(vars(namespace))) or "none"
        seen = "no argument parser ran" if not self.parsed else f"the parses supplied: {have}"
        return DeclarationError(
            f"{kind} {name!r} names the argparse dest {dest!r}, which no parse supplied ({seen})"
        )

    def _resolve_manifest(self, namespace: argparse.Namespace) -> None:
        declaration = self.spec.manifest
        if declaration is None or (
            isinstance(declaration, str) and not hasattr(namespace, declaration)
        ):
            return  # the script has no --manifest-out: the sidecar goes beside an output
        declared = resolve("manifest", "manifest", declaration, namespace)
        if declared is not None and declared.many:
            raise DeclarationError("the manifest declaration must give one path, not a list")
        if declared is not None:
            self.manifest_out = declared.paths[0]
            sidecar = Path(self.manifest_out)
            self._sidecar_stats.setdefault(sidecar, _stat_key(sidecar))
            self._top()._start_record(self)

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> Run:
        if not os.path.isfile(self.entrypoint):
            raise ProvenanceError(
                f"the entrypoint {self.entrypoint} is not a file, so the run's code cannot be "
                "identified (a REPL, a notebook cell or python -c?): pass entrypoint=<script path>"
            )
        parent = _current.get()
        # A forked worker inherits its parent's context, not its parent's run.
        self.parent = parent if parent is not None and parent.pid == self.pid else None
        if self.parent is not None and self.parent.entrypoint != self.entrypoint:
            self.parent.shared_trainer = self.parent.shared_trainer or self.entrypoint
        token = _current.set(self)
        self._stack.callback(_current.reset, token)
        self._stack.enter_context(capturing(self, self.given))
        if self.parent is None:
            self._guard = SignalGuard()
            self._guard.install()
            self._launch, problem = detect(os.environ)
            if problem is not None:
                _warn(problem, self)
            if self._launch is not None:
                watch_writes()
        for kind, name, declaration, table in self._declarations():
            if isinstance(declaration, os.PathLike):
                self._declare(table, kind, name, declaration)
                self._resolved.add((kind, name))
                if kind == "config":
                    self._add_config_file(os.fspath(declaration))
        self._entered = True
        if self.parent is None and (self._launch is None or self._launch.rank == 0):
            # One run per job on the lineage server: rank 0 speaks for the launch.
            self._lineage = openlineage.started(self.entrypoint, self.root, self.secrets)
        return self

    def returned(self, result: object) -> None:
        """Tell the run what the wrapped function returned (its exit code, by sys.exit rules)."""
        self._result = result

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        self._exiting = True
        if self._guard is not None:
            self._guard.recording = True  # from here on a signal stops hashing, not recording
        self._stack.close()
        if self.parent is not None:
            self._join(self.parent)
            return False
        try:
            self._finish(exc)
        except ProvenanceError:
            raise
        except Exception as err:
            # A fault in the recording itself must neither hide the script's own outcome nor
            # let a run without evidence pass for a successful one.
            failure = self._hidden(
                ProvenanceError(f"could not record the run: {type(err).__name__}: {err}")
            )
            _warn(str(failure), self)
            if self._outcome.status == SUCCEEDED:
                raise failure from err
        finally:
            if self._lineage is not None:  # before _end: a SIGTERM ends the process there
                self._lineage.ended(
                    self._outcome,
                    self._written,
                    ran=not self._ended_in_argparse(exc),
                    known=_known_secrets(self),
                    job=self._job_record,
                )
            self._end()
        if (
            self._guard is not None
            and self._guard.received == signal.SIGINT
            and not isinstance(exc, KeyboardInterrupt)
        ):
            raise KeyboardInterrupt  # Ctrl-C while recording: the record is written, now stop
        return False

    def _end(self) -> None:
        if self._running is not None:
            self._running.release()
        if self._handoff is not None:
            self._handoff.release()
        if self._guard is not None:
            self._guard.restore()  # after a SIGTERM or SIGHUP this ends the process

    def _ended_in_argparse(self, exc: BaseException | None) -> bool:
        if self._parse_exit is None:
            return False
        if exc is self._parse_exit:
            return True
        # A framework that ends its parse with an exception of its own (click's --help) has
        # its caller turn that into a SystemExit, or return (Hydra's --cfg job).
        framework = not isinstance(self._parse_exit, SystemExit)
        return framework and (exc is None or isinstance(exc, SystemExit))

    def _join(self, outer: Run) -> None:
        outer.parsed = outer.parsed or self.parsed
        outer.parsers.extend(self.parsers)
        outer.args.update(self.args)
        outer.command = self.command or outer.command
        outer.config = self.config if self.config is not None else outer.config
        for path in self.config_files:
            outer._add_config_file(path)
        for framework, keys in self.frameworks.items():
            outer.frameworks[framework] = sorted({*outer.frameworks.get(framework, ()), *keys})
        outer.lookup.update(self.lookup)
        outer._parse_exit = outer._parse_exit or self._parse_exit
        for table, mine in ((outer.inputs, self.inputs), (outer.outputs, self.outputs)):
            for name, declared in mine.items():
                table[name] = _merge_declared(table.get(name), declared)
        for path, before in self.baselines.items():
            outer.baselines.setdefault(path, before)
        for path, names in self.beside.items():
            outer.beside.setdefault(path, names)
        for sidecar, key in self._sidecar_stats.items():
            outer._sidecar_stats.setdefault(sidecar, key)
        outer.late |= self.late
        outer.manifest_out = outer.manifest_out or self.manifest_out
        outer.embed_into = outer.embed_into or self.embed_into
        outer.fields.update(self.fields)
        outer.gates.update(self.gates)

    def _decide_outcome(self, exc: BaseException | None) -> Outcome:
        terminated = self._guard.terminated if self._guard is not None else None
        if terminated is not None:
            error = from_exception(exc).error if exc is not None else None
            return Outcome(INTERRUPTED, signal_exit(terminated), error)
        if exc is not None:
            framework = None if isinstance(exc, SystemExit) else exit_status(exc)
            if framework is not None:  # typer.Exit(3), a click.UsageError: what it ends with
                status, failed = framework
                error = error_of(exc) if failed else None
                return Outcome(SUCCEEDED if status == 0 and not failed else FAILED, status, error)
            return from_exception(exc)
        return from_returned(self._result)

    def _finish(self, exc: BaseException | None) -> None:
        self._outcome = self._decide_outcome(exc)
        if self._ended_in_argparse(exc):
            # --help or a usage error: nothing was run, so there is nothing to record
            if self._running is not None:
                self._running.remove()
            return
        if not isinstance(exc, DeclarationError):
            try:
                self._resolve(self._namespace(), at_exit=True)
            except DeclarationError as err:
                self._trouble(err)
            for problem in self._unresolved.values():
                self._trouble(problem)
        target = self._target()
        if target is None:
            self._trouble(NoSidecarTargetError(self._no_target_reason()))
        else:
            self._write(target)
        if self._flipped is not None:
            raise self._flipped

    def _no_target_reason(self) -> str:
        where = f"no sidecar was written for {self.entrypoint}"
        declared = [*self.spec.outputs, *(n for n in self.outputs if n not in self.spec.outputs)]
        if not declared:
            return (
                f"{where}: the run declared no output and was given no --manifest-out, so "
                "there is nowhere to put its evidence"
            )
        why = ", ".join(
            f"{n}: unresolved (above)" if n in self._unresolved else f"{n}: not given"
            for n in declared
        )
        return (
            f"{where}: no declared output has a path ({why}) and there was no --manifest-out, "
            "so there is nowhere to put its evidence"
        )

    def _trouble(self, err: ProvenanceError) -> None:
        """Report an evidence problem; a run that would have succeeded fails instead."""
        err = self._hidden(err)
        _warn(str(err), self)
        if self._outcome.status == SUCCEEDED and self._flipped is None:
            self._outcome, self._flipped = from_exception(err), err

    def _hidden(self, err: ProvenanceError) -> ProvenanceError:
        """``err`` with the run's secrets hidden from its message: it may be raised, and Python
        prints what is raised."""
        message = redact_text(
            str(err), known=_known_secrets(self), is_secret=self.secrets, message=True
        )
        return err if message == str(err) else type(err)(message)

    def _output_order(self) -> list[str]:
        # Declaration order decides, whatever order the entries were resolved in.
        return [*self.spec.outputs, *(n for n in self.outputs if n not in self.spec.outputs)]

    def _first_output(self) -> str | None:
        """The output the sidecar goes beside: the first declared one that was given a path."""
        given = [d.paths[0] for n in self._output_order() if (d := self.outputs.get(n)) and d.paths]
        return given[0] if given else None

    def _target(self) -> Path | None:
        if self.manifest_out is not None:
            return Path(self.manifest_out)
        first = self._first_output()
        return sidecar_path_for(first) if first is not None else None

    def _document(self, block: dict[str, Any]) -> dict[str, Any]:
        """The record: recorded fields and the block, with every secret hidden."""
        document = {"schema": MANIFEST_SCHEMA, **self.fields, "run_provenance": block}
        return redact_document(document, self.secrets, _known_secrets(self))

    def _fitted(self, block: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """The record as written, and its bytes: made to fit what a reader takes (limits.fit),
        so that a record that exists can always be read."""
        return fit(self._document(block), canonical_bytes)

    # -- the running record ------------------------------------------------------------------

    def _start_record(self, source: Run) -> None:
        """Write the running record once a target is known: kill -9 later still leaves it."""
        if self._running is not None:
            return
        target = source._target() if source.manifest_out or source.outputs else None
        if target is None:
            return
        base = target if is_sidecar_name(target.name) else sidecar_path_for(target)
        if not self._exiting:
            self._lost_before = lost_runs(base)
        handoff = self._hand_off(base)
        facts = source._facts(cache=False)
        facts.entrypoint = self.entrypoint
        facts.shared_trainer = source.entrypoint if source is not self else self.shared_trainer
        try:
            block = build_block(facts, RUNNING_PIPELINE)
            _, data = source._fitted(block)
            self._running = RunningRecord.create(base, data)
            if handoff is not None:
                handoff.running_at(self._running.path, lost_before=self._lost_before or frozenset())
        except Exception as err:  # noqa: BLE001 -- the start record is a help, never a new way to fail
            _warn(
                f"could not write the running record beside {base}: {type(err).__name__}: {err}",
                self,
            )

    # -- the ranks of a distributed launch (provenance.ranks) -------------------------------

    def _hand_off(self, sidecar: Path) -> Handoff | None:
        """This rank's hand-off beside ``sidecar``, its presence said, once the target is known."""
        if self._launch is None or self._handoff is not None:
            return self._handoff
        self._handoff = Handoff(
            self._launch,
            sidecar,
            started_ns=self.started_ns,
            wait_s=wait_bound(os.environ),
        )
        try:
            self._handoff.present()
        except OSError as err:
            _warn(f"could not say that rank {self._launch.rank} runs, in {sidecar}: {err}", self)
        return self._handoff

    def _write_rank(self, facts: RunFacts, target: Path, block: dict[str, Any]) -> None:
        """Report this rank's part of the job, then assemble the job's record if it is the rank
        to; the job's one record replaces the record each rank would have written alone."""
        sidecar = target if is_sidecar_name(target.name) else sidecar_path_for(target)
        handoff = self._hand_off(sidecar)
        assert handoff is not None  # _write_facts calls this only in a launch
        if self.embed_into is not None:
            _warn(f"did not embed run_provenance: a job of ranks is recorded in {sidecar}", self)
        first = self._first_output()
        guard = self._guard
        with guard.held() if guard is not None else nullcontext():
            if facts.stopped or (guard is not None and guard.arrived()):
                self._outcome = self._interrupted_while_recording()
            facts.outcome = self._outcome
            block.update(build_block(facts, OUTCOME_STEPS))
            # As _placement judges it: the first output, or any output for a --manifest-out.
            judged = (
                [p for d in self.outputs.values() if d is not None for p in d.paths]
                if self.manifest_out is not None
                else [first]
                if first is not None
                else []
            )
            wrote = any(facts.written_by_run(p) for p in judged)
            # As the record shows each path, secrets hidden: the part is a file on disk too,
            # and the assembling rank matches these against the record's redacted paths.
            known = _known_secrets(self)
            opened = sorted(
                redact_text(facts.shown(p), known=known, is_secret=self.secrets)
                for d in self.outputs.values()
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
                self._written = (sidecar, data)  # this rank's own part
            except OSError as err:
                self._trouble(SidecarWriteError(f"could not hand off to {handoff.folder}: {err}"))
                return
        if self._running is not None:
            self._running.remove()
        path = handoff.settle(
            sidecar,
            give_up=lambda: guard is not None and guard.stopped,
            warn=lambda message: _warn(message, self),
        )
        if path is None:
            # Another rank writes the job's record: rank 0's end event waits a bounded time for
            # it, to say what the job did rather than what rank 0 did.
            self._job_record = lambda: handoff.assembled(sidecar)
        else:
            # The job's record, not this rank's part.
            with suppress(OSError):
                self._written = (path, path.read_bytes())
            _tell_record_log(path, self)
            watcher = _sidecar_watcher.get()
            if watcher is not None:
                watcher(path)

    # -- the final record --------------------------------------------------------------------

    def _write(self, target: Path) -> None:
        facts = self._facts()
        try:
            self._write_facts(facts)
        finally:
            facts.close()

    def _write_facts(self, facts: RunFacts) -> None:
        if self._launch is not None:
            target = self._target()
            assert target is not None  # _finish checked that there is somewhere to write
            self._warn_undeclared_beside()
            self._write_rank(facts, target, build_block(facts))
            return
        embedded = None
        try:
            embedded = self._embed(facts)
        except SidecarWriteError as err:
            self._trouble(err)
        target = self._target()
        assert target is not None  # _finish checked that there is somewhere to write
        block = build_block(facts)
        self._warn_undeclared_beside()
        folder = target.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            self._write_failed(target, embedded, err)
            return
        guard = self._guard
        with (
            folder_lock(folder, give_up=lambda: guard is not None and guard.stopped) as locked,
            guard.held() if guard is not None else nullcontext(),
        ):
            if not locked:
                _warn(
                    f"wrote the record without the lock on {folder}: another writer held it", self
                )
            concurrent = self._mark_concurrent(facts, block, target)
            try:
                path = self._write_record(facts, target, block, concurrent=concurrent)
            except OSError as err:
                self._write_failed(target, embedded, err)
                return
            remove_lost(self._superseded(facts, target, path))
        if self._running is not None:
            self._running.remove()
        _tell_record_log(path, self)
        watcher = _sidecar_watcher.get()
        if watcher is not None:
            watcher(path)

    def _write_record(
        self, facts: RunFacts, target: Path, block: dict[str, Any], *, concurrent: bool
    ) -> Path:
        """Decide the outcome, place the record and write it; with the signals held, a signal
        that came meanwhile makes the record interrupted before it is written, never after."""
        if facts.stopped or (self._guard is not None and self._guard.arrived()):
            self._outcome = self._interrupted_while_recording()
        facts.outcome = self._outcome
        block.update(build_block(facts, OUTCOME_STEPS))
        path, data, note = self._placement(facts, target, block)
        # A successful record another run wrote while this one ran is evidence too.
        if path == target and (self._outcome.status != SUCCEEDED or concurrent):
            keep_last_good(target)
        atomic_write(path, data, follow_symlinks=False)
        self._written = (path, data)
        if note:
            _warn(note, self)
        return path

    def _write_failed(self, path: Path, embedded: tuple[Path, bytes] | None, err: OSError) -> None:
        if embedded is not None:
            _undo_embed(*embedded, self)
        self._trouble(SidecarWriteError(f"could not write the sidecar {path}: {err}"))

    def _interrupted_while_recording(self) -> Outcome:
        received = self._guard.ending_signal() if self._guard is not None else None
        exit_code = signal_exit(received) if received is not None else 130
        if received == signal.SIGINT:
            exit_code = SIGINT_EXIT
        return Outcome(INTERRUPTED, exit_code, self._outcome.error)

    def _placement(
        self, facts: RunFacts, target: Path, block: dict[str, Any]
    ) -> tuple[Path, bytes, str | None]:
        """Where this run's record goes and its bytes, never destroying earlier evidence.

        A run that wrote none of its outputs does not take over the record of an artifact it
        left alone: its record goes beside as ``X.manifest.<status>.json``. A script's own JSON
        at ``--manifest-out``, written by this run, gets the block merged into it; anything
        else of the script's there is left alone and the record goes beside it.
        """
        document, data = self._fitted(block)
        status = self._outcome.status
        wrote = any(
            facts.written_by_run(p) for d in self.outputs.values() if d is not None for p in d.paths
        )
        if self.manifest_out is not None and not _is_record(target):
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
                    facts.embedded_in = str(target)
                    block = {**block, **build_block(facts, OUTPUTS_STEPS)}
                    facts.embedded_in = None
                block = redact_block(block, self.secrets, _known_secrets(self))
                merged_data, refused = _embedding(merged, block)
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
            return self._placement_at(beside, data, status, wrote=True, note=note)
        if self.manifest_out is not None:
            return self._placement_at(target, data, status, wrote=wrote)
        first = self._first_output()
        assert first is not None  # the target is beside it
        # A record of an artifact that is gone describes no bytes: a successful run may take
        # its place even without writing the artifact.
        vanished = status == SUCCEEDED and not os.path.lexists(first)
        return self._placement_at(
            target, data, status, wrote=bool(facts.written_by_run(first)) or vanished
        )

    def _placement_at(
        self,
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

    def _superseded(self, facts: RunFacts, target: Path, path: Path) -> list[Path]:
        """The lost runs' records this run's record accounts for: it took the sidecar's place
        and rewrote every output they declared, after they were gone. Any other run's record
        is evidence this run has no say over."""
        base = target if is_sidecar_name(target.name) else sidecar_path_for(target)
        if path not in (target, base) or self._lost_before is None:
            return []  # beside the sidecar: the sidecar, and what it describes, stay
        rewrote = {
            facts.shown(p)
            for d in self.outputs.values()
            if d is not None
            for p in d.paths
            if facts.written_by_run(p)
        }
        return superseded_runs(base, self._lost_before, rewrote)

    def _mark_concurrent(self, facts: RunFacts, block: dict[str, Any], target: Path) -> bool:
        """Say so where another run wrote the same outputs while this one ran: the bytes on
        disk may be that run's. Called with the folder lock held."""
        mine = {
            facts.shown(p)
            for d in self.outputs.values()
            if d is not None
            for p in d.paths
            if facts.written_by_run(p)
        }
        if not mine:
            return False
        base = target if is_sidecar_name(target.name) else sidecar_path_for(target)
        others: set[str] = set()
        for other in running_records(base):
            if self._running is not None and other == self._running.path:
                continue
            # A run that was under way at any moment of this one, live or lost since, may
            # have written the bytes on disk; only one lost before this run began cannot.
            # Unknown (the sidecar was first known at exit): one written since this run began.
            earlier = self._lost_before
            if is_live(other) or (
                other not in earlier
                if earlier is not None
                else changed_since(str(other), self.started_ns)
            ):
                others |= record_outputs(other)
        if target in self._sidecar_stats and _stat_key(target) != self._sidecar_stats[target]:
            others |= record_outputs(target, written_only=True)
        shared = mine & others
        if not shared:
            return False
        for entry in table_entries(block.get("outputs")):
            if entry.get("path") in shared and entry.get("exists"):
                entry["concurrent_writers"] = True
        _warn(
            f"another run wrote {', '.join(sorted(shared))} while this one ran: the record "
            "cannot tell whose bytes these are, and says so (concurrent_writers)",
            self,
        )
        return True

    def _warn_undeclared_beside(self) -> None:
        declared = {p for d in self.outputs.values() if d is not None for p in d.paths}
        for path, before in sorted(self.beside.items()):
            appeared = sorted(
                name
                for name in names_beside(path) - before
                if not is_sidecar_name(name)
                and not is_ranks_folder_name(name)
                and os.path.join(os.path.dirname(path), name) not in declared
            )
            if appeared:
                _warn(
                    f"{', '.join(appeared)} appeared beside the output {os.path.basename(path)} "
                    "during the run and is not declared, so it is not in the record: declare "
                    'it, e.g. outputs={"data": Glob("{out}.data")}',
                    self,
                )

    def _facts(self, *, cache: bool = True) -> RunFacts:
        return RunFacts(
            entrypoint=self.entrypoint,
            root=self.root,
            argv=self.argv,
            args=self.args,
            inputs=self.inputs,
            outputs=self.outputs,
            policy=self.spec.hash_policy,
            secrets=self.secrets,
            parsers=self.parsers,
            shared_trainer=self.shared_trainer,
            baselines=self.baselines,
            outcome=self._outcome,
            gates=self.gates,
            cache=DigestCache.from_environment() if cache else None,
            late=self.late,
            started_ns=self.started_ns,
            guard=self._guard,
            environment=self.spec.environment,
            command=self.command,
            config=self.config,
            config_files=self.config_files,
            seeds=self.seeds.part(),
        )

    def _embed(self, facts: RunFacts) -> tuple[Path, bytes] | None:
        """Put the block into the ``embed_into`` output if this run wrote it as a JSON object."""
        if self.embed_into is None:
            return None
        if self.embed_into not in self.outputs:
            _warn(
                f"did not embed run_provenance: embed_into={self.embed_into!r} names no output",
                self,
            )
            return None
        declared = self.outputs[self.embed_into]
        if declared is None:
            return None
        host = declared.paths[0]
        if not facts.written_by_run(host):
            return None
        found = read_json_object(host)
        if found is None:
            _warn(f"did not embed run_provenance into {host}: it does not hold a JSON object", self)
            return None
        original, document = found
        facts.embedded_in = host
        block = redact_block(build_block(facts), self.secrets, _known_secrets(self))
        facts.embedded_in = None
        data, refused = _embedding(document, block)
        if refused is not None:
            _warn(
                f"did not embed run_provenance into {host}: with it, a reader would refuse the "
                f"file ({refused}); the sidecar holds the record",
                self,
            )
            return None
        facts.forget(host)
        try:
            atomic_write(host, data)
        except OSError as err:
            raise SidecarWriteError(f"could not embed run_provenance into {host}: {err}") from err
        return Path(host), original


def _embedding(document: dict[str, Any], block: dict[str, Any]) -> tuple[bytes, str | None]:
    """``document`` with the block in it, the block made to fit what a reader takes; and why a
    reader would still refuse the whole (the script's own part too big, or not strict JSON),
    or None."""
    fitted, _ = fit({"schema": MANIFEST_SCHEMA, "run_provenance": block}, canonical_bytes)
    data = embedded_bytes(document, fitted["run_provenance"])
    return data, unreadable(data, "record")


def _stat_key(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _is_record(path: Path) -> bool:
    """Whether ``path`` holds a sidecar of ours (not a script's document with a block in it)."""
    document = read_own_record(path)
    return document is not None and document.get("schema") == MANIFEST_SCHEMA


def _tell_record_log(path: Path, run: Run | None = None) -> None:
    log = os.environ.get(RECORD_LOG)
    if not log:
        return
    try:
        with open(log, "a", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(f"{os.path.abspath(path)}\n")
    except OSError as err:
        _warn(f"could not note the record in {RECORD_LOG}={log}: {err}", run)


def _undo_embed(host: Path, original: bytes, run: Run | None = None) -> None:
    # The sidecar failed after the block went into the host: the block must not outlive it.
    try:
        atomic_write(host, original)
    except OSError as err:
        _warn(f"could not take run_provenance back out of {host}: {err}", run)


def _merge_declared(old: Declared | None, new: Declared | None) -> Declared | None:
    if old is None or new is None:
        return new if old is None else old
    paths = tuple(dict.fromkeys((*old.paths, *new.paths)))
    return Declared(paths, many=len(paths) > 1 or old.many or new.many)


def _dotted_keys(lookup: Any, prefix: str = "") -> Iterator[str]:
    """Every key of ``lookup``, nested ones by their dotted path (``data.train_path``)."""
    if not isinstance(lookup, Mapping):
        return
    for key, value in lookup.items():
        name = f"{prefix}{key}"
        yield name
        yield from _dotted_keys(value, f"{name}.")
