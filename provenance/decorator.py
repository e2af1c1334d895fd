"""``recorded_run``: a decorator (bare or with arguments) and a context manager over ``Run``."""

from __future__ import annotations

import inspect
import os
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar, overload

import wrapt

from provenance.errors import DeclarationError, ProvenanceError
from provenance.measure.environment import EnvironmentDeclaration, declared
from provenance.measure.hashing import HashPolicy
from provenance.measure.paths import (
    Declaration,
    Declarations,
    check_declaration,
    check_declarations,
)
from provenance.measure.volatile import VolatileDeclaration
from provenance.measure.volatile import declared as declared_volatile
from provenance.run import ManifestDeclaration, Run, RunSpec

P = ParamSpec("P")
R = TypeVar("R")


class RecordedRun:
    """A ``recorded_run(...)`` declaration: decorate a ``main`` with it, or use it in ``with``."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        # Runs opened by `with` on this declaration, per thread, so one declaration can serve
        # several threads at once.
        self._local = threading.local()

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        target = inspect.unwrap(func)
        kind = (
            "async function"
            if inspect.iscoroutinefunction(target)
            else "generator function"
            if inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target)
            else None
        )
        if kind is not None:
            raise ProvenanceError(
                f"recorded_run cannot record the {kind} {func.__qualname__}: calling it returns "
                "before the work runs; decorate the plain main that drives it"
            )
        spec = self.spec
        defined_in = spec.entrypoint or _defining_file(func)

        @wrapt.decorator
        def wrapper(
            wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
        ) -> Any:
            run = Run(spec, defined_in, _given_argv(wrapped, args, kwargs))
            run.given = (args, kwargs)
            with run:
                result = wrapped(*args, **kwargs)
                run.returned(result)
            return result

        return wrapper(func)

    def __enter__(self) -> Run:
        caller = sys._getframe(1).f_code.co_filename
        run = Run(self.spec, self.spec.entrypoint or caller, sys.argv[1:])
        self._open().append(run)
        return run.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        return self._open().pop().__exit__(exc_type, exc, tb)

    def _open(self) -> list[Run]:
        if not hasattr(self._local, "runs"):
            self._local.runs = []
        runs: list[Run] = self._local.runs
        return runs


def _defining_file(func: Callable[..., Any]) -> str:
    return os.path.abspath(inspect.getfile(inspect.unwrap(func)))


def _given_argv(wrapped: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[str]:
    """The argument list the script was given: its ``argv`` parameter, else ``sys.argv[1:]``."""
    try:
        bound = inspect.signature(wrapped).bind_partial(*args, **kwargs)
    except TypeError:
        bound = None  # the call itself is wrong; let the wrapped function raise as it would
    given = bound.arguments.get("argv") if bound is not None else None
    if given is None:
        given = sys.argv[1:]
    if isinstance(given, (str, bytes)):
        return [os.fsdecode(given)]
    return [os.fsdecode(a) if isinstance(a, bytes) else str(a) for a in given]


def check_embed_into(
    embed_into: object, outputs: Mapping[str, object]
) -> str | tuple[str, ...] | None:
    """``embed_into`` as the run uses it: one declared output's name, or a tuple of several
    (a list is taken as a tuple); anything else is a one-line ``DeclarationError`` now."""
    if embed_into is None:
        return None
    if isinstance(embed_into, str):
        names: tuple[object, ...] = (embed_into,)
    elif isinstance(embed_into, (tuple, list)):
        names = tuple(embed_into)
        if not names:
            raise DeclarationError(
                f"embed_into is an empty {type(embed_into).__name__}: name the output(s) to "
                "embed into, or leave it out"
            )
    else:
        raise DeclarationError(
            f"embed_into names an output or a tuple of them, not {type(embed_into).__name__}"
        )
    for name in names:
        if not isinstance(name, str):
            raise DeclarationError(
                f"embed_into names outputs by their names (strings), not {type(name).__name__} "
                f"{name!r}"
            )
        if name not in outputs:
            declared = ", ".join(sorted(outputs)) or "none"
            raise DeclarationError(
                f"embed_into={name!r} names no declared output (outputs: {declared})"
            )
    repeated = sorted({n for n in names if names.count(n) > 1}, key=str)
    if repeated:
        raise DeclarationError(f"embed_into names {', '.join(map(repr, repeated))} more than once")
    if isinstance(embed_into, str):
        return embed_into
    return tuple(str(n) for n in names)


@overload
def recorded_run(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def recorded_run(
    *,
    entrypoint: str | os.PathLike[str] | None = None,
    inputs: Declarations | None = None,
    outputs: Declarations | None = None,
    manifest: ManifestDeclaration = "manifest_out",
    embed_into: str | tuple[str, ...] | list[str] | None = None,
    redact: Iterable[str] = (),
    hash_policy: HashPolicy | None = None,
    root: str | os.PathLike[str] | None = None,
    environment: EnvironmentDeclaration = None,
    config: Declaration | None = None,
    volatile: VolatileDeclaration = None,
    sign_with: str | os.PathLike[str] | None = None,
) -> RecordedRun: ...


def recorded_run(
    func: Callable[P, R] | None = None,
    /,
    *,
    entrypoint: str | os.PathLike[str] | None = None,
    inputs: Declarations | None = None,
    outputs: Declarations | None = None,
    manifest: ManifestDeclaration = "manifest_out",
    embed_into: str | tuple[str, ...] | list[str] | None = None,
    redact: Iterable[str] = (),
    hash_policy: HashPolicy | None = None,
    root: str | os.PathLike[str] | None = None,
    environment: EnvironmentDeclaration = None,
    config: Declaration | None = None,
    volatile: VolatileDeclaration = None,
    sign_with: str | os.PathLike[str] | None = None,
) -> Callable[P, R] | RecordedRun:
    """Record every run of a script's ``main`` in a provenance sidecar.

    ``inputs``/``outputs`` map names to an argparse dest (or a framework's dotted key), a
    callable of the parsed arguments, a literal path or list of paths, or a ``Glob``; a
    declaration of the wrong type is a ``DeclarationError`` here, before anything runs.
    The sidecar goes to ``--manifest-out`` (the ``manifest`` dest or
    callable) when given, else beside the first declared output. ``embed_into`` names an
    output JSON object (or a tuple of them) that also receives the block. ``redact`` adds
    secret option names.
    ``environment`` (True, or names of environment variables) records the environment too.
    ``config`` names the option (or callable) giving a config file the script reads, recorded
    with its digests like the config files a framework reads. ``volatile`` (True, or some of
    ``time``, ``host``, ``user``) records what differs from run to run; off by default.
    ``sign_with`` (else ``$PROVENANCE_SIGNING_KEY``) names an elliptic-curve PEM key that
    attests each output once a run succeeds (``provenance attest``; the sign extra); its
    password, if any, is read from ``$PROVENANCE_SIGNING_PASSWORD``. Neither enters a record.
    """
    # A mistake in a declaration is said now, in one line, not after the script's work.
    checked_inputs = check_declarations("input", inputs)
    checked_outputs = check_declarations("output", outputs)
    if config is not None:
        check_declaration("config", "config", config)
    if (
        manifest is not None
        and not (isinstance(manifest, str) and manifest)
        and not callable(manifest)
    ):
        raise DeclarationError(
            "manifest names the option giving the sidecar's path (a dest or a callable), "
            f"not {type(manifest).__name__}"
        )
    embed_into = check_embed_into(embed_into, checked_outputs)
    spec = RunSpec(
        inputs=checked_inputs,
        outputs=checked_outputs,
        entrypoint=os.path.abspath(entrypoint) if entrypoint is not None else None,
        manifest=manifest,
        embed_into=embed_into,
        redact=tuple(redact),
        hash_policy=hash_policy or HashPolicy(),
        root=os.fspath(root) if root is not None else None,
        environment=declared(environment),
        config=config,
        volatile=declared_volatile(volatile),
        sign_with=os.fspath(sign_with) if sign_with is not None else None,
    )
    declaration = RecordedRun(spec)
    return declaration(func) if func is not None else declaration
