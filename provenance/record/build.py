"""The ``run_provenance`` block, built by a pipeline of small steps over one ``RunFacts``."""

from __future__ import annotations

import argparse
import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance.measure import revision as code_revision
from provenance.measure import volatile as volatile_evidence
from provenance.measure.code import imported_project_modules
from provenance.measure.config_files import read_configs
from provenance.measure.environment import EnvironmentDeclaration, declared, evidence, requested
from provenance.measure.hashing import HashPolicy, Progress, describe_path, hash_file
from provenance.measure.paths import (
    Declared,
    Fingerprint,
    TreeStats,
    as_declared,
    changed_since,
    find_root,
    fingerprint,
)
from provenance.record.normalize import display_path, normalize
from provenance.record.outcome import RUNNING, Outcome, from_exit_code
from provenance.record.redact import (
    SecretMatcher,
    known_secrets,
    redact_args,
    redact_argv,
    redact_block,
)
from provenance.signals import SignalGuard, StopHashing
from provenance.stores.digest_cache import DigestCache

RUN_SCHEMA = "provenance.run/v1"
# What a tree whose walk a signal cut short is known to look like: nothing.
_UNKNOWN = Fingerprint(False, ("unknown",))
# Code identity always carries SHA-256, whatever the size (ADR-0661 names it).
_CODE_POLICY = HashPolicy(sha256_max_bytes=2**63)


@dataclass
class RunFacts:
    """Everything measured about one run, from which the block is built."""

    entrypoint: str
    root: Path | None
    argv: list[str]
    args: dict[str, Any]
    inputs: dict[str, Declared | None]
    outputs: dict[str, Declared | None]
    policy: HashPolicy = field(default_factory=HashPolicy)
    secrets: SecretMatcher = field(default_factory=SecretMatcher)
    parsers: list[argparse.ArgumentParser] = field(default_factory=list)
    shared_trainer: str | None = None
    # Stats taken when each path was declared; without them nothing is claimed about change.
    baselines: dict[str, Fingerprint] = field(default_factory=dict)
    outcome: Outcome | None = None
    gates: dict[str, Any] = field(default_factory=dict)
    # Files whose copy of the block is being built: their own entries cannot carry their digest.
    embedded_in: frozenset[str] = frozenset()
    # Digests of unchanged files from earlier runs; None hashes everything afresh.
    cache: DigestCache | None = None
    # Paths declared after the run started (add_output, or resolved only at exit): whether the
    # run wrote them is judged against the moment it started, not against their late stat.
    late: set[str] = field(default_factory=set)
    started_ns: int | None = None
    # Cuts the hashing short when a signal asks the process to end (see provenance.signals).
    guard: SignalGuard | None = None
    # Variables named for the environment evidence; None records none (see environment.py).
    environment: tuple[str, ...] | None = None
    _environment: dict[str, Any] | None = None
    # What a CLI or config framework resolved (provenance.capture): the command path for
    # subcommands, the resolved config, and the config files it read.
    command: str | None = None
    config: dict[str, Any] | None = None
    config_files: list[str] = field(default_factory=list)
    # Declarations that could not be resolved at exit (kind, name, error): the run went on.
    declaration_errors: list[dict[str, str]] = field(default_factory=list)
    # The code revision measured when the run started (see revision.py); None records none.
    revision: dict[str, Any] | None = None
    # Volatile evidence asked for (see volatile.py); None records none.
    volatile: tuple[str, ...] | None = None
    _volatile: dict[str, Any] | None = None
    # The seeds the script set (provenance.capture.seeds): the record's part, empty for none.
    seeds: dict[str, Any] = field(default_factory=dict)
    # Whether this process's imported modules are the run's code (see RunSpec.imported_code).
    imported_code: bool = True
    # What recorded the run from outside its code (see RunSpec.recorded_by).
    recorded_by: str | None = None
    _progress: Progress | None = None
    # Each hashed folder's listing, by its digest: written beside the record (write.py).
    listings: dict[str, bytes] = field(default_factory=dict)
    _entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    _after: dict[str, Fingerprint] = field(default_factory=dict)
    stopped: bool = False  # a signal stopped the hashing: some entries are not measured
    _read_config: tuple[dict[str, Any] | None] | None = None  # the config files, once read

    def told_config(self) -> dict[str, Any] | None:
        """The resolved config; with no framework's (the config= option), the config files' own
        content, or None when one cannot be read. The files are read once, however often the
        record's steps ask."""
        if self.config is not None:
            return self.config
        if self._read_config is None:
            self._read_config = (read_configs(self.config_files),)
        return self._read_config[0]

    def shown(self, path: str) -> str:
        return display_path(path, self.root)

    def entry(self, path: str) -> dict[str, Any]:
        """The on-disk description of ``path``, hashed once per run however often asked."""
        if path not in self._entries:
            if self._progress is None:
                self._progress = Progress("provenance: hashing")
            stats = TreeStats()
            try:
                with self.guard.hashing() if self.guard is not None else nullcontext():
                    self._entries[path] = describe_path(
                        path,
                        self.shown(path),
                        self.policy,
                        self.cache,
                        self._progress,
                        stats.add,
                        self.listings,
                    )
            except StopHashing:
                self.stopped = True
                self._entries[path] = unmeasured(path, self.shown(path))
                if self._entries[path].get("kind") == "directory":
                    # Judging change would walk the tree the signal asked us to stop walking.
                    self._after[path] = _UNKNOWN
                return dict(self._entries[path])
            if self._entries[path].get("kind") == "directory":
                # The hashing walk saw every stat the change check needs: no second walk.
                self._after.setdefault(path, stats.fingerprint())
        return dict(self._entries[path])

    def close(self) -> None:
        """Store what was hashed in the digest cache and take down the progress bar."""
        if self._progress is not None:
            self._progress.close()
            self._progress = None
        if self.cache is not None:
            self.cache.close()

    def outputs_paths(self) -> set[str]:
        return {p for d in self.outputs.values() if d is not None for p in d.paths}

    def forget(self, path: str) -> None:
        """Drop what was measured of ``path``, which has just been rewritten (embedding)."""
        self._entries.pop(path, None)
        self._after.pop(path, None)

    def _changed(self, path: str, *, strict: bool) -> bool | None:
        if self._after.get(path) is _UNKNOWN:
            return None
        before = self.baselines.get(path)
        if (
            path in self.late
            and self.started_ns is not None
            and changed_since(path, self.started_ns)
        ):
            return True
        if before is None:
            return False if path in self.late and self.started_ns is not None else None
        if path not in self._after:
            # Stat-ed once at exit: for a directory that is a walk of every entry below it.
            self._after[path] = fingerprint(path)
        return before.differs(self._after[path], strict=strict)

    def written_by_run(self, path: str) -> bool | None:
        return self._changed(path, strict=True)

    def changed_during_run(self, path: str) -> bool | None:
        return self._changed(path, strict=False)


Step = Callable[[RunFacts], dict[str, Any]]


def _schema(facts: RunFacts) -> dict[str, Any]:
    return {"schema": RUN_SCHEMA}


def code_identity(path: str, root: Path | None) -> dict[str, Any]:
    """``{path, sha256, blake3}`` of one source file."""
    digest = hash_file(path, _CODE_POLICY)
    return {"path": display_path(path, root), "sha256": digest.sha256, "blake3": digest.blake3}


def _identity(facts: RunFacts) -> dict[str, Any]:
    part: dict[str, Any] = {"entrypoint": code_identity(facts.entrypoint, facts.root)}
    if not facts.imported_code:  # a program run as it is: no interpreter stands before it
        part["entrypoint"]["kind"] = "program"
    if facts.recorded_by is not None:  # replay runs it again under the same recorder
        part["recorded_by"] = facts.recorded_by
    if facts.shared_trainer is not None:
        part["shared_trainer"] = code_identity(facts.shared_trainer, facts.root)
    return part


def _code(facts: RunFacts) -> dict[str, Any]:
    if not facts.imported_code:
        return {"code": {}}
    return {"code": imported_project_modules(facts.root, facts.entrypoint)}


def known_secrets_of(facts: RunFacts) -> tuple[str, ...]:
    """The secrets the run was told, as ``known_secrets`` finds them, with a config file's."""
    config = facts.told_config()
    return known_secrets(facts.argv, facts.args, facts.parsers, facts.secrets, config)


def _revision(facts: RunFacts) -> dict[str, Any]:
    return {} if facts.revision is None else {"revision": facts.revision}


def _arguments(facts: RunFacts) -> dict[str, Any]:
    known = known_secrets_of(facts)
    argv = redact_argv(facts.argv, facts.parsers, facts.secrets, args=facts.args, known=known)
    args = redact_args(normalize(facts.args, facts.root), facts.secrets, facts.parsers)
    return redact_block({"argv": argv, "args": args}, facts.secrets, known)


def _configuration(facts: RunFacts) -> dict[str, Any]:
    """The command path and, when a config file was read, the files and the resolved config."""
    part: dict[str, Any] = {}
    if facts.command is not None:
        part["command"] = facts.command
    if facts.config is not None or facts.config_files:
        # When no config can be read, what the run went on with is its parsed arguments.
        resolved = facts.told_config()
        part["config"] = {
            "files": [_input_entry(facts, p) for p in facts.config_files],
            "resolved": normalize(facts.args if resolved is None else resolved, facts.root),
        }
    return redact_block(part, facts.secrets, known_secrets_of(facts))


def _seeds(facts: RunFacts) -> dict[str, Any]:
    return redact_block(facts.seeds, facts.secrets, known_secrets_of(facts)) if facts.seeds else {}


def _input_entry(facts: RunFacts, path: str) -> dict[str, Any]:
    entry = facts.entry(path)
    changed = facts.changed_during_run(path)
    if entry["exists"] and changed is not None:
        entry["changed_during_run"] = changed
    return entry


def unmeasured(path: str, shown: str) -> dict[str, Any]:
    """The entry of a path whose hashing a signal stopped: what it is, and that it was not
    hashed; nothing more is claimed."""
    try:
        st = os.lstat(path)
    except OSError:
        return {"path": shown, "exists": False}
    kind = (
        "directory" if stat.S_ISDIR(st.st_mode) else "file" if stat.S_ISREG(st.st_mode) else "other"
    )
    return {
        "path": shown,
        "exists": True,
        "kind": kind,
        "not_hashed": "the run was stopped by a signal before this path was hashed",
    }


def _output_entry(facts: RunFacts, path: str) -> dict[str, Any]:
    if path in facts.embedded_in:
        return {
            "path": facts.shown(path),
            "exists": True,
            "embedded_here": True,
            "written_by_run": True,
        }
    entry = facts.entry(path)
    written = facts.written_by_run(path)
    if entry["exists"] and written is not None:
        entry["written_by_run"] = written
    return entry


def _entries(
    facts: RunFacts,
    declared: Mapping[str, Declared | None],
    describe: Callable[[RunFacts, str], Any],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, item in declared.items():
        if item is None:
            out[name] = None
        elif item.many:
            out[name] = [describe(facts, p) for p in item.paths]
        else:
            out[name] = describe(facts, item.paths[0])
    return out


def _paths(facts: RunFacts) -> dict[str, Any]:
    return {
        "inputs": _entries(facts, facts.inputs, _input_entry),
        "outputs": _entries(facts, facts.outputs, _output_entry),
    }


def _hash_policy(facts: RunFacts) -> dict[str, Any]:
    return {"hash_policy": facts.policy.as_record()}


def _outcome(facts: RunFacts) -> dict[str, Any]:
    if facts.outcome is None:
        return {}
    outcome = {"outcome": facts.outcome.as_record(facts.gates)}
    return redact_block(outcome, facts.secrets, known_secrets_of(facts))


def _declaration_errors(facts: RunFacts) -> dict[str, Any]:
    if not facts.declaration_errors:
        return {}
    part = {"declaration_errors": [dict(e) for e in facts.declaration_errors]}
    return redact_block(part, facts.secrets, known_secrets_of(facts))


def _environment(facts: RunFacts) -> dict[str, Any]:
    names = requested(facts.environment)
    if names is None:
        return {}
    if facts._environment is None:  # once: the block is built again to embed it or re-decide
        facts._environment = evidence(names, facts.secrets)
    return {"environment": facts._environment}


def _volatile(facts: RunFacts) -> dict[str, Any]:
    names = volatile_evidence.requested(facts.volatile)
    if not names or facts.embedded_in:  # the artifact's bytes stay the work's own
        return {}
    if facts._volatile is None:  # once: the block is built again to embed it or re-decide
        facts._volatile = volatile_evidence.evidence(names, facts.started_ns, time.time_ns())
    return {"volatile": facts._volatile}


def _volatile_start(facts: RunFacts) -> dict[str, Any]:
    names = volatile_evidence.requested(facts.volatile)
    if not names:
        return {}
    return {"volatile": volatile_evidence.evidence(names, facts.started_ns, None)}


PIPELINE: tuple[Step, ...] = (
    _schema,
    _identity,
    _code,
    _revision,
    _arguments,
    _configuration,
    _seeds,
    _paths,
    _hash_policy,
    _environment,
    _outcome,
    _declaration_errors,
    _volatile,
)
# The outcome alone, rebuilt when a signal during recording changed it.
OUTCOME_STEPS: tuple[Step, ...] = (_outcome,)
# The declared paths alone, rebuilt when the record goes into one of the outputs.
OUTPUTS_STEPS: tuple[Step, ...] = (_paths,)


def _pending(facts: RunFacts, path: str) -> dict[str, Any]:
    return {"path": facts.shown(path), "pending": True}


def _declared_paths(facts: RunFacts) -> dict[str, Any]:
    return {
        "inputs": _entries(facts, facts.inputs, _pending),
        "outputs": _entries(facts, facts.outputs, _pending),
    }


def _under_way(facts: RunFacts) -> dict[str, Any]:
    return {
        "code": {},
        "outcome": {"status": RUNNING, "exit_code": None, "error": None, "gates": {}},
    }


# The record a run writes when it starts: who runs what on which paths, nothing hashed yet.
RUNNING_PIPELINE: tuple[Step, ...] = (
    _schema,
    _identity,
    _revision,
    _arguments,
    _declared_paths,
    _hash_policy,
    _under_way,
    _volatile_start,
)


def build_block(facts: RunFacts, steps: Sequence[Step] = PIPELINE) -> dict[str, Any]:
    """Run every step over ``facts`` and merge their parts into one block."""
    block: dict[str, Any] = {}
    for step in steps:
        block.update(step(facts))
    return block


def build_run_provenance(
    *,
    entrypoint: str | os.PathLike[str],
    argv: Sequence[str] = (),
    args: argparse.Namespace | Mapping[str, Any] | None = None,
    inputs: Mapping[str, Any] | None = None,
    outputs: Mapping[str, Any] | None = None,
    shared_trainer: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    redact: Iterable[str] = (),
    hash_policy: HashPolicy | None = None,
    exit_code: int | None = None,
    gates: Mapping[str, Any] | None = None,
    environment: EnvironmentDeclaration = None,
    volatile: volatile_evidence.VolatileDeclaration = None,
) -> dict[str, Any]:
    """The ``run_provenance`` block as a dict, for scripts that assemble their own JSON.

    ``inputs``/``outputs`` map names to paths (one, a list, or None). With no stat taken before
    the work, the block claims nothing about ``written_by_run``; with no ``exit_code`` it has no
    ``outcome``. ``environment`` records the environment and ``volatile`` the host, user and
    time of building it, as ``recorded_run`` does; the code revision is measured now.
    """
    entry = os.path.abspath(entrypoint)
    facts = RunFacts(
        entrypoint=entry,
        root=Path(os.path.abspath(root)) if root is not None else find_root(entry),
        argv=[str(a) for a in argv],
        args=dict(vars(args) if isinstance(args, argparse.Namespace) else (args or {})),
        inputs={n: as_declared("input", n, v) for n, v in (inputs or {}).items()},
        outputs={n: as_declared("output", n, v) for n, v in (outputs or {}).items()},
        policy=hash_policy or HashPolicy(),
        secrets=SecretMatcher(redact),
        shared_trainer=os.path.abspath(shared_trainer) if shared_trainer is not None else None,
        outcome=from_exit_code(exit_code) if exit_code is not None else None,
        gates=normalize(dict(gates or {})),
        cache=DigestCache.from_environment(),
        environment=declared(environment),
        revision=code_revision.measure(entry),
        volatile=volatile_evidence.declared(volatile),
    )
    try:
        return build_block(facts)
    finally:
        facts.close()
