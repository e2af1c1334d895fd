"""One recorded run: its per-call state, the lifecycle that ends it, and ``current_run()``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Literal

from provenance.capture import capturing
from provenance.digest_cache import DigestCache
from provenance.errors import (
    DeclarationError,
    NoActiveRunError,
    NoSidecarTargetError,
    ProvenanceError,
    SidecarWriteError,
)
from provenance.hashing import HashPolicy
from provenance.normalize import normalize
from provenance.outcome import SUCCEEDED, Outcome, Terminated, from_exception, from_exit_code
from provenance.paths import (
    Declaration,
    Declarations,
    Declared,
    Fingerprint,
    as_declared,
    find_root,
    fingerprint,
    resolve,
)
from provenance.record import RunFacts, build_block
from provenance.redact import (
    SecretMatcher,
    known_secrets,
    redact_block,
    redact_document,
    redact_text,
)
from provenance.sidecar import (
    MANIFEST_SCHEMA,
    RECORD_LOG,
    atomic_write,
    canonical_bytes,
    embedded_bytes,
    place,
    read_json_object,
    sidecar_path_for,
    write_placed,
)

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


def _warn(message: str, run: Run | None = None) -> None:
    """Print a note on stderr, with the secrets of ``run`` (and any by their shape) hidden."""
    known = _known_secrets(run) if run is not None else ()
    note = redact_text(message, known=known, is_secret=run.secrets if run is not None else None)
    print(f"provenance: {note}", file=sys.stderr, flush=True)


def _known_secrets(run: Run) -> tuple[str, ...]:
    return known_secrets(run.argv, run.args, run.parsers, run.secrets)


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
        self.inputs: dict[str, Declared | None] = {}
        self.outputs: dict[str, Declared | None] = {}
        self.manifest_out: str | None = None
        self.embed_into = spec.embed_into
        self.baselines: dict[str, Fingerprint] = {}
        self.fields: dict[str, Any] = {}
        self.gates: dict[str, Any] = {}
        self.secrets = SecretMatcher(spec.redact)
        self._parse_exit: SystemExit | None = None
        self._result: object = None
        self._stack = ExitStack()
        self._sigterm_installed = False
        # Set by our SIGTERM handler: the process must still end by SIGTERM, even if the script
        # caught the exception that unwound it.
        self._terminated = False
        self._outcome = Outcome(SUCCEEDED, 0)
        self._flipped: ProvenanceError | None = None
        self._resolved: set[tuple[str, str]] = set()

    # -- the script's side -------------------------------------------------------------------

    def add_input(self, name: str, path: str | os.PathLike[str] | list[Any] | None) -> None:
        """Declare an input from the script body; it is stat-ed now and hashed at exit."""
        self._declare(self.inputs, "input", name, path)

    def add_output(self, name: str, path: str | os.PathLike[str] | list[Any] | None) -> None:
        """Declare an output from the script body; stat-ed now, so ``written_by_run`` is known."""
        self._declare(self.outputs, "output", name, path)

    def record(self, **fields: Any) -> None:
        """Add script-specific fields (row counts, feature order, counters) to the manifest."""
        reserved = RESERVED_FIELDS.intersection(fields)
        if reserved:
            raise ProvenanceError(f"manifest field names {sorted(reserved)} are reserved")
        self.fields.update(normalize(fields, self.root))

    def gate(self, name: str, passed: bool, /, **values: Any) -> None:
        """Record a quality-gate verdict; it does not change the exit code, the script does."""
        if "passed" in values:
            raise ProvenanceError("gate values may not be named 'passed'")
        self.gates[name] = {"passed": bool(passed), **normalize(values, self.root)}

    def _declare(self, table: dict[str, Declared | None], kind: str, name: str, value: Any) -> None:
        declared = as_declared(kind, name, value)
        table[name] = declared
        self._baseline(declared)

    def _baseline(self, declared: Declared | None) -> None:
        for path in declared.paths if declared is not None else ():
            self.baselines.setdefault(path, fingerprint(path))

    # -- argparse capture (ParseListener) ----------------------------------------------------

    def on_parsed(
        self, parser: argparse.ArgumentParser, argv: list[str], namespace: argparse.Namespace
    ) -> None:
        self.parsed = True
        self.parsers.append(parser)
        self.args.update(vars(namespace))
        self._resolve(argparse.Namespace(**self.args))

    def on_parse_exit(self, exc: SystemExit) -> None:
        self._parse_exit = exc

    def _declarations(self) -> Iterator[tuple[str, str, Declaration, dict[str, Declared | None]]]:
        """Every declaration of the spec, with its kind and the table it resolves into."""
        for kind, declarations, table in (
            ("input", self.spec.inputs, self.inputs),
            ("output", self.spec.outputs, self.outputs),
        ):
            for name, declaration in declarations.items():
                yield kind, name, declaration, table

    def _resolve(self, namespace: argparse.Namespace, *, at_exit: bool = False) -> None:
        """Resolve the spec's declarations against ``namespace``; a missing dest raises.

        Literal paths were declared when the run started. At exit only what is still
        unresolved is tried (an outer run that never parsed, whose arguments came from a
        delegated run), and without a baseline: nothing can be claimed about how a path first
        seen at exit changed.
        """
        for kind, name, declaration, table in self._declarations():
            if isinstance(declaration, os.PathLike) or (at_exit and (kind, name) in self._resolved):
                continue
            declared = resolve(kind, name, declaration, namespace)
            table[name] = _merge_declared(table.get(name), declared) if at_exit else declared
            self._resolved.add((kind, name))
            if not at_exit:
                self._baseline(declared)
        self._resolve_manifest(namespace)

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

    # -- lifecycle -----------------------------------------------------------------------------

    def __enter__(self) -> Run:
        if not os.path.isfile(self.entrypoint):
            raise ProvenanceError(
                f"the entrypoint {self.entrypoint} is not a file, so the run's code cannot be "
                "identified (a REPL, a notebook cell or python -c?): pass entrypoint=<script path>"
            )
        self.parent = _current.get()
        if self.parent is not None and self.parent.entrypoint != self.entrypoint:
            self.parent.shared_trainer = self.parent.shared_trainer or self.entrypoint
        for kind, name, declaration, table in self._declarations():
            if isinstance(declaration, os.PathLike):
                self._declare(table, kind, name, declaration)
                self._resolved.add((kind, name))
        token = _current.set(self)
        self._stack.callback(_current.reset, token)
        self._stack.enter_context(capturing(self))
        if self.parent is None:
            self._install_sigterm()
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
            failure = ProvenanceError(f"could not record the run: {type(err).__name__}: {err}")
            _warn(str(failure), self)
            if self._outcome.status == SUCCEEDED:
                raise failure from err
        finally:
            self._restore_sigterm()
        return False

    def _ended_in_argparse(self, exc: BaseException | None) -> bool:
        return exc is not None and exc is self._parse_exit

    def _join(self, outer: Run) -> None:
        outer.parsed = outer.parsed or self.parsed
        outer.parsers.extend(self.parsers)
        outer.args.update(self.args)
        outer._parse_exit = outer._parse_exit or self._parse_exit
        for table, mine in ((outer.inputs, self.inputs), (outer.outputs, self.outputs)):
            for name, declared in mine.items():
                table[name] = _merge_declared(table.get(name), declared)
        for path, before in self.baselines.items():
            outer.baselines.setdefault(path, before)
        outer.manifest_out = outer.manifest_out or self.manifest_out
        outer.embed_into = outer.embed_into or self.embed_into
        outer.fields.update(self.fields)
        outer.gates.update(self.gates)

    def _finish(self, exc: BaseException | None) -> None:
        if self._terminated:
            self._outcome = from_exception(Terminated(signal.SIGTERM))
        elif exc is not None:
            self._outcome = from_exception(exc)
        else:
            self._outcome = from_exit_code(self._result)
        if self._ended_in_argparse(exc):
            return  # --help or a usage error: nothing was run, so there is nothing to record
        if (self.parsed or self.args) and not isinstance(exc, DeclarationError):
            try:
                self._resolve(argparse.Namespace(**self.args), at_exit=True)
            except DeclarationError as err:
                self._trouble(err)
        target = self._target()
        if target is None:
            self._trouble(
                NoSidecarTargetError(
                    f"no sidecar was written for {self.entrypoint}: the run declared no output "
                    "and was given no --manifest-out, so there is nowhere to put its evidence"
                )
            )
        else:
            self._write(target)
        if self._flipped is not None:
            raise self._flipped

    def _trouble(self, err: ProvenanceError) -> None:
        """Report an evidence problem; a run that would have succeeded fails instead."""
        _warn(str(err), self)
        if self._outcome.status == SUCCEEDED and self._flipped is None:
            self._outcome, self._flipped = from_exception(err), err

    def _write(self, target: Path) -> None:
        facts = self._facts()
        try:
            self._write_facts(target, facts)
        finally:
            facts.close()

    def _write_facts(self, target: Path, facts: RunFacts) -> None:
        embedded = None
        try:
            embedded = self._embed(facts)
        except SidecarWriteError as err:
            self._trouble(err)
            facts.outcome = self._outcome
        document = redact_document(
            {"schema": MANIFEST_SCHEMA, **self.fields, "run_provenance": build_block(facts)},
            self.secrets,
            _known_secrets(self),
        )
        placement = place(
            target,
            succeeded=self._outcome.status == SUCCEEDED,
            status=self._outcome.status,
            rewrote_output=any(
                facts.written_by_run(p) for d in self.outputs.values() if d for p in d.paths
            ),
        )
        try:
            write_placed(placement, canonical_bytes(document))
        except OSError as err:
            if embedded is not None:
                _undo_embed(*embedded, self)
            self._trouble(SidecarWriteError(f"could not write the sidecar {placement.path}: {err}"))
            return
        if placement.note:
            _warn(placement.note, self)
        _tell_record_log(placement.path, self)
        watcher = _sidecar_watcher.get()
        if watcher is not None:
            watcher(placement.path)

    def _target(self) -> Path | None:
        if self.manifest_out is not None:
            return Path(self.manifest_out)
        # Declaration order decides, whatever order the entries were resolved in.
        names = [*self.spec.outputs, *(n for n in self.outputs if n not in self.spec.outputs)]
        for name in names:
            declared = self.outputs.get(name)
            if declared is not None:
                return sidecar_path_for(declared.paths[0])
        return None

    def _facts(self) -> RunFacts:
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
            cache=DigestCache.from_environment(),
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
        facts.forget(host)
        try:
            atomic_write(host, embedded_bytes(document, block))
        except OSError as err:
            raise SidecarWriteError(f"could not embed run_provenance into {host}: {err}") from err
        return Path(host), original

    # -- SIGTERM -------------------------------------------------------------------------------

    def _install_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return  # the script (or its framework) handles SIGTERM itself; leave it be
        signal.signal(signal.SIGTERM, self._on_sigterm)
        self._sigterm_installed = True

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self._terminated = True
        raise Terminated(signum)

    def _restore_sigterm(self) -> None:
        if not self._sigterm_installed:
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if self._terminated:
            # End the way the process would have without us: killed by SIGTERM.
            os.kill(os.getpid(), signal.SIGTERM)


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
