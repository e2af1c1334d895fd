"""One recorded run: its per-call state, the lifecycle that ends it, and ``current_run()``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
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
)
from provenance.measure import revision
from provenance.measure.config_files import read_configs
from provenance.measure.hashing import HashPolicy
from provenance.measure.paths import (
    Declaration,
    Declarations,
    Declared,
    Fingerprint,
    Glob,
    Resolved,
    as_declared,
    closest,
    find_root,
    fingerprint,
    is_literal,
    keys_of,
    lookup,
    names_beside,
    names_in,
    resolve,
)
from provenance.ranks import Handoff, Launch, detect, watch_writes
from provenance.record.build import RunFacts
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
from provenance.record.redact import SecretMatcher, known_secrets, redact_error, redact_text
from provenance.record.sidecar import RunningRecord, lost_runs, sidecar_path_for
from provenance.record.write import (
    RESERVED_FIELDS,
    RecordWriter,
    WriteFacts,
    record_target,
    sidecar_base,
    stat_key,
)
from provenance.signals import SignalGuard
from provenance.stores.digest_cache import DigestCache

ManifestDeclaration = str | Callable[[argparse.Namespace], Any] | None

_current: ContextVar[Run | None] = ContextVar("provenance_current_run", default=None)


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
    embed_into: str | tuple[str, ...] | None = None
    redact: tuple[str, ...] = ()
    hash_policy: HashPolicy = field(default_factory=HashPolicy)
    root: str | None = None
    environment: tuple[str, ...] | None = None  # variables to record; None: no environment
    config: Declaration | None = None  # the option naming a config file the script reads
    volatile: tuple[str, ...] | None = None  # time, host, user to record; None: none of them
    # Whether the modules this process imported are the run's code: not when the run records a
    # command that runs as a child process (``provenance run -- bash ...``).
    imported_code: bool = True
    # What recorded the run from outside its code ("provenance run"); None: its own decorator.
    recorded_by: str | None = None
    sign_with: str | None = None  # a PEM key that signs each output after a successful run


SIGNING_KEY_ENV = "PROVENANCE_SIGNING_KEY"  # a PEM key's path: sign every run's outputs


def _warn(message: str, run: Run | None = None) -> None:
    """Print a note on stderr, with the secrets of ``run`` (and any by their shape) hidden."""
    known = _known_secrets(run) if run is not None else ()
    secrets = run.secrets if run is not None else None
    note = redact_text(message, known=known, is_secret=secrets, message=True)
    print(f"provenance: {note}", file=sys.stderr, flush=True)


def _interrupt_exit() -> int:
    """What the process exits with after a Ctrl-C: what a framework turns it into (click's 1,
    after "Aborted!"), else 130."""
    framework = exit_status(KeyboardInterrupt())
    return SIGINT_EXIT if framework is None else framework[0]


def _known_secrets(run: Run) -> tuple[str, ...]:
    # With no framework config, the files' own content is what the script was told.
    config = run.config if run.config is not None else read_configs(run.config_files)
    return known_secrets(run.argv, run.args, run.parsers, run.secrets, config)


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
        self.revision: dict[str, Any] | None = None  # the outermost run's, from its start
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
        self._check_due = False  # a complete parse ended before the run was entered
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
                self._sidecar_stats.setdefault(sidecar, stat_key(sidecar))
        if kind == "output" and declared is not None:
            self._top()._start_record(self)

    def _top(self) -> Run:
        run = self
        while run.parent is not None:
            run = run.parent
        return run

    # -- argparse capture (ParseListener) ----------------------------------------------------

    def on_parsed(
        self,
        parser: argparse.ArgumentParser,
        argv: list[str],
        namespace: argparse.Namespace,
        complete: bool = True,
    ) -> None:
        self.parsed = True
        self.parsers.append(parser)
        self.args.update(vars(namespace))
        self._heard("argparse", vars(namespace))
        self._resolve(self._namespace())
        if complete:
            self._check_names()

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
        if resolution.complete:
            self._check_names()

    def _check_names(self) -> None:
        """At the end of a complete parse (not ``parse_known_args``, not a click group with its
        command still to come), every key a declaration names must be there: a mistake stops
        the script now, before its work, as a usage error would, and nothing is recorded."""
        if not self._entered:
            self._check_due = True  # a framework that parsed before the run began
            return
        namespace = self._namespace()
        for kind, name, declaration, _table in self._declarations():
            if (kind, name) in self._resolved:
                continue
            for key in names_in(declaration):
                if not lookup(namespace, key)[0]:
                    self._stop(self._unsupplied(kind, name, key, namespace))
            if callable(declaration) or isinstance(declaration, str):
                # It raised, or gave something other than paths (a key naming a section): say so
                try:
                    resolve(kind, name, declaration, namespace)
                except DeclarationError as err:
                    self._stop(err)
        if callable(self.spec.manifest) and self.manifest_out is None:
            try:
                self._resolve_manifest(namespace)
            except DeclarationError as err:
                self._stop(err)

    def _stop(self, err: DeclarationError) -> None:
        """End the script at its parse with a declaration's mistake: nothing ran yet."""
        hidden = self._hidden(err)
        self._parse_exit = hidden
        raise hidden

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
            if is_literal(declaration) or (kind, name) in self._resolved:
                continue
            if isinstance(declaration, Glob) and not at_exit:
                continue
            if isinstance(declaration, str) and not lookup(namespace, declaration)[0]:
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
                f"{framework} had {closest(dest, keys)}"
                for framework, keys in sorted(self.frameworks.items())
            )
            return DeclarationError(
                f"{kind} {name!r} names {dest!r}, which no framework resolved ({heard})"
            )
        have = closest(dest, keys_of(namespace))
        seen = "no argument parser ran" if not self.parsed else f"the parses supplied {have}"
        return DeclarationError(
            f"{kind} {name!r} names the argparse dest {dest!r}, which no parse supplied ({seen})"
        )

    def _resolve_manifest(self, namespace: argparse.Namespace) -> None:
        declaration = self.spec.manifest
        if declaration is None or (
            isinstance(declaration, str) and not lookup(namespace, declaration)[0]
        ):
            return  # the script has no --manifest-out: the sidecar goes beside an output
        declared = resolve("manifest", "manifest", declaration, namespace)
        if declared is not None and declared.many:
            raise DeclarationError("the manifest declaration must give one path, not a list")
        if declared is not None:
            self.manifest_out = declared.paths[0]
            sidecar = Path(self.manifest_out)
            self._sidecar_stats.setdefault(sidecar, stat_key(sidecar))
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
        if self.parent is None:  # before the signal guard: git is never left half-asked
            self.revision = revision.measure(self.entrypoint)
        token = _current.set(self)
        self._stack.callback(_current.reset, token)
        self._stack.enter_context(capturing(self, self.given))
        if self.parent is None:
            self._guard = SignalGuard()
            self._guard.install()
            self._launch, problem = detect(os.environ)
            if problem is not None:
                _warn(problem, self)
            if self.root is None:
                _warn(
                    f"no .git or pyproject.toml above {self.entrypoint}: the record gives its "
                    "paths absolute (recorded_run(root=...) names a project root)",
                    self,
                )
            if self._launch is not None:
                watch_writes()
        for kind, name, declaration, table in self._declarations():
            if is_literal(declaration):
                self._declare(table, kind, name, declaration)
                self._resolved.add((kind, name))
                given = table[name]
                for path in given.paths if kind == "config" and given is not None else ():
                    self._add_config_file(path)
        self._entered = True
        if self._check_due:
            try:
                self._check_names()
            except DeclarationError as err:
                self.__exit__(type(err), err, err.__traceback__)
                raise
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
                if isinstance(exc, KeyboardInterrupt):  # click's "Aborted!": a Ctrl-C all the same
                    return Outcome(INTERRUPTED, status)
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
                self._unresolved.setdefault("manifest", err)
            for problem in self._unresolved.values():
                # A mistake in a declaration never costs a run: it is said, and named in the
                # record, and the script's own exit code stands.
                _warn(str(self._hidden(problem)), self)
        target = self._target()
        if target is None and self._unresolved:
            _warn(self._no_target_reason(), self)
        elif target is None:
            self._trouble(NoSidecarTargetError(self._no_target_reason()))
        else:
            self._write()
            self._sign()
        if self._flipped is not None:
            raise self._flipped

    def _sign(self) -> None:
        """Attest each output once the record of a successful run is written, when a key is
        given; a signature that could not be made is said, and changes no exit code."""
        key = self.spec.sign_with or os.environ.get(SIGNING_KEY_ENV)
        if not key or self._outcome.status != SUCCEEDED or self._written is None:
            return
        from provenance.emit.attestation import attest_outputs

        paths = [p for n in self._output_order() if (d := self.outputs.get(n)) for p in d.paths]
        for problem in attest_outputs(self._written[0], paths, key):
            _warn(problem, self)

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
        return redact_error(err, known=_known_secrets(self), is_secret=self.secrets)

    def _output_order(self) -> list[str]:
        # Declaration order decides, whatever order the entries were resolved in.
        return [*self.spec.outputs, *(n for n in self.outputs if n not in self.spec.outputs)]

    def _first_output(self) -> str | None:
        """The output the sidecar goes beside: the first declared one that was given a path."""
        given = [d.paths[0] for n in self._output_order() if (d := self.outputs.get(n)) and d.paths]
        return given[0] if given else None

    def _target(self) -> Path | None:
        return record_target(self.manifest_out, self._first_output())

    # -- the record (provenance.record.write) ------------------------------------------------

    def _start_record(self, source: Run) -> None:
        """Write the running record once a target is known: kill -9 later still leaves it."""
        if self._running is not None:
            return
        target = source._target() if source.manifest_out or source.outputs else None
        if target is None:
            return
        if not self._exiting:
            self._lost_before = lost_runs(sidecar_base(target))
        facts = source._facts(cache=False)
        facts.entrypoint = self.entrypoint
        facts.shared_trainer = source.entrypoint if source is not self else self.shared_trainer
        writer = RecordWriter(source._told(facts, self))
        try:
            writer.start()
        finally:
            self._running, self._handoff = writer.running, writer.handoff

    def _write(self) -> None:
        facts = self._facts()
        writer = RecordWriter(self._told(facts, self))
        try:
            writer.write()
        finally:
            facts.close()
            self._outcome = writer.outcome
            self._flipped = self._flipped if writer.flipped is None else writer.flipped
            self._written, self._job_record = writer.written, writer.job_record
            self._running, self._handoff = writer.running, writer.handoff

    def _told(self, facts: RunFacts, top: Run) -> WriteFacts:
        """What the record writer needs of this run, recorded by ``top``: the outermost run of
        the process, which holds the outcome, the running record and the rank's hand-off."""
        return WriteFacts(
            facts=facts,
            outcome=top._outcome,
            warn=lambda message: _warn(message, top),
            fields=self.fields,
            manifest_out=self.manifest_out,
            first_output=self._first_output(),
            embed_into=self.embed_into,
            beside=self.beside,
            lost_before=top._lost_before,
            sidecar_stats=self._sidecar_stats,
            running=top._running,
            launch=top._launch,
            handoff=top._handoff,
            interrupt_exit=_interrupt_exit(),
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
            revision=self._top().revision,
            volatile=self._top().spec.volatile,
            command=self.command,
            config=self.config,
            config_files=self.config_files,
            seeds=self.seeds.part(),
            imported_code=self.spec.imported_code,
            recorded_by=self._top().spec.recorded_by,
            declaration_errors=self._declaration_errors(),
        )

    def _declaration_errors(self) -> list[dict[str, str]]:
        """The declarations that failed at exit, each named with its error, in a fixed order."""
        kinds = {name: kind for kind, name, _d, _t in self._declarations()}
        return [
            {"kind": kinds.get(name, "manifest"), "name": name, "error": str(err)}
            for name, err in sorted(self._unresolved.items())
        ]


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
